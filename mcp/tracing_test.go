package mcp

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentgov/agentgov/calltrace"
	"github.com/agentgov/agentgov/calltrace/calltracetest"
	"github.com/agentgov/agentgov/mcp/wire"
)

// sentUp records the params of every request the gateway writes upstream.
type sentUp struct {
	mu     sync.Mutex
	params map[string][]json.RawMessage // by method
}

func (u *sentUp) dialer(dial Dialer) Dialer {
	return func(ctx context.Context) (sdk.Connection, error) {
		c, err := dial(ctx)
		if err != nil {
			return nil, err
		}
		return &recordingConn{Connection: c, up: u}, nil
	}
}

func (u *sentUp) of(method string) []json.RawMessage {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.params[method]
}

type recordingConn struct {
	sdk.Connection
	up *sentUp
}

func (c *recordingConn) Write(ctx context.Context, msg jsonrpc.Message) error {
	if req, ok := msg.(*jsonrpc.Request); ok {
		c.up.mu.Lock()
		if c.up.params == nil {
			c.up.params = map[string][]json.RawMessage{}
		}
		c.up.params[req.Method] = append(c.up.params[req.Method], append(json.RawMessage(nil), req.Params...))
		c.up.mu.Unlock()
	}
	return c.Connection.Write(ctx, msg)
}

func metaOf(t *testing.T, params json.RawMessage) map[string]any {
	t.Helper()
	var p struct {
		Meta map[string]any `json:"_meta"`
	}
	if err := json.Unmarshal(params, &p); err != nil {
		t.Fatalf("params %s: %v", params, err)
	}
	return p.Meta
}

func tracedGateway(t *testing.T, tracer calltrace.Tracer) (*harness, *sentUp) {
	t.Helper()
	dial, err := wire.Command(upstreamArgv(t), upstreamEnv("clean"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	up := &sentUp{}
	h := startDial(t, "test", up.dialer(dial), func(c *Config) {
		if tracer != nil {
			c.Tracer = tracer
		}
	}, nil)
	return h, up
}

// With a tracer, a tools/call is a span execute_tool {tool} in the trace
// of the request's _meta.traceparent, ended with its decision; the
// upstream receives the span's own traceparent in _meta, beside the rest
// of the caller's _meta, untouched.
func TestToolCallSpanJoinsTheMetaTraceparentAndReachesTheUpstream(t *testing.T) {
	tr := &calltracetest.Recorder{}
	h, up := tracedGateway(t, tr)
	caller := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	res, err := h.session.CallTool(context.Background(), &sdk.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "traced"},
		Meta: sdk.Meta{"traceparent": caller, "vendor/key": "kept"}})
	if err != nil || res.IsError || resultString(res) != "traced" {
		t.Fatalf("echo: %v %+v", err, res)
	}
	h.rec.await(t, "mcp.result", 1) // the call is settled, its span ended, once the client has its answer
	spans := tr.Find("tools/call", "echo")
	if len(spans) != 1 {
		t.Fatalf("spans %+v", tr.All())
	}
	s := spans[0]
	if s.Call.Operation != calltrace.Tool || s.Call.TraceParent != caller || s.Call.Upstream != "test" || s.Call.Session == "" || s.Call.CallID == "" {
		t.Errorf("call %+v", s.Call)
	}
	if s.Ends != 1 || s.Ended.ErrorType != "" || s.Ended.Effect != "allow" {
		t.Errorf("ended %d times with %+v", s.Ends, s.Ended)
	}
	sent := up.of("tools/call")
	if len(sent) != 1 {
		t.Fatalf("%d calls upstream", len(sent))
	}
	meta := metaOf(t, sent[0])
	if meta["traceparent"] != s.TraceParent() || meta["vendor/key"] != "kept" {
		t.Errorf("upstream _meta %v, want the span's traceparent %s and the caller's other keys", meta, s.TraceParent())
	}
	var args struct {
		Arguments map[string]any `json:"arguments"`
	}
	if json.Unmarshal(sent[0], &args); args.Arguments["text"] != "traced" {
		t.Errorf("arguments changed on the way: %s", sent[0])
	}

	// A listing is a span of its own, ended with the upstream's answer.
	toolNames(t, h.session)
	if l := tr.Find("tools/list", ""); len(l) != 1 || l[0].Ends != 1 || l[0].Call.Operation != calltrace.Request || l[0].Ended.ErrorType != "" {
		t.Errorf("tools/list spans %+v", l)
	}
}

