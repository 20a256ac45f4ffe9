package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	colmetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// flakyUpstream is a real MCP server over streamable HTTP whose tool
// "fetch" fails, with an error result, while failing is set. calls counts
// the calls that reached it.
func flakyUpstream(t *testing.T) (url string, failing *atomic.Bool, calls *atomic.Int64) {
	t.Helper()
	failing, calls = new(atomic.Bool), new(atomic.Int64)
	srv := sdk.NewServer(&sdk.Implementation{Name: "flaky", Version: "1"}, nil)
	sdk.AddTool(srv, &sdk.Tool{Name: "fetch", Description: "Fetch a page."},
		func(ctx context.Context, _ *sdk.CallToolRequest, in struct {
			URL string `json:"url"`
		}) (*sdk.CallToolResult, any, error) {
			calls.Add(1)
			if failing.Load() {
				return &sdk.CallToolResult{IsError: true, Content: []sdk.Content{&sdk.TextContent{Text: "upstream on fire: 502 from origin"}}}, nil, nil
			}
			return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: "page of " + in.URL}}}, nil, nil
		})
	h := sdk.NewStreamableHTTPHandler(func(*http.Request) *sdk.Server { return srv }, nil)
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	return ts.URL, failing, calls
}

const openPolicy = `
version: agentgov/v1
name: open
default: allow
`

