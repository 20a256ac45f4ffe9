package llmproxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/models"
)

const agentToken = "agt_researcher_token"

// identifyByToken is how the server identifies callers: the bearer token (or
// x-api-key, which the Anthropic SDK sends) names one agent.
func identifyByToken(r *http.Request) (action.Agent, action.Principal, error) {
	tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if tok == "" {
		tok = r.Header.Get("X-Api-Key")
	}
	if tok != agentToken {
		return action.Agent{}, action.Principal{}, errors.New("unknown token")
	}
	return action.Agent{ID: "researcher-1", Type: "assistant"}, action.Principal{User: "alice", Team: "search", Org: "acme"}, nil
}

// ruleDecider applies real rules of its own until the policy engine is wired
// in: premium-tier models are denied, content mentioning "forbidden" is
// denied by a rule, content asking for approval needs ticket apr_1, and a
// cost budget (in micro-dollars) is reserved from estimates and settled from
// outcomes, denying with a "budget ..." reason once exhausted.
type ruleDecider struct {
	cat          *models.Catalog
	budgetMicro  int64 // 0: no budget
	failWith     error
	allowPremium bool // lift the premium-tier rule

	// settled, when set, receives each decision id as its outcome is recorded.
	settled chan action.ID

	mu       sync.Mutex
	n        uint64
	actions  []action.Action
	outcomes map[action.ID]action.Outcome
	spent    int64
	reserved map[action.ID]int64
}

func newRuleDecider(cat *models.Catalog) *ruleDecider {
	return &ruleDecider{cat: cat, outcomes: map[action.ID]action.Outcome{}, reserved: map[action.ID]int64{}}
}

func (d *ruleDecider) Decide(ctx context.Context, a action.Action) (action.Decision, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.failWith != nil {
		return action.Decision{}, d.failWith
	}
	d.n++
	d.actions = append(d.actions, a)
	dec := action.Decision{ID: action.NewID(1_700_000_000_000, 0, d.n), Effect: action.Allow}
	m, _ := d.cat.Resolve(a.Model)
	est := int64(a.Estimate.CostUSD * 1e6)
	switch {
	case a.Point != action.PreModelCall:
		dec.Effect, dec.Reasons = action.Deny, []string{"not a model call"}
	case m.Tier == "premium" && !d.allowPremium:
		dec.Effect, dec.Rules, dec.Reasons = action.Deny, []string{"no-premium"}, []string{"rule no-premium: premium models need a team budget"}
	case strings.Contains(a.Content, "forbidden"):
		dec.Effect, dec.Rules, dec.Reasons = action.Deny, []string{"no-forbidden"}, []string{"rule no-forbidden: that topic is off limits"}
	case strings.Contains(a.Content, "over budget"):
		dec.Effect, dec.Reasons = action.Deny, []string{"budget acme-monthly: cost limit reached"}
	case strings.Contains(a.Content, "too fast"):
		dec.Effect, dec.Reasons = action.Deny, []string{"rate limit api-calls: 10 per 1m exceeded"}
	case strings.Contains(a.Content, "approve me") && a.ApprovalID != "apr_1":
		dec.Effect, dec.Rules = action.RequireApproval, []string{"needs-approval"}
		dec.Approval = &action.ApprovalRef{ID: "apr_1", Status: "pending"}
	case d.budgetMicro > 0 && d.spent+d.totalReserved()+est > d.budgetMicro:
		dec.Effect, dec.Reasons = action.Deny, []string{"budget acme-monthly: cost limit reached"}
	}
	if dec.Effect == action.Allow {
		d.reserved[dec.ID] = est
	}
	return dec, nil
}

func (d *ruleDecider) totalReserved() (t int64) {
	for _, v := range d.reserved {
		t += v
	}
	return t
}

func (d *ruleDecider) Outcome(ctx context.Context, id action.ID, o action.Outcome) error {
	if err := o.Validate(); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, dup := d.outcomes[id]; dup {
		return errors.New("outcome recorded twice")
	}
	d.outcomes[id] = o
	delete(d.reserved, id)
	d.spent += int64(o.CostUSD*1e6 + 0.5)
	if d.settled != nil {
		d.settled <- id
	}
	return nil
}

func (d *ruleDecider) decided() []action.Action {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]action.Action(nil), d.actions...)
}

