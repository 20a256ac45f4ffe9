package server_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/approval"
	"github.com/agentgov/agentgov/audit"
	"github.com/agentgov/agentgov/budget"
	"github.com/agentgov/agentgov/config"
	"github.com/agentgov/agentgov/govern"
	"github.com/agentgov/agentgov/killswitch"
	"github.com/agentgov/agentgov/llmproxy"
	"github.com/agentgov/agentgov/mcp"
	"github.com/agentgov/agentgov/mcp/pin"
	"github.com/agentgov/agentgov/metrics"
	"github.com/agentgov/agentgov/models"
	"github.com/agentgov/agentgov/policy"
	"github.com/agentgov/agentgov/server"
	"github.com/agentgov/agentgov/session"
	"github.com/agentgov/agentgov/store/sqlite"
)

// observed is the whole server as serve builds it: one set of metrics told
// of what the engine, the audit log, two MCP gateways and the model proxy
// do, a fake model provider (the edge of the world) and an in-process MCP
// server as upstreams.
type observed struct {
	t        *testing.T
	url      string
	provider *fakeProvider
}

// fakeProvider answers chat completions as OpenAI does, with a usage
// report, or fails with status fail.
type fakeProvider struct {
	fail atomic.Int32
}

func (p *fakeProvider) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	w.Header().Set("Content-Type", "application/json")
	if code := p.fail.Load(); code != 0 {
		w.WriteHeader(int(code))
		io.WriteString(w, `{"error":{"message":"overloaded","type":"server_error"}}`)
		return
	}
	io.WriteString(w, `{"id":"c1","object":"chat.completion","model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":7,"total_tokens":19}}`)
}

type echoIn struct {
	Text string `json:"text" jsonschema:"what to echo"`
}

// echoServer dials an in-process MCP server with one tool, echo.
func echoServer(ctx context.Context) (sdk.Connection, error) {
	srv := sdk.NewServer(&sdk.Implementation{Name: "echo", Version: "1"}, nil)
	sdk.AddTool(srv, &sdk.Tool{Name: "echo", Description: "Echo the text."}, func(ctx context.Context, req *sdk.CallToolRequest, in echoIn) (*sdk.CallToolResult, any, error) {
		return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: in.Text}}}, nil, nil
	})
	a, b := sdk.NewInMemoryTransports()
	if _, err := srv.Connect(ctx, a, nil); err != nil {
		return nil, err
	}
	return b.Connect(ctx)
}

