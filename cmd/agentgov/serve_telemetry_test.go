package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
)

// grpcReceiver is a real OTLP/gRPC trace receiver: the collector's
// TraceService on a grpc.Server.
type grpcReceiver struct {
	coltrace.UnimplementedTraceServiceServer
	mu    sync.Mutex
	spans []*tracepb.Span
}

func (r *grpcReceiver) Export(_ context.Context, req *coltrace.ExportTraceServiceRequest) (*coltrace.ExportTraceServiceResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rs := range req.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			r.spans = append(r.spans, ss.Spans...)
		}
	}
	return &coltrace.ExportTraceServiceResponse{}, nil
}

// startGRPCReceiver listens on 127.0.0.1:0 and returns the receiver and
// its endpoint URL.
func startGRPCReceiver(t *testing.T) (*grpcReceiver, string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &grpcReceiver{}
	s := grpc.NewServer()
	coltrace.RegisterTraceServiceServer(s, r)
	go s.Serve(l)
	t.Cleanup(s.Stop)
	return r, "http://" + l.Addr().String()
}

// traceOf is what a test reads of exported spans.
type traceOf []*tracepb.Span

func (ts traceOf) in(traceID string) traceOf {
	var out traceOf
	for _, s := range ts {
		if hex.EncodeToString(s.TraceId) == traceID {
			out = append(out, s)
		}
	}
	return out
}

func (ts traceOf) named(name string) *tracepb.Span {
	for _, s := range ts {
		if s.Name == name {
			return s
		}
	}
	return nil
}

func (ts traceOf) childOf(parent *tracepb.Span, name string) *tracepb.Span {
	for _, s := range ts {
		if s.Name == name && string(s.ParentSpanId) == string(parent.SpanId) {
			return s
		}
	}
	return nil
}

func spanAttrs(s *tracepb.Span) map[string]any {
	out := map[string]any{}
	for _, kv := range s.Attributes {
		switch v := kv.Value.Value.(type) {
		case *commonpb.AnyValue_StringValue:
			out[kv.Key] = v.StringValue
		case *commonpb.AnyValue_IntValue:
			out[kv.Key] = v.IntValue
		default:
			out[kv.Key] = kv.Value.String()
		}
	}
	return out
}

// traceparentHeader sets a W3C traceparent on every request of an MCP
// client, as an instrumented agent does.
type traceparentHeader struct {
	token, traceparent string
}

func (h traceparentHeader) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+h.token)
	r.Header.Set("Traceparent", h.traceparent)
	return http.DefaultTransport.RoundTrip(r)
}

// Caller trace ids and span ids of the test.
const (
	chatTrace    = "4bf92f3577b34da6a3ce929d0e0e4736"
	failTrace    = "5bf92f3577b34da6a3ce929d0e0e4737"
	toolTrace    = "6bf92f3577b34da6a3ce929d0e0e4738"
	metaTrace    = "7bf92f3577b34da6a3ce929d0e0e4739"
	callerSpanID = "00f067aa0ba902b7"
)

func traceparent(traceID string) string { return "00-" + traceID + "-" + callerSpanID + "-01" }