func (d *ruleDecider) outcome(t *testing.T, decisionHeader string) action.Outcome {
	t.Helper()
	id, err := action.ParseID(decisionHeader)
	if err != nil {
		t.Fatalf("decision header %q: %v", decisionHeader, err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	o, ok := d.outcomes[id]
	if !ok {
		t.Fatalf("no outcome recorded for %s", decisionHeader)
	}
	return o
}

func (d *ruleDecider) outcomeCount() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.outcomes)
}

type rig struct {
	t        *testing.T
	up       *fakeUpstream
	dec      *ruleDecider
	cat      *models.Catalog
	proxy    *proxy
	proxyURL string
}

func testEnv(extra map[string]string) func(string) string {
	env := map[string]string{"OPENAI_API_KEY": openAIUpstreamKey, "ANTHROPIC_API_KEY": anthropicUpstreamKey, "GEMINI_API_KEY": googleUpstreamKey}
	for k, v := range extra {
		env[k] = v
	}
	return func(k string) string { return env[k] }
}

// newRig starts the fake upstream and the proxy, mounted the way the server
// mounts it.
func newRig(t *testing.T, tweak func(*Config)) *rig {
	t.Helper()
	return newRigWith(t, models.Shipped(), tweak)
}

// newRigWith is newRig over another model catalogue.
func newRigWith(t *testing.T, cat *models.Catalog, tweak func(*Config)) *rig {
	t.Helper()
	up := newFakeUpstream(t)
	cfg := Config{
		OpenAI:    Upstream{BaseURL: up.srv.URL + "/v1"},
		Anthropic: Upstream{BaseURL: up.srv.URL},
		Google:    Upstream{BaseURL: up.srv.URL + "/v1beta/openai"},
		Getenv:    testEnv(nil),
	}
	if tweak != nil {
		tweak(&cfg)
	}
	dec := newRuleDecider(cat)
	h, err := New(cfg, dec, cat, identifyByToken)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/llm/", h)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &rig{t: t, up: up, dec: dec, cat: cat, proxy: h.(*proxy), proxyURL: srv.URL}
}

type reply struct {
	status int
	header http.Header
	body   []byte
}

func (r *rig) do(method, path, body string, headers ...string) reply {
	r.t.Helper()
	req, err := http.NewRequest(method, r.proxyURL+path, strings.NewReader(body))
	if err != nil {
		r.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+agentToken)
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] == "" {
			req.Header.Del(headers[i])
		} else {
			req.Header.Set(headers[i], headers[i+1])
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		r.t.Fatal(err)
	}
	return reply{resp.StatusCode, resp.Header, b}
}

func decodeJSON(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("not JSON: %v: %s", err, b)
	}
	return m
}

const chatBody = `{"model":"gpt-4o-mini","max_tokens":100,"messages":[{"role":"system","content":"be brief"},{"role":"user","content":"first"},{"role":"assistant","content":"ok"},{"role":"user","content":[{"type":"text","text":"summarise"},{"type":"image_url","image_url":{"url":"data:,"}},{"type":"text","text":"this page"}]}]}`

func TestChatIsDecidedForwardedAndSettledFromUpstreamUsage(t *testing.T) {
	r := newRig(t, nil)
	res := r.do("POST", "/llm/v1/chat/completions", chatBody, "X-Agentgov-Session", "s-42")
	if res.status != 200 {
		t.Fatalf("status %d: %s", res.status, res.body)
	}
	if got := decodeJSON(t, res.body)["choices"].([]any)[0].(map[string]any)["message"].(map[string]any)["content"]; got != "Hello from upstream" {
		t.Errorf("content = %v", got)
	}
	if res.header.Get("X-Request-Id") != "req_upstream" {
		t.Error("upstream response headers were not passed on")
	}
	if res.header.Get("Set-Cookie") != "" {
		t.Error("the upstream's cookie reached the caller")
	}

	acts := r.dec.decided()
	if len(acts) != 1 {
		t.Fatalf("%d decisions, want 1", len(acts))
	}
	a := acts[0]
	wantIn := int64((len(chatBody) + 3) / 4)
	if a.Point != action.PreModelCall || a.Model != "gpt-4o-mini" || a.Agent.ID != "researcher-1" || a.Principal.Org != "acme" ||
		a.Session != "s-42" || a.Content != "be brief\nfirst\nok\nsummarise\nthis page" || a.Estimate.Tokens != wantIn+100 || a.Destination != "127.0.0.1" {
		t.Errorf("decided action = %+v", a)
	}
	if want := float64(r.cat.Cost("gpt-4o-mini", wantIn, 100)) / 1e6; a.Estimate.CostUSD != want {
		t.Errorf("estimate cost = %v, want %v", a.Estimate.CostUSD, want)
	}

	o := r.dec.outcome(t, res.header.Get(HeaderDecision))
	wantCost := float64(r.cat.Cost("gpt-4o-mini", chatPromptTokens, chatCompletionTokens)) / 1e6
	if o.Status != "ok" || o.InputTokens != chatPromptTokens || o.OutputTokens != chatCompletionTokens ||
		o.Tokens != chatPromptTokens+chatCompletionTokens || o.CostUSD != wantCost || o.Error != "" {
		t.Errorf("outcome = %+v, want usage %d/%d costing %v", o, chatPromptTokens, chatCompletionTokens, wantCost)
	}
	// The body reached the upstream unchanged.
	if got := r.up.last().Body["messages"].([]any); len(got) != 4 {
		t.Errorf("upstream saw %d messages", len(got))
	}
}