func startObserved(t *testing.T) *observed {
	t.Helper()
	set, err := policy.Compile(mustDocs(t, testPolicy+`
  - id: echo
    match: {tools: ["fs/echo", "raw/echo"]}
    effect: allow
`))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bg, stop := context.WithCancel(context.Background())
	db, err := sqlite.OpenDir(bg, dir)
	if err != nil {
		t.Fatal(err)
	}
	signer, verifier, err := audit.LoadOrCreateKey(dir, "server-test")
	if err != nil {
		t.Fatal(err)
	}
	m := metrics.New()
	alog, err := audit.Open(bg, db, signer, verifier, audit.Options{CheckpointInterval: 50 * time.Millisecond, Observer: m})
	if err != nil {
		t.Fatal(err)
	}
	kill, err := killswitch.New(bg, db, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	budgets, err := budget.New(db, budget.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sessions := session.New(db, time.Now)
	eng := govern.New(set, govern.WithAudit(alog), govern.WithKillSwitch(kill), govern.WithSessions(sessions),
		govern.WithBudgets(budgets), govern.WithApprovals(approval.New(db, time.Now)), govern.WithOutcomes(db), govern.WithObserver(m))
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); alog.Run(bg) }()
	cfg := &config.Config{Tokens: []config.Token{
		{Name: "ops", Role: config.Admin, SHA256: hashOf("admin-tok")},
		{Name: "a1", Role: config.AgentRole, Agent: "a1", AgentType: "assistant", Principal: action.Principal{User: "alice", Team: "search", Org: "acme"}, SHA256: hashOf("a1-tok")},
	}}
	cfg.Fill()
	quiet := slog.New(slog.DiscardHandler)
	srv, err := server.New(server.Options{Config: cfg, Engine: eng, Audit: alog, Idempotency: db, Decisions: db, Store: db, Sessions: sessions,
		Kill: kill, Budgets: budgets, Logger: quiet, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	o := &observed{t: t, provider: &fakeProvider{}}
	up := httptest.NewServer(o.provider)
	handlers := map[string]http.Handler{}
	for name, tofu := range map[string]bool{"fs": true, "raw": false} {
		g, err := mcp.New(mcp.Config{Server: name, Dial: echoServer, Decider: eng, Recorder: alog, Kill: kill,
			Pins: pin.MemoryPins(nil), TrustOnFirstUse: tofu, Observer: m, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		h := g.HTTPHandler(bg, srv.Identify)
		handlers[name] = h
		t.Cleanup(func() { h.Close() })
	}
	llm, err := llmproxy.New(llmproxy.Config{OpenAI: llmproxy.Upstream{BaseURL: up.URL + "/v1"}, Recorder: alog, Observer: m, Logger: quiet,
		Getenv: func(k string) string { return map[string]string{"OPENAI_API_KEY": "sk-test"}[k] }}, eng, models.Shipped(), srv.Identify)
	if err != nil {
		t.Fatal(err)
	}
	srv.Mount(handlers, llm)
	hs := httptest.NewServer(srv.Handler())
	o.url = hs.URL
	t.Cleanup(func() {
		hs.Close()
		up.Close()
		stop()
		wg.Wait()
		db.Close()
	})
	return o
}

func (o *observed) post(path, token, body string) int {
	o.t.Helper()
	req, _ := http.NewRequest("POST", o.url+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		o.t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// callTool calls a tool through /mcp/{server} as an MCP client holding
// the agent's token does, and says whether it was refused.
func (o *observed) callTool(server, tool string) bool {
	o.t.Helper()
	hc := &http.Client{Transport: bearer{"a1-tok"}}
	cs, err := sdk.NewClient(&sdk.Implementation{Name: "agent", Version: "1"}, nil).Connect(context.Background(),
		&sdk.StreamableClientTransport{Endpoint: o.url + "/mcp/" + server, HTTPClient: hc}, nil)
	if err != nil {
		o.t.Fatal(err)
	}
	defer cs.Close()
	res, err := cs.CallTool(context.Background(), &sdk.CallToolParams{Name: tool, Arguments: map[string]any{"text": "hi"}})
	if err != nil {
		o.t.Fatal(err)
	}
	return res.IsError
}

type bearer struct{ tok string }

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.tok)
	return http.DefaultTransport.RoundTrip(r)
}

func (o *observed) scrape() string {
	o.t.Helper()
	resp, err := http.Get(o.url + "/metrics")
	if err != nil {
		o.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

var labelPair = regexp.MustCompile(`(\w+)="((?:[^"\\]|\\.)*)"`)

// value sums the samples of metric name whose labels include every pair
// of want ("k=v" strings).
func value(out, name string, want ...string) float64 {
	total := 0.0
	for _, l := range strings.Split(out, "\n") {
		rest, ok := strings.CutPrefix(l, name)
		if !ok || (rest != "" && rest[0] != '{' && rest[0] != ' ') {
			continue
		}
		labels, num := "", rest
		if strings.HasPrefix(rest, "{") {
			end := strings.LastIndex(rest, "}")
			labels, num = rest[1:end], rest[end+1:]
		}
		have := map[string]string{}
		for _, m := range labelPair.FindAllStringSubmatch(labels, -1) {
			have[m[1]] = m[2]
		}
		match := true
		for _, w := range want {
			k, v, _ := strings.Cut(w, "=")
			if have[k] != v {
				match = false
			}
		}
		if match {
			f, _ := strconv.ParseFloat(strings.TrimSpace(num), 64)
			total += f
		}
	}
	return total
}

// /metrics counts what every entry point does: decisions by entry, effect,
// point, rule and agent type; the time of each stage; tokens and cost by
// model and agent; budgets; upstream latency and errors per MCP server and
// model provider; the audit log's appends and batches; quarantined tools
// and the refusals of the gateway and the proxy.
func TestMetricsCoverEveryEntryPoint(t *testing.T) {
	o := startObserved(t)
	if code := o.post("/v1/budgets", "admin-tok", `{"id":"acme-day","scope":{"org":"acme"},"period":"daily","limits":{"calls":100}}`); code != 201 {
		t.Fatalf("budget: %d", code)
	}
	if code := o.post("/v1/decide", "a1-tok", `{"tool":{"name":"read_file"},"args":{"path":"/tmp/x"}}`); code != 200 {
		t.Fatalf("decide: %d", code)
	}
	o.post("/v1/decide", "a1-tok", `{"tool":{"name":"write_file"}}`)
	chat := `{"model":"gpt-4o-mini","max_tokens":20,"messages":[{"role":"user","content":"hi"}]}`
	if code := o.post("/llm/v1/chat/completions", "a1-tok", chat); code != 200 {
		t.Fatalf("chat: %d", code)
	}
	o.provider.fail.Store(503)
	if code := o.post("/llm/v1/chat/completions", "a1-tok", chat); code != 503 {
		t.Fatalf("failing provider: %d", code)
	}
	o.provider.fail.Store(0)
	if code := o.post("/llm/v1/chat/completions", "a1-tok", `{"model":"no-such-model","messages":[{"role":"user","content":"hi"}]}`); code != 403 {
		t.Fatalf("unknown model: %d", code)
	}
	if refused := o.callTool("fs", "echo"); refused {
		t.Fatal("echo through fs was refused")
	}
	if refused := o.callTool("raw", "echo"); !refused {
		t.Fatal("echo of the unpinned server was not refused")
	}

	checks := []struct {
		name string
		want []string
		min  float64
	}{
		{"agentgov_decisions_total", []string{"entry=api", "effect=allow", "point=pre_tool_call", "agent_type=assistant"}, 1},
		{"agentgov_decisions_total", []string{"entry=api", "effect=deny"}, 1},
		{"agentgov_decisions_total", []string{"entry=model_proxy", "effect=allow", "point=pre_model_call"}, 2},
		{"agentgov_decisions_total", []string{"entry=mcp_gateway", "effect=allow", "point=pre_tool_call"}, 1},
		{"agentgov_decisions_total", []string{"entry=mcp_gateway", "point=post_tool_call"}, 1},
		{"agentgov_rule_decisions_total", []string{"rule=reads", "effect=allow"}, 1},
		{"agentgov_rule_decisions_total", []string{"rule=echo", "effect=allow"}, 1},
		{"agentgov_decision_duration_seconds_count", []string{"entry=api"}, 2},
		// Stages are timed on one decision in 16, the first among them.
		{"agentgov_decision_stage_duration_seconds_count", []string{"stage=policy"}, 1},
		{"agentgov_decision_stage_duration_seconds_count", []string{"stage=audit"}, 1},
		{"agentgov_decision_stage_duration_seconds_count", []string{"stage=budget"}, 1},
		{"agentgov_decision_stage_duration_seconds_count", []string{"stage=kill_switch"}, 1},
		{"agentgov_outcomes_total", []string{"status=ok"}, 2},
		{"agentgov_outcomes_total", []string{"status=error"}, 1},
		{"agentgov_model_tokens_total", []string{"model=gpt-4o-mini", "agent=a1", "direction=input"}, 12},
		{"agentgov_model_tokens_total", []string{"model=gpt-4o-mini", "agent=a1", "direction=output"}, 7},
		{"agentgov_model_cost_usd_total", []string{"model=gpt-4o-mini", "agent=a1"}, 1e-7},
		{"agentgov_upstream_request_duration_seconds_count", []string{"kind=model", "upstream=openai"}, 2},
		{"agentgov_upstream_errors_total", []string{"kind=model", "upstream=openai", "failure=http_5xx"}, 1},
		{"agentgov_upstream_request_duration_seconds_count", []string{"kind=mcp", "upstream=fs"}, 1},
		{"agentgov_refusals_total", []string{"entry=model_proxy", "reason=model_not_allowed"}, 1},
		{"agentgov_refusals_total", []string{"entry=mcp_gateway", "reason=quarantined"}, 1},
		{"agentgov_mcp_quarantined_tools", []string{"server=raw"}, 1},
		{"agentgov_audit_append_duration_seconds_count", nil, 5},
		{"agentgov_audit_batch_entries_count", nil, 1},
		{"agentgov_audit_entries", nil, 5},
		{"agentgov_budget_spent_calls", []string{"budget=acme-day"}, 3},
		{"agentgov_budget_fraction", []string{"budget=acme-day"}, 0.03},
	}
	// The proxy and the gateway settle an outcome just after they answer,
	// so the last settlement may land a moment after the last response.
	var out string
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		out = o.scrape()
		settled := true
		for _, c := range checks {
			settled = settled && value(out, c.name, c.want...) >= c.min
		}
		if settled || time.Now().After(deadline) {
			break
		}
	}
	for _, c := range checks {
		if got := value(out, c.name, c.want...); got < c.min {
			t.Errorf("%s%v = %v, want at least %v", c.name, c.want, got, c.min)
		}
	}
	// The model proxy's settlement is spend too, with no budget for the
	// model: the agent's, from the provider's usage report.
	req, _ := http.NewRequest("GET", o.url+"/v1/usage?group_by=agent,model&period=all", nil)
	req.Header.Set("Authorization", "Bearer admin-tok")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(raw), `{"agent":"a1","model":"gpt-4o-mini","spent":{"cost_usd":`) || !strings.Contains(string(raw), `"input_tokens":12,"output_tokens":7,"calls":2}`) {
		t.Errorf("usage after the proxied calls: %s", raw)
	}
	if got := value(out, "agentgov_mcp_quarantined_tools", "server=fs"); got != 0 {
		t.Errorf("fs has %v quarantined tools, want 0", got)
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", out)
	}
}

// An admin may decide for any agent it names, with any agent type: a
// hostile or careless caller sending thousands of types grows /metrics
// only up to the cap, and each decision is still counted.
func TestAHostileCallerCannotGrowMetricsWithoutBound(t *testing.T) {
	o := startObserved(t)
	before := len(o.scrape())
	n := metrics.MaxAgentTypes + 300
	for i := range n {
		body := fmt.Sprintf(`{"agent":{"id":"x-%d","type":"type-%d-AKIAIOSFODNN7EXAMPLE"},"point":"pre_tool_call","tool":{"name":"read_file"}}`, i, i)
		if i%2 == 0 {
			body = fmt.Sprintf(`{"agent":{"id":"x-%d","type":"type-%d"},"tool":{"name":"read_file"}}`, i, i)
		}
		if code := o.post("/v1/decide", "admin-tok", body); code != 200 {
			t.Fatalf("decide %d: %d", i, code)
		}
	}
	out := o.scrape()
	if strings.Contains(out, "AKIAIOSFODNN7EXAMPLE") {
		t.Fatal("a secret in an agent type reached /metrics")
	}
	types := map[string]bool{}
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "agentgov_decisions_total{") {
			if m := regexp.MustCompile(`agent_type="([^"]*)"`).FindStringSubmatch(l); m != nil {
				types[m[1]] = true
			}
		}
	}
	if len(types) > metrics.MaxAgentTypes+1 || !types["other"] {
		t.Errorf("%d agent types on /metrics, want at most %d and other", len(types), metrics.MaxAgentTypes+1)
	}
	if got := value(out, "agentgov_decisions_total", "entry=api"); got != float64(n) {
		t.Errorf("%v decisions counted, want %d", got, n)
	}
	if grown := len(out) - before; grown > 1<<20 {
		t.Errorf("/metrics grew by %d bytes", grown)
	}
}