// `agentgov serve` with telemetry.otlp.protocol: grpc exports to a real
// OTLP/gRPC receiver a span per proxied model call (chat {model}, with
// the provider's token usage) and per MCP request forwarded upstream
// (execute_tool {tool}, tools/list), each the parent of its decision's
// span, all in the trace of the traceparent the agent sent (a header, or
// the request's _meta for MCP). The provider and the MCP server receive a
// traceparent of that trace, so their own spans join it. An upstream
// failure is an error span with error.type.
func TestServeExportsCallSpansOverGRPC(t *testing.T) {
	everything, _ := filepath.Abs("../../mcp/testdata/node/node_modules/@modelcontextprotocol/server-everything/dist/index.js")
	fsServer(t) // skips without node or the npm packages
	if _, err := os.Stat(everything); err != nil {
		t.Skip("npm packages not installed; run: npm ci --prefix mcp/testdata/node")
	}
	recv, endpoint := startGRPCReceiver(t)

	// The model provider: a fake OpenAI-compatible one (the real one cannot
	// be reached from here); gpt-4o fails with a 500.
	var provMu sync.Mutex
	provTrace := map[string]string{} // model -> traceparent received
	prov := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		model := "gpt-4o-mini"
		if strings.Contains(string(b), `"gpt-4o"`) {
			model = "gpt-4o"
		}
		provMu.Lock()
		provTrace[model] = r.Header.Get("Traceparent")
		provMu.Unlock()
		if model == "gpt-4o" {
			http.Error(w, `{"error":{"message":"overloaded"}}`, http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"id":"c1","object":"chat.completion","model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15}}`)
	}))
	defer prov.Close()

	// A second MCP server, in Go, that says what _meta its calls carried.
	var metaMu sync.Mutex
	var upstreamMeta []string
	lookup := sdk.NewServer(&sdk.Implementation{Name: "lookup", Version: "1"}, nil)
	sdk.AddTool(lookup, &sdk.Tool{Name: "lookup", Description: "Look a word up."},
		func(ctx context.Context, req *sdk.CallToolRequest, in struct {
			Word string `json:"word"`
		}) (*sdk.CallToolResult, any, error) {
			tp, _ := req.Params.GetMeta()["traceparent"].(string)
			metaMu.Lock()
			upstreamMeta = append(upstreamMeta, tp)
			metaMu.Unlock()
			return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: "a word"}}}, nil, nil
		})
	lookupMCP := sdk.NewStreamableHTTPHandler(func(*http.Request) *sdk.Server { return lookup }, nil)
	var headerTrace []string
	lookupSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if tp := r.Header.Get("Traceparent"); tp != "" {
			metaMu.Lock()
			headerTrace = append(headerTrace, tp)
			metaMu.Unlock()
		}
		lookupMCP.ServeHTTP(w, r)
	}))
	defer lookupSrv.Close()

	in := startWithConfig(t, fmt.Sprintf(`telemetry:
  otlp: {endpoint: %q, protocol: grpc}
llm:
  openai: {base_url: %q, api_key_env: TEST_UPSTREAM_KEY}
mcp:
  trust_on_first_use: true
  servers:
    everything: {command: [node, %q]}
    lookup: {url: %q}
`, endpoint, prov.URL, everything, lookupSrv.URL), "TEST_UPSTREAM_KEY=upstream-key")
	os.WriteFile(filepath.Join(in.dir, "policies", "test.yaml"), []byte("version: agentgov/v1\nname: test\ndefault: allow\n"), 0o644)
	if code, m := in.call("POST", "/v1/policies/reload", "admin-tok", ""); code != 200 {
		t.Fatalf("reload: %d %v", code, m)
	}

	chat := func(model, traceID string) int {
		req, _ := http.NewRequest("POST", in.url+"/llm/v1/chat/completions", strings.NewReader(`{"model":"`+model+`","messages":[{"role":"user","content":"hello"}],"max_tokens":10}`))
		req.Header.Set("Authorization", "Bearer a1-tok")
		req.Header.Set("Traceparent", traceparent(traceID))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := chat("gpt-4o-mini", chatTrace); code != 200 {
		t.Fatalf("model call: %d\n%s", code, in.output())
	}
	if code := chat("gpt-4o", failTrace); code != 500 {
		t.Fatalf("failing model call: %d, want the provider's 500", code)
	}

	ctx := context.Background()
	connect := func(server string) *sdk.ClientSession {
		client := sdk.NewClient(&sdk.Implementation{Name: "e2e", Version: "1"}, nil)
		cs, err := client.Connect(ctx, &sdk.StreamableClientTransport{Endpoint: in.url + "/mcp/" + server, HTTPClient: &http.Client{Transport: traceparentHeader{"a1-tok", traceparent(toolTrace)}}}, nil)
		if err != nil {
			t.Fatalf("connect: %v\n%s", err, in.output())
		}
		return cs
	}
	cs := connect("everything")
	defer cs.Close()
	if _, err := cs.ListTools(ctx, nil); err != nil {
		t.Fatal(err)
	}
	res, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: "echo", Arguments: map[string]any{"message": "traced"}})
	if err != nil || res.IsError {
		t.Fatalf("echo: %v %+v", err, res)
	}
	// A traceparent in _meta is the caller's for that request, over the header.
	res, err = cs.CallTool(ctx, &sdk.CallToolParams{Name: "echo", Arguments: map[string]any{"message": "meta"}, Meta: sdk.Meta{"traceparent": traceparent(metaTrace)}})
	if err != nil || res.IsError {
		t.Fatalf("echo with _meta: %v %+v", err, res)
	}
	// echo without its message: the server refuses it.
	if res, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: "echo", Arguments: map[string]any{}}); err == nil && !res.IsError {
		t.Fatalf("echo without a message succeeded: %+v", res)
	}
	ls := connect("lookup")
	defer ls.Close()
	if res, err := ls.CallTool(ctx, &sdk.CallToolParams{Name: "lookup", Arguments: map[string]any{"word": "otel"}}); err != nil || res.IsError {
		t.Fatalf("lookup: %v %+v", err, res)
	}
	_, entries := in.call("GET", "/v1/audit?limit=1000", "admin-tok", "")
	if !strings.Contains(fmt.Sprint(entries), traceparent(chatTrace)) {
		t.Errorf("the model call's decision does not keep the caller's traceparent in the audit log")
	}
	in.stop() // flushes what is left

	recv.mu.Lock()
	all := traceOf(recv.spans)
	recv.mu.Unlock()
	dump := func() string {
		var b strings.Builder
		for _, s := range all {
			fmt.Fprintf(&b, "%x %x<-%x %s %v\n", s.TraceId, s.SpanId, s.ParentSpanId, s.Name, spanAttrs(s))
		}
		return b.String()
	}

	// The model call.
	tr := all.in(chatTrace)
	c := tr.named("chat gpt-4o-mini")
	if c == nil {
		t.Fatalf("no chat span in the caller's trace\n%s", dump())
	}
	if hex.EncodeToString(c.ParentSpanId) != callerSpanID || c.Kind != tracepb.Span_SPAN_KIND_CLIENT {
		t.Errorf("chat span: parent %x kind %v; want the caller's span, client", c.ParentSpanId, c.Kind)
	}
	a := spanAttrs(c)
	for k, want := range map[string]any{
		"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o-mini",
		"gen_ai.response.model": "gpt-4o-mini-2024-07-18", "gen_ai.usage.input_tokens": int64(12), "gen_ai.usage.output_tokens": int64(3),
		"server.address": "127.0.0.1", "agentgov.decision.effect": "allow",
	} {
		if a[k] != want {
			t.Errorf("chat span %s = %v, want %v", k, a[k], want)
		}
	}
	if c.Status.GetCode() == tracepb.Status_STATUS_CODE_ERROR {
		t.Errorf("a successful call's span is an error: %v", c.Status)
	}
	if d := tr.childOf(c, "agentgov.decide"); d == nil || spanAttrs(d)["agentgov.decision.id"] != a["agentgov.decision.id"] {
		t.Errorf("the call's decision is not a child of its span\n%s", dump())
	}
	provMu.Lock()
	got := provTrace["gpt-4o-mini"]
	provMu.Unlock()
	if want := "00-" + chatTrace + "-" + hex.EncodeToString(c.SpanId) + "-01"; got != want {
		t.Errorf("the provider received traceparent %q, want %q", got, want)
	}

	// The failing model call.
	f := all.in(failTrace).named("chat gpt-4o")
	if f == nil {
		t.Fatalf("no span of the failing call\n%s", dump())
	}
	if f.Status.GetCode() != tracepb.Status_STATUS_CODE_ERROR || spanAttrs(f)["error.type"] != "http_5xx" {
		t.Errorf("failing call: status %v, error.type %v", f.Status, spanAttrs(f)["error.type"])
	}

	// The MCP calls.
	tt := all.in(toolTrace)
	var echo *tracepb.Span
	var failed *tracepb.Span
	for _, s := range tt {
		if s.Name != "execute_tool echo" {
			continue
		}
		if s.Status.GetCode() == tracepb.Status_STATUS_CODE_ERROR {
			failed = s
		} else {
			echo = s
		}
	}
	if echo == nil || failed == nil {
		t.Fatalf("want a successful and a failed execute_tool echo in the caller's trace\n%s", dump())
	}
	ea := spanAttrs(echo)
	for k, want := range map[string]any{
		"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "echo", "mcp.method.name": "tools/call",
		"agentgov.upstream": "everything", "agentgov.decision.effect": "allow",
	} {
		if ea[k] != want {
			t.Errorf("execute_tool span %s = %v, want %v", k, ea[k], want)
		}
	}
	if ea["mcp.session.id"] == nil || ea["gen_ai.tool.call.id"] == nil || hex.EncodeToString(echo.ParentSpanId) != callerSpanID {
		t.Errorf("execute_tool span: %v, parent %x", ea, echo.ParentSpanId)
	}
	if tt.childOf(echo, "agentgov.decide") == nil {
		t.Errorf("the tool call's decision is not a child of its span\n%s", dump())
	}
	if et := spanAttrs(failed)["error.type"]; et == nil || et == "" {
		t.Errorf("failed tool call without error.type: %v", spanAttrs(failed))
	}
	if l := tt.named("tools/list"); l == nil || spanAttrs(l)["mcp.method.name"] != "tools/list" {
		t.Errorf("no tools/list span in the caller's trace\n%s", dump())
	}
	if m := all.in(metaTrace).named("execute_tool echo"); m == nil || hex.EncodeToString(m.ParentSpanId) != callerSpanID {
		t.Errorf("the call with a traceparent in _meta is not in that trace\n%s", dump())
	}

	// The MCP server received the span's traceparent in _meta.
	lk := tt.named("execute_tool lookup")
	if lk == nil {
		t.Fatalf("no execute_tool lookup span\n%s", dump())
	}
	metaMu.Lock()
	defer metaMu.Unlock()
	if want := "00-" + toolTrace + "-" + hex.EncodeToString(lk.SpanId) + "-01"; len(upstreamMeta) != 1 || upstreamMeta[0] != want {
		t.Errorf("the MCP server received _meta traceparent %q, want %q", upstreamMeta, want)
	}
	if want := "00-" + toolTrace + "-" + hex.EncodeToString(lk.SpanId) + "-01"; len(headerTrace) != 1 || headerTrace[0] != want {
		t.Errorf("the MCP server received traceparent headers %q, want %q", headerTrace, want)
	}
}