// sseData returns the data payloads of an SSE body, in order.
func sseData(body []byte) []string {
	var out []string
	for _, line := range strings.Split(string(body), "\n") {
		if d, ok := strings.CutPrefix(line, "data: "); ok {
			out = append(out, d)
		}
	}
	return out
}

func TestChatStreamAsksForUsageSettlesFromItAndStripsIt(t *testing.T) {
	r := newRig(t, nil)
	body := `{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}`
	res := r.do("POST", "/llm/v1/chat/completions", body)
	if res.status != 200 || !strings.HasPrefix(res.header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("status %d, type %q: %s", res.status, res.header.Get("Content-Type"), res.body)
	}
	opts, _ := r.up.last().Body["stream_options"].(map[string]any)
	if opts["include_usage"] != true {
		t.Errorf("upstream request stream_options = %v; the proxy must ask for usage", r.up.last().Body["stream_options"])
	}
	data := sseData(res.body)
	var text string
	for _, d := range data[:len(data)-1] {
		var c struct {
			Choices []struct {
				Delta struct{ Content string } `json:"delta"`
			} `json:"choices"`
			Usage any `json:"usage"`
		}
		if err := json.Unmarshal([]byte(d), &c); err != nil {
			t.Fatalf("chunk %q: %v", d, err)
		}
		if len(c.Choices) == 0 || c.Usage != nil {
			t.Errorf("the caller got the usage chunk it did not ask for: %s", d)
		}
		for _, ch := range c.Choices {
			text += ch.Delta.Content
		}
	}
	if text != "Hello world" || data[len(data)-1] != "[DONE]" {
		t.Errorf("stream text %q, last %q", text, data[len(data)-1])
	}
	o := r.dec.outcome(t, res.header.Get(HeaderDecision))
	if o.Status != "ok" || o.InputTokens != chatPromptTokens || o.OutputTokens != chatCompletionTokens {
		t.Errorf("outcome = %+v", o)
	}
}

func TestChatStreamKeepsUsageChunkTheCallerAskedFor(t *testing.T) {
	r := newRig(t, nil)
	body := `{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}`
	res := r.do("POST", "/llm/v1/chat/completions", body)
	data := sseData(res.body)
	if len(data) < 2 {
		t.Fatalf("stream: %s", res.body)
	}
	usage := decodeJSON(t, []byte(data[len(data)-2]))["usage"].(map[string]any)
	if usage["prompt_tokens"] != float64(chatPromptTokens) {
		t.Errorf("usage chunk = %v", usage)
	}
	if o := r.dec.outcome(t, res.header.Get(HeaderDecision)); o.InputTokens != chatPromptTokens {
		t.Errorf("outcome = %+v", o)
	}
}

func TestAnthropicMessagesSettleFromUsage(t *testing.T) {
	r := newRig(t, nil)
	body := `{"model":"claude-haiku-4-5","max_tokens":256,"messages":[{"role":"user","content":"hello"}]}`
	res := r.do("POST", "/llm/anthropic/v1/messages", body, "Authorization", "", "X-Api-Key", agentToken, "Anthropic-Version", "2023-06-01")
	if res.status != 200 {
		t.Fatalf("status %d: %s", res.status, res.body)
	}
	in := int64(msgInputTokens + msgCacheReadTokens)
	o := r.dec.outcome(t, res.header.Get(HeaderDecision))
	if o.Status != "ok" || o.InputTokens != in || o.OutputTokens != msgOutputTokens || o.CostUSD != float64(r.cat.Cost("claude-haiku-4-5", in, msgOutputTokens))/1e6 {
		t.Errorf("outcome = %+v", o)
	}
	if a := r.dec.decided()[0]; a.Content != "hello" || a.Estimate.Tokens != int64((len(body)+3)/4)+256 {
		t.Errorf("action = %+v", a)
	}
}