func textOfResult(r *sdk.CallToolResult) string {
	var b strings.Builder
	for _, c := range r.Content {
		if tc, ok := c.(*sdk.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	return b.String()
}

func breakerOf(in *instance) map[string]any {
	_, m := in.call("GET", "/v1/breakers", "admin-tok", "")
	bs, _ := m["breakers"].([]any)
	for _, b := range bs {
		if b, _ := b.(map[string]any); b["key"] == "server:flaky" {
			return b
		}
	}
	return nil
}

// A circuit breaker in front of a real MCP upstream that fails on purpose:
// the upstream's failures, seen by the gateway, open the circuit; while it
// is open calls fail fast with a tool result the model can read, and never
// reach the upstream; after open_for a probe goes through, succeeds, and
// closes it. /v1/breakers, /v1/slos, /metrics and the audit log say so.
func TestServeBreakerOpensHalfOpensAndClosesAgainstARealUpstream(t *testing.T) {
	url, failing, calls := flakyUpstream(t)
	in := startWithConfig(t, fmt.Sprintf(`
mcp:
  trust_on_first_use: true
  servers:
    flaky: {url: %q}
breakers:
  - {id: upstreams, match: {servers: ["*"]}, window: 1m, min_calls: 3, failure_ratio: 0.5, open_for: 2s, half_open_probes: 1}
slos:
  - {id: flaky-ok, sli: success, target: 0.99, match: {tools: ["flaky/*"]}}
`, url))
	os.WriteFile(filepath.Join(in.dir, "policies", "test.yaml"), []byte(openPolicy), 0o644)
	if code, m := in.call("POST", "/v1/policies/reload", "admin-tok", ""); code != 200 {
		t.Fatalf("reload: %d %v", code, m)
	}
	ctx := context.Background()
	client := sdk.NewClient(&sdk.Implementation{Name: "agent", Version: "1"}, nil)
	cs, err := client.Connect(ctx, &sdk.StreamableClientTransport{Endpoint: in.url + "/mcp/flaky", HTTPClient: &http.Client{Transport: bearer{"a1-tok"}}}, nil)
	if err != nil {
		t.Fatalf("connect: %v\n%s", err, in.output())
	}
	defer cs.Close()
	fetch := func() *sdk.CallToolResult {
		t.Helper()
		res, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: "fetch", Arguments: map[string]any{"url": "https://example.org"}})
		if err != nil {
			t.Fatalf("call: %v", err)
		}
		return res
	}
	if res := fetch(); res.IsError {
		t.Fatalf("healthy upstream: %+v", res)
	}

	failing.Store(true)
	// The gateway settles each call's outcome just after answering it, so
	// the circuit may open before the third call: that call then fails fast.
	failed := 0 // calls that reached the failing upstream
	for i := range 3 {
		res := fetch()
		text := textOfResult(res)
		upstream := strings.Contains(text, "upstream on fire")
		fastFail := i > 0 && strings.Contains(text, "circuit breaker upstreams is open")
		if !res.IsError || !upstream && !fastFail {
			t.Fatalf("failing upstream answered %q", text)
		}
		if upstream {
			failed++
		}
	}
	eventually(t, "the circuit opens", func() bool { b := breakerOf(in); return b != nil && b["state"] == "open" })
	before := calls.Load()
	res := fetch()
	text := textOfResult(res)
	if !res.IsError || !strings.Contains(text, "circuit breaker upstreams is open for server:flaky") {
		t.Fatalf("open circuit answered %+v %q", res, text)
	}
	if res.Meta["agentgov/code"] != "circuit_open" {
		t.Errorf("meta %v, want agentgov/code circuit_open", res.Meta)
	}
	if calls.Load() != before {
		t.Fatal("a call went to the upstream while its circuit was open")
	}

	// The upstream recovers; after open_for, one probe goes through and
	// closes the circuit.
	failing.Store(false)
	time.Sleep(2100 * time.Millisecond)
	if b := breakerOf(in); b["state"] != "half_open" {
		t.Fatalf("after open_for: %v", b)
	}
	if res := fetch(); res.IsError {
		t.Fatalf("the probe: %q", textOfResult(res))
	}
	eventually(t, "the circuit closes", func() bool { return breakerOf(in)["state"] == "closed" })
	if res := fetch(); res.IsError {
		t.Fatalf("closed circuit: %q", textOfResult(res))
	}

	// The outcomes: one ok, the failures that reached the upstream (three,
	// or two when the circuit opened before the third), the probe, one ok;
	// the refused calls made none.
	want := float64(3 + failed)
	var s map[string]any
	eventually(t, "every outcome counted", func() bool {
		_, slos := in.call("GET", "/v1/slos", "fin-tok", "")
		list, _ := slos["slos"].([]any)
		if len(list) != 1 {
			t.Fatalf("slos %v", slos)
		}
		s = list[0].(map[string]any)
		return s["total"] == want
	})
	if s["id"] != "flaky-ok" || s["total"] != want || s["good"] != 3.0 || s["error_budget_remaining"].(float64) >= 0 {
		t.Fatalf("slo %v", s)
	}
	if code, _ := in.call("GET", "/v1/slos", "a1-tok", ""); code != 403 {
		t.Fatalf("an agent read the SLOs: %d", code)
	}

	resp, err := http.Get(in.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		fmt.Sprintf(`agentgov_slo_events_total{result="bad",slo="flaky-ok"} %d`, failed),
		`agentgov_breaker_state{breaker="upstreams",key="server:flaky",state="closed"} 1`,
		`agentgov_breaker_trips_total{breaker="upstreams",key="server:flaky"} 1`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	eventually(t, "the changes of state are audited", func() bool {
		_, log := in.call("GET", "/v1/audit?limit=1000", "admin-tok", "")
		all := fmt.Sprint(log)
		return strings.Contains(all, "breaker_open") && strings.Contains(all, "breaker_half_open") && strings.Contains(all, "breaker_closed")
	})
	_, log := in.call("GET", "/v1/audit?limit=1000", "admin-tok", "")
	if !strings.Contains(fmt.Sprint(log), "circuit breaker upstreams is open for server:flaky") {
		t.Error("the refused call's decision is not in the audit log")
	}

	// The trip opened an incident: its timeline holds the failed calls'
	// decisions and the circuit's changes; an admin closes it, once.
	_, m := in.call("GET", "/v1/incidents?status=open", "fin-tok", "")
	incs, _ := m["incidents"].([]any)
	if len(incs) != 1 {
		t.Fatalf("incidents %v", m)
	}
	inc := incs[0].(map[string]any)
	timeline := fmt.Sprint(inc["timeline"])
	if inc["kind"] != "breaker" || inc["subject"] != "upstreams server:flaky" ||
		!strings.Contains(timeline, "opened: breaker_open") || !strings.Contains(timeline, "upstream on fire") ||
		!strings.Contains(timeline, "decision:dec_") || !strings.Contains(timeline, "breaker_closed") {
		t.Fatalf("incident %v", inc)
	}
	id := inc["id"].(string)
	if code, _ := in.call("POST", "/v1/incidents/"+id+"/close", "fin-tok", `{"note":"x"}`); code != 403 {
		t.Fatalf("an approver closed an incident: %d", code)
	}
	if code, m := in.call("POST", "/v1/incidents/"+id+"/close", "admin-tok", `{"note":"origin fixed","extra":1}`); code != 400 {
		t.Fatalf("unknown field: %d %v", code, m)
	}
	if code, m := in.call("POST", "/v1/incidents/"+id+"/close", "admin-tok", `{"note":"origin fixed"}`); code != 200 || m["status"] != "closed" || m["closed_by"] != "ops" {
		t.Fatalf("close: %d %v", code, m)
	}
	if code, _ := in.call("POST", "/v1/incidents/"+id+"/close", "admin-tok", ``); code != 409 {
		t.Fatalf("closed twice: %d", code)
	}
	if code, _ := in.call("GET", "/v1/incidents/inc_nope", "admin-tok", ""); code != 404 {
		t.Fatalf("unknown incident: %d", code)
	}
	_, log = in.call("GET", "/v1/audit?limit=1000", "admin-tok", "")
	if all := fmt.Sprint(log); !strings.Contains(all, "kind:incident") || !strings.Contains(all, "origin fixed") {
		t.Error("the incident's opening and closing are not in the audit log")
	}
}

// A kill switch opens a critical incident; its release joins the timeline.
func TestServeKillSwitchOpensAnIncident(t *testing.T) {
	in := startServer(t)
	code, m := in.call("POST", "/v1/kill", "admin-tok", `{"scope":"agent","target":"a1","reason":"loops on payments"}`)
	if code != 201 {
		t.Fatalf("kill: %d %v", code, m)
	}
	sw := fmt.Sprint(m["id"])
	if sw == "<nil>" {
		sw = fmt.Sprint(m["switch"].(map[string]any)["id"])
	}
	_, m = in.call("GET", "/v1/incidents", "admin-tok", "")
	incs, _ := m["incidents"].([]any)
	if len(incs) != 1 {
		t.Fatalf("incidents %v", m)
	}
	inc := incs[0].(map[string]any)
	if inc["kind"] != "kill" || inc["severity"] != "critical" || inc["subject"] != sw || !strings.Contains(fmt.Sprint(inc["timeline"]), "loops on payments") {
		t.Fatalf("incident %v", inc)
	}
	if code, _ := in.call("DELETE", "/v1/kill/"+sw, "admin-tok", ""); code != 200 {
		t.Fatalf("release: %d", code)
	}
	_, m = in.call("GET", "/v1/incidents/"+inc["id"].(string), "admin-tok", "")
	if !strings.Contains(fmt.Sprint(m["timeline"]), "kill release") || m["status"] != "open" {
		t.Fatalf("after release: %v", m)
	}
	if code, _ := in.call("GET", "/v1/incidents?status=bogus", "admin-tok", ""); code != 400 {
		t.Fatalf("bad status: %d", code)
	}
}

// `agentgov slo rules` prints rules promtool accepts; with no SLOs it says
// so and fails.
func TestSLORulesCommand(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "agentgov.yaml")
	os.WriteFile(cfg, []byte("slos:\n  - {id: tools-ok, sli: success, target: 0.995, window: 28d}\n  - {id: fast, sli: latency, target: 0.9, latency_ms: 300}\n"), 0o644)
	out, err := exec.Command(binPath, "slo", "rules", "--config", cfg).Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"slo:sli_error:ratio_rate28d", `sloth_slo: tools-ok`, "AgentgovSLOBurnPage", "(14.4 * 0.005)"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("rules lack %q", want)
		}
	}
	empty := filepath.Join(dir, "empty.yaml")
	os.WriteFile(empty, []byte("addr: 127.0.0.1:9999\n"), 0o644)
	msg, err := exec.Command(binPath, "slo", "rules", "--config", empty).CombinedOutput()
	if err == nil || !strings.Contains(string(msg), "no SLOs are configured") {
		t.Errorf("no SLOs: %v %s", err, msg)
	}
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (Debian: apt-get install prometheus): the rules are not checked by Prometheus")
	}
	rules := filepath.Join(dir, "slo.rules.yaml")
	os.WriteFile(rules, out, 0o644)
	if res, err := exec.Command(promtool, "check", "rules", rules).CombinedOutput(); err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, res)
	}
}

