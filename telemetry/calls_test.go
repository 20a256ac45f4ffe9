package telemetry

import (
	"context"
	"encoding/hex"
	"strings"
	"testing"
	"unicode/utf8"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/calltrace"
	"github.com/agentgov/agentgov/govern"
	"github.com/agentgov/agentgov/policy"
)

func intAttr(s *tracepb.Span, key string) (int64, bool) {
	for _, kv := range s.Attributes {
		if kv.Key == key {
			return kv.Value.GetIntValue(), true
		}
	}
	return 0, false
}

// A forwarded call is a client span named after the GenAI semantic
// conventions, a child of the caller's traceparent; the decision made
// with its context is the span's child; its TraceParent names the span,
// for the upstream; it ends once, with its usage or its error.
func TestCallSpansJoinTheCallersTraceAndParentTheDecision(t *testing.T) {
	r := newReceiver(t)
	cfg := Config{OTLP: OTLP{Endpoint: r.URL}}
	cfg.Fill()
	tr, err := New(context.Background(), cfg, "agentgov", "test")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := policy.Parse("p.yaml", []byte("version: agentgov/v1\nname: p\ndefault: allow\n"))
	if err != nil {
		t.Fatal(err)
	}
	set, err := policy.Compile([]*policy.Document{doc})
	if err != nil {
		t.Fatal(err)
	}
	eng := govern.New(set, govern.WithAudit(&memAudit{}), govern.WithTracer(tr))

	const traceID, parent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	caller := "00-" + traceID + "-" + parent + "-01"
	ctx, tool := tr.Start(context.Background(), calltrace.Call{
		Operation: calltrace.Tool, Name: "echo", Method: "tools/call", Upstream: "everything",
		Session: "mcp-1", CallID: "7", TraceParent: caller,
	})
	// The engine is also told the caller's traceparent (the audit keeps
	// it): the call's span in ctx still wins as the parent.
	d, _ := eng.Decide(govern.WithTrace(ctx, govern.Trace{TraceParent: caller}), action.Action{Agent: action.Agent{ID: "a1"}, Tool: action.Tool{Server: "everything", Name: "echo"}})
	upstream := tool.TraceParent()
	tool.End(calltrace.Result{Effect: "allow", Decision: d.ID.String()})
	tool.End(calltrace.Result{ErrorType: "twice"}) // ignored

	_, chat := tr.Start(context.Background(), calltrace.Call{Operation: calltrace.Chat, Name: "gpt-4o-mini", Provider: "openai", Address: "api.openai.com", TraceParent: "00-not-a-trace-01"})
	chat.End(calltrace.Result{ErrorType: "http_5xx", Error: "upstream answered 503", ResponseModel: "gpt-4o-mini-2024-07-18", Usage: true, InputTokens: 12, OutputTokens: 3})

	_, list := tr.Start(context.Background(), calltrace.Call{Operation: calltrace.Request, Method: "resources/read", Name: "file:///notes.txt"})
	list.End(calltrace.Result{})

	if err := tr.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	byName := map[string]*tracepb.Span{}
	for _, s := range r.spans {
		if byName[s.Name] != nil {
			t.Errorf("span %s exported twice", s.Name)
		}
		byName[s.Name] = s
	}
	ts, ds, cs, rs := byName["execute_tool echo"], byName["agentgov.decide"], byName["chat gpt-4o-mini"], byName["resources/read file:///notes.txt"]
	if ts == nil || ds == nil || cs == nil || rs == nil || len(r.spans) != 4 {
		t.Fatalf("spans %v", byName)
	}
	if hex.EncodeToString(ts.TraceId) != traceID || hex.EncodeToString(ts.ParentSpanId) != parent || ts.Kind != tracepb.Span_SPAN_KIND_CLIENT {
		t.Errorf("tool span: trace %x parent %x kind %v", ts.TraceId, ts.ParentSpanId, ts.Kind)
	}
	if string(ds.TraceId) != string(ts.TraceId) || string(ds.ParentSpanId) != string(ts.SpanId) {
		t.Errorf("the decision is not the call's child: parent %x, call %x", ds.ParentSpanId, ts.SpanId)
	}
	if want := "00-" + traceID + "-" + hex.EncodeToString(ts.SpanId) + "-01"; upstream != want {
		t.Errorf("upstream traceparent %q, want %q", upstream, want)
	}
	a := attrs(ts)
	for k, want := range map[string]string{
		"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "echo", "gen_ai.tool.call.id": "7",
		"mcp.method.name": "tools/call", "mcp.session.id": "mcp-1", "jsonrpc.request.id": "7",
		"agentgov.upstream": "everything", "agentgov.decision.effect": "allow", "agentgov.decision.id": d.ID.String(),
	} {
		if a[k] != want {
			t.Errorf("tool span %s = %q, want %q", k, a[k], want)
		}
	}
	if ts.Status.GetCode() == tracepb.Status_STATUS_CODE_ERROR || a["error.type"] != "" {
		t.Errorf("the second End counted: %v %v", ts.Status, a)
	}

	// A traceparent that is not one starts a trace of its own.
	if len(cs.ParentSpanId) != 0 {
		t.Errorf("a malformed traceparent gave the span a parent %x", cs.ParentSpanId)
	}
	c := attrs(cs)
	if c["gen_ai.operation.name"] != "chat" || c["gen_ai.provider.name"] != "openai" || c["gen_ai.request.model"] != "gpt-4o-mini" ||
		c["gen_ai.response.model"] != "gpt-4o-mini-2024-07-18" || c["server.address"] != "api.openai.com" || c["error.type"] != "http_5xx" {
		t.Errorf("chat span %v", c)
	}
	if in, _ := intAttr(cs, "gen_ai.usage.input_tokens"); in != 12 {
		t.Errorf("input tokens %d", in)
	}
	if out, _ := intAttr(cs, "gen_ai.usage.output_tokens"); out != 3 {
		t.Errorf("output tokens %d", out)
	}
	if cs.Status.GetCode() != tracepb.Status_STATUS_CODE_ERROR || cs.Status.GetMessage() != "upstream answered 503" {
		t.Errorf("chat status %v", cs.Status)
	}
	if ra := attrs(rs); ra["mcp.method.name"] != "resources/read" || ra["gen_ai.operation.name"] != "" {
		t.Errorf("request span %v", ra)
	}
}

// What a caller chooses (a model name, a resource URI) is bounded in the
// span: a megabyte of it does not reach the collector.
func TestCallSpansBoundWhatTheCallerChose(t *testing.T) {
	r := newReceiver(t)
	cfg := Config{OTLP: OTLP{Endpoint: r.URL}}
	cfg.Fill()
	tr, err := New(context.Background(), cfg, "agentgov", "test")
	if err != nil {
		t.Fatal(err)
	}
	huge := strings.Repeat("é", 1<<19)
	_, sp := tr.Start(context.Background(), calltrace.Call{Operation: calltrace.Request, Method: "resources/read", Name: huge, CallID: huge, Session: huge})
	sp.End(calltrace.Result{ErrorType: huge, Error: huge, ResponseModel: huge})
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.spans) != 1 {
		t.Fatalf("%d spans", len(r.spans))
	}
	s := r.spans[0]
	if len(s.Name) > 300 || !utf8.ValidString(s.Name) || len(s.Status.GetMessage()) > 256 {
		t.Errorf("span name of %d bytes, status of %d", len(s.Name), len(s.Status.GetMessage()))
	}
	for k, v := range attrs(s) {
		if len(v) > 256 || !utf8.ValidString(v) {
			t.Errorf("attribute %s of %d bytes", k, len(v))
		}
	}
}