func TestAnthropicStreamSettlesFromMessageStartAndDelta(t *testing.T) {
	r := newRig(t, nil)
	body := `{"model":"claude-sonnet-4-5-20250929","max_tokens":256,"stream":true,"messages":[{"role":"user","content":[{"type":"text","text":"hello"}]}]}`
	res := r.do("POST", "/llm/anthropic/v1/messages", body, "Authorization", "", "X-Api-Key", agentToken)
	if res.status != 200 {
		t.Fatalf("status %d: %s", res.status, res.body)
	}
	if !bytes.Contains(res.body, []byte("event: message_stop")) || !bytes.Contains(res.body, []byte(`"text":" world"`)) {
		t.Errorf("stream not passed through: %s", res.body)
	}
	in := int64(msgInputTokens + msgCacheReadTokens)
	o := r.dec.outcome(t, res.header.Get(HeaderDecision))
	if o.Status != "ok" || o.InputTokens != in || o.OutputTokens != msgOutputTokens {
		t.Errorf("outcome = %+v, want %d in, %d out", o, in, msgOutputTokens)
	}
	if got := r.up.last().Header.Get("Anthropic-Version"); got != "2023-06-01" {
		t.Errorf("anthropic-version sent upstream = %q, want the default", got)
	}
}

func TestEmbeddingsSettleFromUsage(t *testing.T) {
	r := newRig(t, nil)
	res := r.do("POST", "/llm/v1/embeddings", `{"model":"text-embedding-3-small","input":["alpha","beta"]}`)
	if res.status != 200 {
		t.Fatalf("status %d: %s", res.status, res.body)
	}
	if a := r.dec.decided()[0]; a.Content != "alpha\nbeta" {
		t.Errorf("content = %q", a.Content)
	}
	if o := r.dec.outcome(t, res.header.Get(HeaderDecision)); o.InputTokens != embedTokens || o.OutputTokens != 0 {
		t.Errorf("outcome = %+v", o)
	}
}

func TestGoogleModelsGoToTheGoogleUpstream(t *testing.T) {
	r := newRig(t, nil)
	res := r.do("POST", "/llm/v1/chat/completions", `{"model":"gemini-2.5-flash","messages":[{"role":"user","content":"hi"}]}`)
	if res.status != 200 {
		t.Fatalf("status %d: %s", res.status, res.body)
	}
	last := r.up.last()
	if last.Path != "/v1beta/openai/chat/completions" || last.Header.Get("Authorization") != "Bearer "+googleUpstreamKey {
		t.Errorf("went to %s with %q", last.Path, last.Header.Get("Authorization"))
	}
}

func TestRefusalsUseEachProvidersErrorShape(t *testing.T) {
	r := newRig(t, nil)
	chat := func(content string) string {
		return `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"` + content + `"}]}`
	}
	msg := func(content string) string {
		return `{"model":"claude-haiku-4-5","max_tokens":10,"messages":[{"role":"user","content":"` + content + `"}]}`
	}
	for _, tc := range []struct {
		name, content  string
		status         int
		oaType, oaCode string
		antType        string
		msgHas         string
	}{
		{"policy deny", "forbidden topic", 403, "permission_error", "policy_denied", "permission_error", "rule no-forbidden"},
		{"rate limit", "too fast", 429, "rate_limit_error", "rate_limited", "rate_limit_error", "rate limit api-calls"},
		{"approval", "approve me", 403, "permission_error", "approval_required", "permission_error", "X-Agentgov-Approval: apr_1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(r.up.seen())
			res := r.do("POST", "/llm/v1/chat/completions", chat(tc.content))
			e := decodeJSON(t, res.body)["error"].(map[string]any)
			if res.status != tc.status || e["type"] != tc.oaType || e["code"] != tc.oaCode || !strings.Contains(e["message"].(string), tc.msgHas) {
				t.Errorf("openai: %d %s", res.status, res.body)
			}
			if res.header.Get("X-Should-Retry") != "false" || res.header.Get(HeaderDecision) == "" {
				t.Errorf("openai headers: %v", res.header)
			}
			res = r.do("POST", "/llm/anthropic/v1/messages", msg(tc.content), "Authorization", "", "X-Api-Key", agentToken)
			doc := decodeJSON(t, res.body)
			e = doc["error"].(map[string]any)
			if res.status != tc.status || doc["type"] != "error" || e["type"] != tc.antType || !strings.Contains(e["message"].(string), tc.msgHas) {
				t.Errorf("anthropic: %d %s", res.status, res.body)
			}
			if n := len(r.up.seen()); n != before {
				t.Errorf("a refused call reached the upstream")
			}
		})
	}
	if r.dec.outcomeCount() != 0 {
		t.Error("refused calls were settled")
	}
	// A premium model is denied by the tier rule.
	res := r.do("POST", "/llm/v1/chat/completions", `{"model":"o1","messages":[{"role":"user","content":"x"}]}`)
	if res.status != 403 || !strings.Contains(string(res.body), "no-premium") {
		t.Errorf("premium model: %d %s", res.status, res.body)
	}
}