// The model proxy: an OpenAI-compatible upstream (a fake; the real
// provider cannot be reached from here) answering 500 opens the model's
// circuit; the next call gets a 503 circuit_open in OpenAI's error shape,
// told not to retry, and never reaches the upstream. The Anthropic route
// answers in Anthropic's shape.
func TestServeProxyFailsFastWhileTheModelsCircuitIsOpen(t *testing.T) {
	var upstreamCalls atomic.Int32
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		upstreamCalls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusInternalServerError)
		fmt.Fprint(w, `{"error":{"message":"overloaded","type":"server_error"}}`)
	}))
	defer up.Close()
	in := startWithConfig(t, fmt.Sprintf(`
llm:
  openai: {base_url: %q, api_key_env: TEST_UPSTREAM_KEY}
  anthropic: {base_url: %q, api_key_env: TEST_UPSTREAM_KEY}
breakers:
  - {id: models, match: {models: ["gpt-*", "claude-*"]}, min_calls: 2, failure_ratio: 1, open_for: 1h}
`, up.URL, up.URL), "TEST_UPSTREAM_KEY=k")
	os.WriteFile(filepath.Join(in.dir, "policies", "test.yaml"), []byte(openPolicy), 0o644)
	if code, m := in.call("POST", "/v1/policies/reload", "admin-tok", ""); code != 200 {
		t.Fatalf("reload: %d %v", code, m)
	}
	post := func(path, body string) (*http.Response, map[string]any) {
		req, _ := http.NewRequest("POST", in.url+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer a1-tok")
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		json.NewDecoder(resp.Body).Decode(&m)
		return resp, m
	}
	chat := `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello"}],"max_tokens":10}`
	for range 2 {
		if resp, _ := post("/llm/v1/chat/completions", chat); resp.StatusCode != 500 {
			t.Fatalf("failing upstream: %d", resp.StatusCode)
		}
	}
	eventually(t, "the model's circuit opens", func() bool {
		_, m := in.call("GET", "/v1/breakers", "admin-tok", "")
		return strings.Contains(fmt.Sprint(m), "state:open")
	})
	before := upstreamCalls.Load()
	resp, m := post("/llm/v1/chat/completions", chat)
	e, _ := m["error"].(map[string]any)
	if resp.StatusCode != 503 || e["code"] != "circuit_open" || e["type"] != "server_error" ||
		!strings.Contains(fmt.Sprint(e["message"]), "circuit breaker models is open for model:gpt-4o-mini") {
		t.Fatalf("open circuit: %d %v", resp.StatusCode, m)
	}
	if resp.Header.Get("X-Should-Retry") != "false" || resp.Header.Get("X-Agentgov-Error-Code") != "circuit_open" {
		t.Fatalf("headers %v", resp.Header)
	}
	if upstreamCalls.Load() != before {
		t.Fatal("the upstream was called while the circuit was open")
	}
	// Another model has its own circuit, closed.
	if resp, _ := post("/llm/v1/chat/completions", `{"model":"gpt-4o","messages":[{"role":"user","content":"hello"}],"max_tokens":10}`); resp.StatusCode != 500 {
		t.Fatalf("gpt-4o: %d", resp.StatusCode)
	}
	for range 2 {
		post("/llm/anthropic/v1/messages", `{"model":"claude-3-5-haiku-latest","max_tokens":10,"messages":[{"role":"user","content":"hello"}]}`)
	}
	eventually(t, "claude's circuit opens", func() bool {
		_, m := in.call("GET", "/v1/breakers", "admin-tok", "")
		return strings.Count(fmt.Sprint(m), "state:open") == 2
	})
	resp, m = post("/llm/anthropic/v1/messages", `{"model":"claude-3-5-haiku-latest","max_tokens":10,"messages":[{"role":"user","content":"hello"}]}`)
	if e, _ := m["error"].(map[string]any); resp.StatusCode != 503 || m["type"] != "error" || e["type"] != "api_error" {
		t.Fatalf("anthropic shape: %d %v", resp.StatusCode, m)
	}
}

