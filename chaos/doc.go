// Package chaos runs fault-injection experiments against agentgov's own
// enforcement points: a tools/call the MCP gateway would forward, a model
// call the proxy would forward. An experiment picks the calls it applies to
// (tools, servers or models, as globs), how often (a probability), when (an
// optional window) and what goes wrong: the upstream is slow (latency), it
// answers with an error (error), or it never answers (drop). The entry point
// asks the Injector after the call was decided and allowed, and acts the
// fault out as that upstream failing would; the outcome is then settled like
// any other, so SLOs and circuit breakers see injected failures exactly as
// they see real ones. Every fault injected is written to the audit log
// before it takes effect, and counted for /metrics.
//
// An Injector built from no experiments is nil, and a nil Injector injects
// nothing: the entry points pay a nil check when chaos is not configured.
package chaos