func TestApprovedRetryCarriesTheApprovalID(t *testing.T) {
	r := newRig(t, nil)
	body := `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"approve me"}]}`
	if res := r.do("POST", "/llm/v1/chat/completions", body); res.status != 403 {
		t.Fatalf("first call: %d", res.status)
	}
	res := r.do("POST", "/llm/v1/chat/completions", body, HeaderApproval, "apr_1")
	if res.status != 200 {
		t.Fatalf("approved retry: %d %s", res.status, res.body)
	}
	if acts := r.dec.decided(); acts[1].ApprovalID != "apr_1" {
		t.Errorf("approval id = %q", acts[1].ApprovalID)
	}
}

func TestBudgetIsSettledFromUsageThenExhausted(t *testing.T) {
	r := newRig(t, nil)
	body := `{"model":"gpt-4o","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`
	est := r.cat.Cost("gpt-4o", int64((len(body)+3)/4), 10)
	used := r.cat.Cost("gpt-4o", chatPromptTokens, chatCompletionTokens)
	// Room for one estimate plus a settled call, not for two estimates after it.
	r.dec.budgetMicro = used + est
	if res := r.do("POST", "/llm/v1/chat/completions", body); res.status != 200 {
		t.Fatalf("first call: %d %s", res.status, res.body)
	}
	if res := r.do("POST", "/llm/v1/chat/completions", body); res.status != 200 {
		t.Fatalf("second call (spent %d of %d µ$): %d %s", used, r.dec.budgetMicro, res.status, res.body)
	}
	res := r.do("POST", "/llm/anthropic/v1/messages", `{"model":"claude-haiku-4-5","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`, "Authorization", "", "X-Api-Key", agentToken)
	e := decodeJSON(t, res.body)["error"].(map[string]any)
	if res.status != 429 || e["type"] != "rate_limit_error" || !strings.Contains(e["message"].(string), "budget acme-monthly") {
		t.Errorf("over budget (anthropic): %d %s", res.status, res.body)
	}
	res = r.do("POST", "/llm/v1/chat/completions", body)
	e = decodeJSON(t, res.body)["error"].(map[string]any)
	if res.status != 429 || e["type"] != "insufficient_quota" || e["code"] != "budget_exceeded" {
		t.Errorf("over budget (openai): %d %s", res.status, res.body)
	}
}

func TestCallerKeyIsNeverForwarded(t *testing.T) {
	r := newRig(t, nil)
	r.do("POST", "/llm/v1/chat/completions", chatBody, "X-Api-Key", "sk-caller-own-key", "Cookie", "a=b", "OpenAI-Organization", "org-caller", "Api-Key", "sk-caller-azure")
	r.do("POST", "/llm/anthropic/v1/messages", `{"model":"claude-haiku-4-5","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`, "X-Api-Key", "sk-ant-caller-own", "Authorization", "Bearer "+agentToken)
	seen := r.up.seen()
	if len(seen) != 2 {
		t.Fatalf("upstream saw %d requests", len(seen))
	}
	for _, s := range seen {
		for k, vs := range s.Header {
			for _, v := range vs {
				if strings.Contains(v, agentToken) || strings.Contains(v, "caller") || k == "Cookie" {
					t.Errorf("%s: header %s: %s reached the upstream", s.Path, k, v)
				}
			}
		}
	}
	if got := seen[0].Header.Get("Authorization"); got != "Bearer "+openAIUpstreamKey {
		t.Errorf("openai Authorization = %q", got)
	}
	if got := seen[1].Header.Get("X-Api-Key"); got != anthropicUpstreamKey {
		t.Errorf("anthropic x-api-key = %q", got)
	}
	if seen[1].Header.Get("Authorization") != "" {
		t.Error("an Authorization header reached the Anthropic upstream")
	}
}