// Alerts reach a webhook as the server runs: a kill switch engaged is
// posted as {kind, severity, summary, details, dedupe_key, at}, and
// /metrics counts the delivery. A channel whose URL is missing from the
// environment stops the start, naming the variable.
func TestServeAlertsReachAWebhook(t *testing.T) {
	var mu sync.Mutex
	var got []map[string]any
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m map[string]any
		json.NewDecoder(r.Body).Decode(&m)
		mu.Lock()
		got = append(got, m)
		mu.Unlock()
	}))
	defer hook.Close()
	extra := `
alerts:
  channels: [{name: ops-hook, type: webhook, url_env: AGENTGOV_TEST_HOOK}]
  routes: [{kinds: [kill, breaker_open, slo_burn], channels: [ops-hook]}]
`
	in := startWithConfig(t, extra, "AGENTGOV_TEST_HOOK="+hook.URL)
	if code, m := in.call("POST", "/v1/kill", "admin-tok", `{"scope":"agent","target":"a2","reason":"runaway loop"}`); code != 201 {
		t.Fatalf("kill: %d %v", code, m)
	}
	eventually(t, "the alert reaches the webhook", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == 1 })
	a := got[0]
	if a["kind"] != "kill" || a["severity"] != "critical" || !strings.Contains(fmt.Sprint(a["summary"]), "runaway loop") ||
		!strings.HasPrefix(fmt.Sprint(a["dedupe_key"]), "kill:") || a["at"] == nil {
		t.Fatalf("alert %v", a)
	}
	// The webhook has the alert before the sender has read its answer and
	// counted the delivery, so the scrape waits for the count.
	eventually(t, "/metrics counts the delivery", func() bool {
		resp, err := http.Get(in.url + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return strings.Contains(string(body), `agentgov_alerts_delivered_total{channel="ops-hook",kind="kill"} 1`) &&
			strings.Contains(string(body), `agentgov_alert_channel_up{channel="ops-hook"} 1`)
	})

	in.stop()
	in.env = nil
	cmd := exec.Command(binPath, in.args...)
	cmd.Env = append(os.Environ(), "AGENTGOV_TEST_HOOK=")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "AGENTGOV_TEST_HOOK") {
		t.Fatalf("a channel without its URL: %v\n%s", err, out)
	}
}