// A call the policy denies never goes upstream; its span ends with the
// refusal's code as error.type.
func TestDeniedCallSpanCarriesTheRefusal(t *testing.T) {
	tr := &calltracetest.Recorder{}
	h, up := tracedGateway(t, tr)
	if res := h.call(t, "forbidden", nil); !res.IsError {
		t.Fatalf("forbidden call allowed: %+v", res)
	}
	s := tr.Find("tools/call", "forbidden")
	if len(s) != 1 || s[0].Ends != 1 || s[0].Ended.ErrorType != "policy_denied" || s[0].Ended.Effect != "deny" || !strings.Contains(s[0].Ended.Error, "deleting is not allowed") {
		t.Fatalf("spans %+v", s)
	}
	if n := len(up.of("tools/call")); n != 0 {
		t.Errorf("%d denied calls went upstream", n)
	}
}

// A traceparent the caller forged (not a string, far too long) joins no
// trace and breaks nothing: the call goes through, and the upstream gets
// the gateway's span in its place.
func TestForgedMetaTraceparentIsIgnored(t *testing.T) {
	tr := &calltracetest.Recorder{}
	h, up := tracedGateway(t, tr)
	for i, forged := range []any{map[string]any{"trace": "x"}, strings.Repeat("0", 10000), 42} {
		res, err := h.session.CallTool(context.Background(), &sdk.CallToolParams{Name: "echo", Arguments: map[string]any{"text": fmt.Sprint(i)}, Meta: sdk.Meta{"traceparent": forged}})
		if err != nil || res.IsError || resultString(res) != fmt.Sprint(i) {
			t.Fatalf("echo with traceparent %.40v: %v %+v", forged, err, res)
		}
	}
	h.rec.await(t, "mcp.result", 3)
	spans := tr.Find("tools/call", "echo")
	sent := up.of("tools/call")
	if len(spans) != 3 || len(sent) != 3 {
		t.Fatalf("%d spans, %d calls upstream", len(spans), len(sent))
	}
	for i, s := range spans {
		if s.Call.TraceParent != "" || s.Ends != 1 || s.Ended.ErrorType != "" {
			t.Errorf("forged traceparent %.40q taken", s.Call.TraceParent)
		}
		if got := metaOf(t, sent[i])["traceparent"]; got != s.TraceParent() {
			t.Errorf("upstream _meta traceparent %.40v, want the span's", got)
		}
	}
}

// Without a tracer the gateway passes requests on as they came: nothing
// is added to _meta.
func TestUntracedGatewayAddsNoTraceparent(t *testing.T) {
	h, up := tracedGateway(t, nil)
	if res := h.call(t, "echo", map[string]any{"text": "plain"}); res.IsError {
		t.Fatalf("echo: %+v", res)
	}
	sent := up.of("tools/call")
	if len(sent) != 1 || strings.Contains(string(sent[0]), "traceparent") {
		t.Errorf("upstream params %s", sent)
	}
}

// A resource read is a span resources/read {uri}; when the upstream
// answers it with a JSON-RPC error, error.type is the error's code.
func TestRequestSpanOfAnUpstreamErrorCarriesItsCode(t *testing.T) {
	tr := &calltracetest.Recorder{}
	h, _ := tracedGateway(t, tr)
	ctx := context.Background()
	if _, err := h.session.ReadResource(ctx, &sdk.ReadResourceParams{URI: "test://readme"}); err != nil {
		t.Fatal(err)
	}
	_, err := h.session.ReadResource(ctx, &sdk.ReadResourceParams{URI: "test://no-such-thing"})
	if err == nil {
		t.Fatal("reading a missing resource succeeded")
	}
	h.rec.await(t, "mcp.result", 2)
	ok, missing := tr.Find("resources/read", "test://readme"), tr.Find("resources/read", "test://no-such-thing")
	if len(ok) != 1 || ok[0].Ends != 1 || ok[0].Ended.ErrorType != "" || ok[0].Call.Operation != calltrace.Request {
		t.Errorf("read spans %+v", ok)
	}
	// Settling the call ends the span again; only the first End counts.
	if len(missing) != 1 || missing[0].Ends == 0 || !strings.HasPrefix(missing[0].Ended.ErrorType, "-32") || missing[0].Ended.Effect != "allow" {
		t.Fatalf("missing resource spans %+v (%v)", missing, err)
	}
}