func TestUpstreamKeyFromEnvironmentOrFile(t *testing.T) {
	// A named variable.
	r := newRig(t, func(c *Config) {
		c.OpenAI.APIKeyEnv = "TEAM_OPENAI_KEY"
		c.Getenv = testEnv(map[string]string{"TEAM_OPENAI_KEY": openAIUpstreamKey, "OPENAI_API_KEY": "sk-wrong"})
	})
	if res := r.do("POST", "/llm/v1/chat/completions", chatBody); res.status != 200 {
		t.Fatalf("key from TEAM_OPENAI_KEY: %d %s", res.status, res.body)
	}
	// A secret file.
	keyFile := filepath.Join(t.TempDir(), "anthropic.key")
	if err := os.WriteFile(keyFile, []byte(anthropicUpstreamKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r = newRig(t, func(c *Config) {
		c.Anthropic.APIKeyFile = keyFile
		c.Getenv = testEnv(map[string]string{"ANTHROPIC_API_KEY": ""})
	})
	if res := r.do("POST", "/llm/anthropic/v1/messages", `{"model":"claude-haiku-4-5","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`); res.status != 200 {
		t.Fatalf("key from file: %d %s", res.status, res.body)
	}
	// No key: the provider answers 503 naming the variable, and nothing is decided.
	r = newRig(t, func(c *Config) { c.Getenv = testEnv(map[string]string{"OPENAI_API_KEY": ""}) })
	res := r.do("POST", "/llm/v1/chat/completions", chatBody)
	if res.status != 503 || !strings.Contains(string(res.body), "OPENAI_API_KEY") {
		t.Errorf("no key: %d %s", res.status, res.body)
	}
	if len(r.dec.decided()) != 0 || len(r.up.seen()) != 0 {
		t.Error("a call without an upstream key was decided or forwarded")
	}
}

func TestConfigErrorsNameTheKey(t *testing.T) {
	cat := models.Shipped()
	d := newRuleDecider(cat)
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{OpenAI: Upstream{APIKeyEnv: "A", APIKeyFile: "/x"}}, "llm.openai: give api_key_env or api_key_file, not both"},
		{Config{Anthropic: Upstream{BaseURL: "api.anthropic.com"}}, "llm.anthropic.base_url"},
		{Config{Google: Upstream{APIKeyFile: filepath.Join(t.TempDir(), "missing")}}, "llm.google.api_key_file"},
		{Config{MaxRequestBytes: -1}, "llm.max_request_bytes"},
	} {
		if _, err := New(tc.cfg, d, cat, identifyByToken); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) err = %v, want %q", tc.cfg, err, tc.want)
		}
	}
	if _, err := New(Config{}, nil, cat, identifyByToken); err == nil {
		t.Error("New without a decider succeeded")
	}
}

func TestUpstreamErrorsPassThroughAndAreNotCharged(t *testing.T) {
	r := newRig(t, nil)
	res := r.do("POST", "/llm/v1/chat/completions", `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"upstream-error"}]}`)
	if res.status != 400 || !strings.Contains(string(res.body), "upstream says no") {
		t.Errorf("openai upstream error: %d %s", res.status, res.body)
	}
	if o := r.dec.outcome(t, res.header.Get(HeaderDecision)); o.Status != "error" || o.CostUSD != 0 || o.Error != "upstream answered 400" {
		t.Errorf("outcome = %+v", o)
	}
	res = r.do("POST", "/llm/anthropic/v1/messages", `{"model":"claude-haiku-4-5","max_tokens":5,"stream":true,"messages":[{"role":"user","content":"upstream-error"}]}`)
	if res.status != 400 || !strings.Contains(string(res.body), `"type":"error"`) {
		t.Errorf("anthropic upstream error on a stream: %d %s", res.status, res.body)
	}
}

func TestUnreachableUpstreamIs502InProviderShape(t *testing.T) {
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close()
	r := newRig(t, func(c *Config) {
		c.OpenAI.BaseURL = deadURL + "/v1"
		c.Anthropic.BaseURL = deadURL
	})
	res := r.do("POST", "/llm/v1/chat/completions", chatBody)
	if res.status != 502 || decodeJSON(t, res.body)["error"].(map[string]any)["code"] != "upstream_unreachable" {
		t.Errorf("openai: %d %s", res.status, res.body)
	}
	if o := r.dec.outcome(t, res.header.Get(HeaderDecision)); o.Status != "error" || !strings.Contains(o.Error, "unreachable") {
		t.Errorf("outcome = %+v", o)
	}
	res = r.do("POST", "/llm/anthropic/v1/messages", `{"model":"claude-haiku-4-5","max_tokens":5,"messages":[{"role":"user","content":"x"}]}`)
	if res.status != 502 || decodeJSON(t, res.body)["error"].(map[string]any)["type"] != "api_error" {
		t.Errorf("anthropic: %d %s", res.status, res.body)
	}
}