// `agentgov serve` exports a span per decision to a real OTLP/HTTP
// receiver, joined to the traceparent the agent sent; what is left is
// flushed when the server stops.
func TestServeExportsDecisionSpans(t *testing.T) {
	var mu sync.Mutex
	var spans []*tracepb.Span
	metricNames := map[string]bool{}
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.URL.Path == "/v1/metrics" {
			var ex colmetrics.ExportMetricsServiceRequest
			if err := proto.Unmarshal(b, &ex); err != nil {
				w.WriteHeader(400)
				return
			}
			mu.Lock()
			for _, rm := range ex.ResourceMetrics {
				for _, sm := range rm.ScopeMetrics {
					for _, m := range sm.Metrics {
						metricNames[m.Name] = true
					}
				}
			}
			mu.Unlock()
			return
		}
		var ex coltrace.ExportTraceServiceRequest
		if err := proto.Unmarshal(b, &ex); err != nil || r.URL.Path != "/v1/traces" {
			w.WriteHeader(400)
			return
		}
		mu.Lock()
		for _, rs := range ex.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				spans = append(spans, ss.Spans...)
			}
		}
		mu.Unlock()
	}))
	defer recv.Close()
	in := startWithConfig(t, fmt.Sprintf("telemetry:\n  otlp: {endpoint: %q, protocol: http/protobuf, metrics: true}\n", recv.URL))
	const traceID = "0af7651916cd43dd8448eb211c80319c"
	code, d := in.call("POST", "/v1/decide", "a1-tok", `{"tool":{"name":"read_file"},"args":{"path":"/tmp/x"}}`, "Traceparent", "00-"+traceID+"-b7ad6b7169203331-01")
	if code != 200 {
		t.Fatalf("decide: %d %v", code, d)
	}
	in.stop()
	mu.Lock()
	defer mu.Unlock()
	// The metrics of /metrics went too, sent as the server stopped.
	if !metricNames["agentgov_decisions_total"] || !metricNames["agentgov_audit_entries"] {
		t.Errorf("metrics received over OTLP: %v", metricNames)
	}
	for _, s := range spans {
		if hex.EncodeToString(s.TraceId) == traceID && s.Name == "agentgov.decide" {
			for _, kv := range s.Attributes {
				if kv.Key == "agentgov.decision.id" && kv.Value.GetStringValue() == d["id"] {
					return
				}
			}
		}
	}
	t.Fatalf("no span of decision %v in trace %s among %d spans\n%s", d["id"], traceID, len(spans), in.output())
}
