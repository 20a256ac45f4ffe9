// Package wire is the MCP wire format and its transports, without any
// governance: the JSON-RPC codec the gateway reads and writes every message
// with, newline-delimited stdio framing, an upstream process started as a
// command, and the client of a streamable-HTTP upstream.
package wire

import (
	"context"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// Dialer opens a new connection to an upstream server. The gateway calls it
// once per client session, and again if the upstream dies.
type Dialer func(ctx context.Context) (sdk.Connection, error)

// SessionHeader carries the MCP session id over streamable HTTP.
const SessionHeader = "Mcp-Session-Id"

// DefaultMaxMessageBytes bounds one message a client sends, unless
// configured otherwise.
const DefaultMaxMessageBytes = 4 << 20

// MaxUpstreamMessageBytes bounds one message from an upstream. Tool results
// (file contents, images) run larger than what clients send, and the
// upstream is the operator's choice, not the agent's.
const MaxUpstreamMessageBytes = 16 << 20

// MCP method names the transports need to know.
const (
	MethodInitialize = "initialize"
	MethodToolsCall  = "tools/call"
)

// WaitingWriter is an upstream connection that can also send a request and
// deliver its answer before returning, on the caller's goroutine.
type WaitingWriter interface {
	WriteAndWait(ctx context.Context, msg jsonrpc.Message) error
}

// Pusher is an upstream connection that can hand each message to the
// session on the goroutine that received it, rather than through Read,
// which would add a hand-off between goroutines to every answer. Read then
// only reports the connection's end. The streamable-HTTP upstream is one:
// each call's answer is received on a goroutine of its own.
type Pusher interface {
	PushTo(func(jsonrpc.Message))
}

var (
	_ WaitingWriter = (*httpUpstream)(nil)
	_ Pusher        = (*httpUpstream)(nil)
)