func TestBadRequestsAreRefusedBeforeAnythingIsDecided(t *testing.T) {
	r := newRig(t, func(c *Config) { c.MaxRequestBytes = 4096 })
	for _, tc := range []struct {
		path, body string
		status     int
		want       string
	}{
		{"/llm/v1/chat/completions", `not json`, 400, "request body must be a JSON object"},
		{"/llm/v1/chat/completions", `[1,2]`, 400, "request body must be a JSON object"},
		{"/llm/v1/chat/completions", `{"messages":[{"role":"user","content":"x"}]}`, 400, "model: required"},
		{"/llm/v1/chat/completions", `{"model":42,"messages":[]}`, 400, "model: wrong type"},
		{"/llm/v1/chat/completions", `{"model":"gpt-4o","messages":[]}`, 400, "messages: required"},
		{"/llm/v1/chat/completions", `{"model":"gpt-4o","messages":[{"role":"user","content":"x"}],"stream":"yes"}`, 400, "stream: wrong type"},
		{"/llm/v1/chat/completions", `{"model":"gpt-4o","messages":[{"role":"user","content":"x"}],"max_tokens":-3}`, 400, "max_tokens: must be a positive integer"},
		{"/llm/v1/chat/completions", `{"model":"claude-haiku-4-5","messages":[{"role":"user","content":"x"}]}`, 400, "/llm/anthropic/v1/messages"},
		{"/llm/v1/chat/completions", `{"model":"gpt-4o","messages":[{"role":"user","content":"` + strings.Repeat("x", 5000) + `"}]}`, 413, "larger than 4096 bytes"},
		{"/llm/v1/embeddings", `{"model":"text-embedding-3-small"}`, 400, "input: required"},
		{"/llm/v1/embeddings", `{"model":"text-embedding-3-small","input":{"a":1}}`, 400, "input: want a string"},
		{"/llm/anthropic/v1/messages", `{"model":"claude-haiku-4-5","messages":[{"role":"user","content":"x"}]}`, 400, "max_tokens: required"},
		{"/llm/anthropic/v1/messages", `{"model":"gpt-4o","max_tokens":5,"messages":[{"role":"user","content":"x"}]}`, 400, "/llm/v1/chat/completions"},
		{"/llm/v1/chat/completions", `{"model":"llama-9000","messages":[{"role":"user","content":"x"}]}`, 403, "not in the model catalogue"},
		{"/llm/v1/nothing", `{}`, 404, "no such endpoint"},
	} {
		res := r.do("POST", tc.path, tc.body)
		if res.status != tc.status || !strings.Contains(string(res.body), tc.want) {
			t.Errorf("POST %s %.60s: %d %s; want %d containing %q", tc.path, tc.body, res.status, res.body, tc.status, tc.want)
		}
	}
	if res := r.do("GET", "/llm/v1/chat/completions", ""); res.status != 405 {
		t.Errorf("GET chat: %d", res.status)
	}
	if res := r.do("POST", "/llm/v1/chat/completions", chatBody, "Authorization", "Bearer wrong"); res.status != 401 || !strings.Contains(string(res.body), "invalid_request_error") {
		t.Errorf("wrong token: %d %s", res.status, res.body)
	}
	if res := r.do("POST", "/llm/anthropic/v1/messages", `{}`, "Authorization", ""); res.status != 401 || !strings.Contains(string(res.body), "authentication_error") {
		t.Errorf("no token (anthropic): %d %s", res.status, res.body)
	}
	if n := len(r.dec.decided()); n != 0 {
		t.Errorf("%d bad requests were decided", n)
	}
	if n := len(r.up.seen()); n != 0 {
		t.Errorf("%d bad requests reached the upstream", n)
	}
}

