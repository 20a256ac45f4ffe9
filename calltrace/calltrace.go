// Package calltrace is what the transports (the MCP gateway, the model
// proxy, the A2A gateway) tell a tracer about the calls they forward
// upstream, so that each becomes a span beside the decision's. It holds
// plain data and two interfaces: the transports know nothing of
// OpenTelemetry, and the telemetry package implements Tracer with it.
//
// A transport with no tracer (the usual case) makes no call here at all:
// a nil Tracer means tracing is off and costs nothing on the hot path.
package calltrace

import "context"

// Kinds of call, which name the span after the GenAI semantic conventions.
const (
	// Tool is an MCP tools/call: span "execute_tool {tool}".
	Tool = "execute_tool"
	// Chat is a model call: span "chat {model}".
	Chat = "chat"
	// Embeddings is an embeddings call: span "embeddings {model}".
	Embeddings = "embeddings"
	// Agent is a call to a remote agent: span "invoke_agent {agent}".
	Agent = "invoke_agent"
	// Request is any other MCP request the gateway forwards (a listing,
	// a resource read, a prompt): span "{method} {target}".
	Request = ""
)

// Call is what is known of a call before it is decided.
type Call struct {
	// Operation is one of the kinds above (gen_ai.operation.name).
	Operation string
	// Name is the tool, the model requested, the agent or, for a
	// Request, its target (a resource URI, a prompt name), if any.
	Name string
	// Method is the MCP method (mcp.method.name), for the gateway's calls.
	Method string
	// Provider is the model provider (gen_ai.provider.name): openai,
	// anthropic, gcp.gemini.
	Provider string
	// Upstream is agentgov's name of the MCP server or the agent.
	Upstream string
	// Address is the upstream's host (server.address), if known.
	Address string
	// Session is the MCP session (mcp.session.id) or the agent's session.
	Session string
	// CallID identifies the call within its session (the JSON-RPC id:
	// gen_ai.tool.call.id and jsonrpc.request.id).
	CallID string
	// TraceParent is the caller's W3C traceparent, when it sent one: the
	// span joins that trace.
	TraceParent string
}

// Result is how a call ended.
type Result struct {
	// ErrorType classifies a failure (error.type), "" when it succeeded:
	// a refusal code (policy_denied, approval_required, ...), an HTTP
	// status, a JSON-RPC error code, tool_error, unreachable, ...
	ErrorType string
	// Error describes the failure for the span's status.
	Error string
	// Effect is the decision's effect, when the call was decided.
	Effect string
	// Decision is the decision's id, when the call was decided.
	Decision string
	// ResponseModel is the model that answered (gen_ai.response.model).
	ResponseModel string
	// Usage says InputTokens and OutputTokens were reported.
	Usage                     bool
	InputTokens, OutputTokens int64
}

// Tracer starts the span of a call. The returned context carries the span,
// so that a decision made with it is a child of the call's span.
type Tracer interface {
	Start(ctx context.Context, c Call) (context.Context, Span)
}

// Span is one call's span.
type Span interface {
	// TraceParent is the W3C traceparent to send upstream, so that the
	// upstream's own spans join the trace.
	TraceParent() string
	// End ends the span; only the first End counts.
	End(r Result)
}
