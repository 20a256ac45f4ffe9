// Package bench holds agentgov's comparative benchmarks and load generators.
// It is its own module so that the peers it measures against (OPA, cedar-go)
// never become dependencies of agentgov itself.
package bench