func TestUnknownModelsPassWhenTheCatalogueAllowsThem(t *testing.T) {
	up := newFakeUpstream(t)
	cat, err := models.Shipped().Override("user.yaml", []byte("version: agentgov/v1\nunknown_models: {policy: allow, tier: standard, input: 1, output: 1}\n"))
	if err != nil {
		t.Fatal(err)
	}
	d := newRuleDecider(cat)
	h, err := New(Config{OpenAI: Upstream{BaseURL: up.srv.URL + "/v1"}, Getenv: testEnv(nil)}, d, cat, identifyByToken)
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("POST", "/llm/v1/chat/completions", strings.NewReader(`{"model":"my-local-llama","messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set("Authorization", "Bearer "+agentToken)
	h.ServeHTTP(rec, req)
	if rec.Code != 200 {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	if o := d.outcome(t, rec.Header().Get(HeaderDecision)); o.CostUSD != float64(cat.Cost("my-local-llama", chatPromptTokens, chatCompletionTokens))/1e6 || o.CostUSD == 0 {
		t.Errorf("outcome = %+v", o)
	}
}

func TestDecisionFailureFailsClosed(t *testing.T) {
	r := newRig(t, nil)
	r.dec.failWith = errors.New("audit log unavailable")
	res := r.do("POST", "/llm/v1/chat/completions", chatBody)
	if res.status != 500 || !strings.Contains(string(res.body), "audit log unavailable") {
		t.Errorf("%d %s", res.status, res.body)
	}
	if len(r.up.seen()) != 0 {
		t.Error("an undecided call reached the upstream")
	}
}

func TestModelsListTheOpenAICompatibleCatalogue(t *testing.T) {
	r := newRig(t, nil)
	res := r.do("GET", "/llm/v1/models", "")
	if res.status != 200 {
		t.Fatalf("%d %s", res.status, res.body)
	}
	var list struct {
		Object string
		Data   []modelObject
	}
	if err := json.Unmarshal(res.body, &list); err != nil {
		t.Fatal(err)
	}
	ids := map[string]string{}
	for _, m := range list.Data {
		ids[m.ID] = m.OwnedBy
	}
	if list.Object != "list" || ids["gpt-4o-mini"] != "openai" || ids["gemini-2.5-pro"] != "google" || ids["claude-haiku-4-5"] != "" {
		t.Errorf("models = %s", res.body)
	}
	if res := r.do("GET", "/llm/v1/models/gpt-4o", ""); res.status != 200 || decodeJSON(t, res.body)["id"] != "gpt-4o" {
		t.Errorf("retrieve: %d %s", res.status, res.body)
	}
	if res := r.do("GET", "/llm/v1/models/nope", ""); res.status != 404 {
		t.Errorf("retrieve unknown: %d %s", res.status, res.body)
	}
	if res := r.do("GET", "/llm/v1/models", "", "Authorization", ""); res.status != 401 {
		t.Errorf("anonymous list: %d", res.status)
	}
}

func TestStreamWithoutUsageIsChargedTheEstimate(t *testing.T) {
	r := newRig(t, nil)
	body := `{"model":"gpt-4o-mini","max_tokens":50,"stream":true,"messages":[{"role":"user","content":"no-usage"}]}`
	res := r.do("POST", "/llm/v1/chat/completions", body)
	if res.status != 200 || !strings.HasSuffix(string(res.body), "data: [DONE]\n\n") {
		t.Fatalf("%d %s", res.status, res.body)
	}
	in := int64((len(body) + 3) / 4)
	o := r.dec.outcome(t, res.header.Get(HeaderDecision))
	if o.Status != "ok" || o.InputTokens != in || o.OutputTokens != 50 || !strings.Contains(o.Error, "charged the estimate") {
		t.Errorf("outcome = %+v; want the estimate %d/50 charged", o, in)
	}
}

func TestCallerLeavingMidStreamIsSettledAsError(t *testing.T) {
	r := newRig(t, nil)
	r.dec.settled = make(chan action.ID, 1)
	body := `{"model":"gpt-4o-mini","max_tokens":50,"stream":true,"messages":[{"role":"user","content":"hang"}]}`
	req, _ := http.NewRequest("POST", r.proxyURL+"/llm/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+agentToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	first := make([]byte, 6)
	if _, err := io.ReadFull(resp.Body, first); err != nil || string(first) != "data: " {
		t.Fatalf("first bytes %q, %v", first, err)
	}
	resp.Body.Close() // the caller gives up mid-stream
	id := <-r.dec.settled
	if id.String() != resp.Header.Get(HeaderDecision) {
		t.Fatalf("settled %s, want %s", id, resp.Header.Get(HeaderDecision))
	}
	o := r.dec.outcome(t, id.String())
	if o.Status != "error" || o.Error != "caller went away mid-stream" || o.OutputTokens != 50 {
		t.Errorf("outcome = %+v; want an error charged at the estimate", o)
	}
}
