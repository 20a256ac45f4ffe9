package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

func chaosOf(in *instance, id string) map[string]any {
	_, m := in.call("GET", "/v1/chaos", "admin-tok", "")
	list, _ := m["experiments"].([]any)
	for _, e := range list {
		if e, _ := e.(map[string]any); e["id"] == id {
			return e
		}
	}
	return nil
}

// An error experiment in front of a real, healthy MCP server: every call
// fails with the configured error, which the model reads and which names
// the experiment; the upstream is never called; the failures open the
// circuit breaker as real ones would. Switched off through the API (which
// agents and approvers may not do), calls reach the upstream again, and
// the half-open circuit's probe closes it. The audit log, /metrics and
// `agentgov chaos` say so.
func TestServeChaosErrorOpensTheBreakerAndTheSwitchLetsCallsThrough(t *testing.T) {
	url, _, calls := flakyUpstream(t)
	in := startWithConfig(t, fmt.Sprintf(`
mcp:
  trust_on_first_use: true
  servers:
    flaky: {url: %q}
breakers:
  - {id: upstreams, match: {servers: ["*"]}, window: 1m, min_calls: 3, failure_ratio: 0.5, open_for: 1s, half_open_probes: 1}
chaos:
  - id: flaky-down
    match: {servers: [flaky]}
    fault: error
    probability: 1
    error: {message: "injected outage", code: 503}
  - {match: {models: ["*"]}, fault: drop, probability: 1, enabled: false}
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

	// The outcome is settled just after the answer, so the third call may
	// already meet the open circuit.
	for i := range 3 {
		res := fetch()
		text := textOfResult(res)
		injected := strings.Contains(text, "injected outage") && strings.Contains(text, "chaos experiment flaky-down")
		fastFail := i > 0 && strings.Contains(text, "circuit breaker upstreams is open")
		if !res.IsError || !injected && !fastFail {
			t.Fatalf("call %d answered %q", i, text)
		}
	}
	if n := calls.Load(); n != 0 {
		t.Fatalf("%d calls reached the upstream through the experiment", n)
	}
	eventually(t, "the circuit opens", func() bool { b := breakerOf(in); return b != nil && b["state"] == "open" })

	// Only an admin switches experiments; an unknown one is 404.
	for _, tok := range []string{"a1-tok", "fin-tok"} {
		if code, m := in.call("POST", "/v1/chaos/flaky-down/disable", tok, `{"reason":"mine now"}`); code != 403 || errCode(m) != "forbidden" {
			t.Fatalf("%s switched an experiment: %d %v", tok, code, m)
		}
		if code, _ := in.call("GET", "/v1/chaos", tok, ""); code != 403 {
			t.Fatalf("%s listed the experiments: %d", tok, code)
		}
	}
	if code, m := in.call("POST", "/v1/chaos/nope/disable", "admin-tok", ""); code != 404 || errCode(m) != "not_found" {
		t.Fatalf("unknown experiment: %d %v", code, m)
	}
	if code, m := in.call("POST", "/v1/chaos/flaky-down/disable", "admin-tok", `{"reason":1}`); code != 400 {
		t.Fatalf("malformed reason: %d %v", code, m)
	}
	if e := chaosOf(in, "flaky-down"); e["enabled"] != true || e["active"] != true || e["injected"].(float64) < 2 {
		t.Fatalf("experiment before the switch: %v", e)
	}
	if e := chaosOf(in, "chaos-2"); e == nil || e["enabled"] != false || e["active"] != false {
		t.Fatalf("the unnamed experiment: %v", e)
	}

	code, m := in.call("POST", "/v1/chaos/flaky-down/disable", "admin-tok", `{"reason":"game day over"}`)
	if code != 200 || m["enabled"] != false || m["id"] != "flaky-down" {
		t.Fatalf("disable: %d %v", code, m)
	}
	eventually(t, "the circuit half-opens", func() bool { return breakerOf(in)["state"] == "half_open" })
	if res := fetch(); res.IsError {
		t.Fatalf("the probe with the experiment off: %q", textOfResult(res))
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("%d calls reached the upstream, want the probe", n)
	}
	eventually(t, "the circuit closes", func() bool { return breakerOf(in)["state"] == "closed" })

	// The CLI lists and switches it back on.
	out, err := in.cli("chaos", "list")
	if err != nil || !strings.Contains(out, "flaky-down") || !strings.Contains(out, "off") || !strings.Contains(out, "chaos-2") {
		t.Fatalf("chaos list: %v\n%s", err, out)
	}
	if out, err := in.cli("chaos", "enable", "flaky-down", "--reason", "round two"); err != nil || !strings.Contains(out, "enabled flaky-down: active") {
		t.Fatalf("chaos enable: %v\n%s", err, out)
	}
	if out, err := in.cli("chaos", "disable", "nope"); err == nil || !strings.Contains(out, "no such chaos experiment") {
		t.Fatalf("chaos disable of an unknown id: %v\n%s", err, out)
	}
	if res := fetch(); !res.IsError || !strings.Contains(textOfResult(res), "injected outage") {
		t.Fatalf("with the experiment on again: %q", textOfResult(res))
	}

	resp, err := http.Get(in.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`agentgov_chaos_faults_total{experiment="chaos-2",fault="drop"} 0`,
		`agentgov_chaos_experiment_enabled{experiment="flaky-down"} 1`,
		`agentgov_breaker_trips_total{breaker="upstreams",key="server:flaky"} 1`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if !strings.Contains(string(body), `agentgov_chaos_faults_total{experiment="flaky-down",fault="error"}`) {
		t.Error("/metrics does not count the injected faults")
	}

	eventually(t, "the faults and switches are audited", func() bool {
		_, log := in.call("GET", "/v1/audit?limit=1000", "admin-tok", "")
		all := fmt.Sprint(log)
		return strings.Contains(all, "chaos.fault") && strings.Contains(all, "game day over") && strings.Contains(all, "round two")
	})
	_, log := in.call("GET", "/v1/audit?limit=1000", "admin-tok", "")
	entries, _ := log["entries"].([]any)
	faults, switches := 0, 0
	for _, e := range entries {
		e, _ := e.(map[string]any)
		rec, _ := e["record"].(map[string]any)
		switch e["kind"] {
		case "chaos.fault":
			faults++
			if rec["experiment"] != "flaky-down" || rec["fault"] != "error" || rec["server"] != "flaky" || rec["tool"] != "fetch" ||
				rec["agent"] != "a1" || !strings.HasPrefix(fmt.Sprint(rec["decision"]), "dec_") {
				t.Errorf("fault record %v", rec)
			}
		case "chaos.switch":
			switches++
			if rec["by"] != "ops" || rec["experiment"] != "flaky-down" {
				t.Errorf("switch record %v", rec)
			}
		}
	}
	if faults < 3 || switches != 2 {
		t.Fatalf("%d fault and %d switch records, want at least 3 and 2", faults, switches)
	}
}

// errCode is the code of an API error answer.
func errCode(m map[string]any) string {
	e, _ := m["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

// Without experiments (chaos: []), the API lists none and knows none to
// switch, and /metrics has no chaos series.
func TestServeWithoutChaosExperiments(t *testing.T) {
	in := startWithConfig(t, "chaos: []\n")
	code, m := in.call("GET", "/v1/chaos", "admin-tok", "")
	if list, ok := m["experiments"].([]any); code != 200 || !ok || len(list) != 0 {
		t.Fatalf("GET /v1/chaos: %d %v", code, m)
	}
	if code, m := in.call("POST", "/v1/chaos/chaos-1/enable", "admin-tok", ""); code != 404 || errCode(m) != "not_found" {
		t.Fatalf("enable with none configured: %d %v", code, m)
	}
	resp, err := http.Get(in.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(body), "agentgov_chaos_") {
		t.Error("/metrics has chaos series without experiments")
	}
}

// Through the model proxy of a running server: an error experiment
// answers the provider's 5xx without calling it, and its failures open
// the model's circuit as a real outage would; a drop answers 502 as an
// unreachable provider. A healthy model is untouched.
func TestServeChaosThroughTheModelProxy(t *testing.T) {
	var upstreamCalls atomic.Int32
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		upstreamCalls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"id":"c1","object":"chat.completion","model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}`)
	}))
	defer up.Close()
	in := startWithConfig(t, fmt.Sprintf(`
llm:
  openai: {base_url: %q, api_key_env: TEST_UPSTREAM_KEY}
  anthropic: {base_url: %q, api_key_env: TEST_UPSTREAM_KEY}
breakers:
  - {id: models, match: {models: ["gpt-*"]}, min_calls: 2, failure_ratio: 1, open_for: 1h}
chaos:
  - {id: mini-outage, match: {models: ["gpt-4o-mini"]}, fault: error, probability: 1, error: {message: "The server is overloaded", code: 503}}
  - {id: claude-cut, match: {models: ["claude-*"]}, fault: drop, probability: 1}
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
	mini := `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello"}],"max_tokens":10}`
	for range 2 {
		resp, m := post("/llm/v1/chat/completions", mini)
		e, _ := m["error"].(map[string]any)
		if resp.StatusCode != 503 || e["message"] != "The server is overloaded" || e["type"] != "server_error" || resp.Header.Get("X-Agentgov-Chaos") != "mini-outage" {
			t.Fatalf("injected error: %d %v", resp.StatusCode, m)
		}
	}
	eventually(t, "the model's circuit opens", func() bool {
		_, m := in.call("GET", "/v1/breakers", "admin-tok", "")
		return strings.Contains(fmt.Sprint(m), "state:open")
	})
	resp, m := post("/llm/v1/chat/completions", mini)
	if e, _ := m["error"].(map[string]any); resp.StatusCode != 503 || e["code"] != "circuit_open" {
		t.Fatalf("open circuit: %d %v", resp.StatusCode, m)
	}
	if resp, _ := post("/llm/anthropic/v1/messages", `{"model":"claude-3-5-haiku-latest","max_tokens":10,"messages":[{"role":"user","content":"hello"}]}`); resp.StatusCode != 502 || resp.Header.Get("X-Agentgov-Chaos") != "claude-cut" {
		t.Fatalf("dropped call: %d", resp.StatusCode)
	}
	if n := upstreamCalls.Load(); n != 0 {
		t.Fatalf("the provider got %d calls through the experiments", n)
	}
	if resp, m := post("/llm/v1/chat/completions", `{"model":"gpt-4o","messages":[{"role":"user","content":"hello"}],"max_tokens":10}`); resp.StatusCode != 200 || upstreamCalls.Load() != 1 {
		t.Fatalf("a model no experiment matches: %d %v", resp.StatusCode, m)
	}
	if e := chaosOf(in, "mini-outage"); e["injected"] != 2.0 {
		t.Fatalf("experiment %v, want 2 faults (the circuit refused the third call before it)", e)
	}
}
