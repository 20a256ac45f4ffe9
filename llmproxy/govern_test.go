package llmproxy

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentgov/agentgov/budget"
	"github.com/agentgov/agentgov/govern"
	"github.com/agentgov/agentgov/models"
	"github.com/agentgov/agentgov/policy"
	"github.com/agentgov/agentgov/store/sqlite"
)

// modelPolicy is a real policy document: agents may use economy models only,
// and never with a secret in the prompt.
const modelPolicy = `version: agentgov/v1
name: model-access
default: deny
rules:
  - id: economy-models
    match: {points: [pre_model_call], models: ["gpt-4o-mini", "claude-haiku-4-5*", "text-embedding-3-*"]}
    effect: allow
  - id: no-secrets-in-prompts
    match: {points: [pre_model_call]}
    when: 'content.contains("TOP SECRET")'
    effect: deny
    severity: high
    reason: secrets stay out of prompts
`

// governedRig puts the proxy in front of the real decision pipeline: the
// policy engine with budgets kept in a SQLite file.
func governedRig(t *testing.T, limit budget.Amounts) *rig {
	t.Helper()
	ctx := context.Background()
	doc, err := policy.Parse("models.yaml", []byte(modelPolicy))
	if err != nil {
		t.Fatal(err)
	}
	set, err := policy.Compile([]*policy.Document{doc})
	if err != nil {
		t.Fatal(err)
	}
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "agentgov.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	budgets, err := budget.New(db, budget.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := budgets.Put(ctx, budget.Config{ID: "acme-llm", Scope: budget.Scope{Org: "acme"}, Period: "monthly", Limits: limit}); err != nil {
		t.Fatal(err)
	}
	eng := govern.New(set, govern.WithBudgets(budgets))

	up := newFakeUpstream(t)
	cat := models.Shipped()
	h, err := New(Config{
		OpenAI:    Upstream{BaseURL: up.srv.URL + "/v1"},
		Anthropic: Upstream{BaseURL: up.srv.URL},
		Getenv:    testEnv(nil),
	}, eng, cat, identifyByToken)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/llm/", h)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &rig{t: t, up: up, cat: cat, proxyURL: srv.URL}
}

func TestGovernedByRealPolicyAndBudget(t *testing.T) {
	// Room for exactly three calls of gpt-4o-mini settled from the upstream's
	// usage: the fourth is refused although every estimate alone would fit.
	r := governedRig(t, budget.Amounts{Calls: 3})
	body := `{"model":"gpt-4o-mini","max_tokens":20,"messages":[{"role":"user","content":"hi"}]}`
	for i := range 3 {
		if res := r.do("POST", "/llm/v1/chat/completions", body); res.status != 200 {
			t.Fatalf("call %d: %d %s", i+1, res.status, res.body)
		}
	}
	res := r.do("POST", "/llm/v1/chat/completions", body)
	if res.status != 429 || !strings.Contains(string(res.body), "budget acme-llm") || !strings.Contains(string(res.body), `"type":"insufficient_quota"`) {
		t.Errorf("fourth call: %d %s", res.status, res.body)
	}
	// The policy: a standard-tier model is not on the allow list.
	res = r.do("POST", "/llm/v1/chat/completions", `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`)
	if res.status != 403 || !strings.Contains(string(res.body), "policy_denied") {
		t.Errorf("gpt-4o: %d %s", res.status, res.body)
	}
	res = r.do("POST", "/llm/anthropic/v1/messages", `{"model":"claude-haiku-4-5","max_tokens":5,"messages":[{"role":"user","content":"the TOP SECRET plan"}]}`)
	if res.status != 403 || !strings.Contains(string(res.body), "secrets stay out of prompts") || !strings.Contains(string(res.body), "permission_error") {
		t.Errorf("secret prompt: %d %s", res.status, res.body)
	}
	if n := len(r.up.seen()); n != 3 {
		t.Errorf("upstream saw %d calls, want 3", n)
	}
}

func TestBudgetSettledFromUpstreamUsageNotTheEstimate(t *testing.T) {
	// The budget holds what the upstream's usage of two calls costs. The
	// estimate of a call (its prompt size plus max_tokens of 1000 output
	// tokens) is far larger than its real cost, so the budget only admits
	// the second call because the first was settled from usage.
	cat := models.Shipped()
	body := `{"model":"gpt-4o-mini","max_tokens":1000,"messages":[{"role":"user","content":"hi"}]}`
	real := cat.Cost("gpt-4o-mini", chatPromptTokens, chatCompletionTokens)
	est := cat.Cost("gpt-4o-mini", int64((len(body)+3)/4), 1000)
	limit := real + est
	if est <= 2*real {
		t.Fatalf("test set-up: estimate %d µ$ should dwarf the real cost %d µ$", est, real)
	}
	r := governedRig(t, budget.Amounts{CostMicros: limit})
	for i := range 2 {
		if res := r.do("POST", "/llm/v1/chat/completions", body); res.status != 200 {
			t.Fatalf("call %d: %d %s", i+1, res.status, res.body)
		}
	}
	// Two calls settled at their real cost leave less than one estimate.
	res := r.do("POST", "/llm/v1/chat/completions", body)
	if res.status != 429 {
		t.Errorf("third call: %d %s; want 429 once real spend plus the estimate passes the limit", res.status, res.body)
	}
}
