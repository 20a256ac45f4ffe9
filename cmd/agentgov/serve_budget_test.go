package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// startWithConfig starts serve with extra config and environment.
func startWithConfig(t *testing.T, extra string, env ...string) *instance {
	t.Helper()
	in := startServer(t)
	in.stop()
	cfg := filepath.Join(in.dir, "agentgov.yaml")
	b, _ := os.ReadFile(cfg)
	os.WriteFile(cfg, append(b, []byte(extra)...), 0o644)
	in.env = env
	in.start()
	return in
}

// 200 concurrent decisions against a budget that fits 25 calls: exactly 25
// are allowed, through the HTTP API.
func TestServeBudgetExactUnderConcurrency(t *testing.T) {
	in := startServer(t)
	if code, m := in.call("POST", "/v1/budgets", "admin-tok", `{"id":"team-calls","scope":{"team":"search"},"period":"daily","limits":{"calls":25}}`); code != 201 {
		t.Fatalf("create budget: %d %v", code, m)
	}
	var allowed, budgetDenied atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, d := in.call("POST", "/v1/decide", "a1-tok", `{"tool":{"name":"read_file"},"args":{"path":"/tmp/x"}}`)
			switch {
			case d["effect"] == "allow":
				allowed.Add(1)
			case strings.Contains(fmt.Sprint(d["reasons"]), "team-calls"):
				budgetDenied.Add(1)
			}
		}()
	}
	wg.Wait()
	if allowed.Load() != 25 || budgetDenied.Load() != 175 {
		t.Fatalf("allowed %d, denied by the budget %d; want 25 and 175", allowed.Load(), budgetDenied.Load())
	}
	_, u := in.call("GET", "/v1/usage?team=search", "admin-tok", "")
	if !strings.Contains(fmt.Sprint(u), "calls:25") {
		t.Fatalf("usage: %v", u)
	}
}

// The same through the model proxy: an OpenAI-compatible upstream (a fake:
// the real provider cannot be reached from here), 60 concurrent chat calls
// against a budget of 10: exactly 10 reach the upstream, the rest get 429.
func TestServeProxyBudgetExactUnderConcurrency(t *testing.T) {
	var upstreamCalls atomic.Int32
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		upstreamCalls.Add(1)
		if r.Header.Get("Authorization") != "Bearer upstream-key" {
			http.Error(w, `{"error":{"message":"bad key"}}`, http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"id":"c1","object":"chat.completion","model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15}}`)
	}))
	defer up.Close()
	in := startWithConfig(t, fmt.Sprintf("llm:\n  openai: {base_url: %q, api_key_env: TEST_UPSTREAM_KEY}\n", up.URL), "TEST_UPSTREAM_KEY=upstream-key")
	os.WriteFile(filepath.Join(in.dir, "policies", "test.yaml"), []byte("version: agentgov/v1\nname: test\ndefault: allow\n"), 0o644)
	if code, m := in.call("POST", "/v1/policies/reload", "admin-tok", ""); code != 200 {
		t.Fatalf("reload: %d %v", code, m)
	}
	if code, m := in.call("POST", "/v1/budgets", "admin-tok", `{"id":"llm-calls","scope":{"agent":"a1"},"period":"daily","limits":{"calls":10}}`); code != 201 {
		t.Fatalf("create budget: %d %v", code, m)
	}
	var ok, limited atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 60; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("POST", in.url+"/llm/v1/chat/completions", strings.NewReader(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello"}],"max_tokens":10}`))
			req.Header.Set("Authorization", "Bearer a1-tok")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			switch resp.StatusCode {
			case 200:
				ok.Add(1)
			case 429:
				limited.Add(1)
			default:
				t.Errorf("status %d", resp.StatusCode)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 10 || limited.Load() != 50 || upstreamCalls.Load() != 10 {
		t.Fatalf("ok %d, 429 %d, upstream saw %d; want 10, 50, 10\n%s", ok.Load(), limited.Load(), upstreamCalls.Load(), in.output())
	}
	_, u := in.call("GET", "/v1/usage?agent=a1", "admin-tok", "")
	if !strings.Contains(fmt.Sprint(u), "tokens:150") {
		t.Fatalf("usage not settled from the upstream's reported usage (10 x 15 tokens): %v", u)
	}
}
