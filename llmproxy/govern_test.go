package llmproxy

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/agentgov/agentgov/approval"
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
	return governedRigWith(t, modelPolicy, func(db *sqlite.DB) []govern.Option {
		budgets, err := budget.New(db, budget.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := budgets.Put(context.Background(), budget.Config{ID: "acme-llm", Scope: budget.Scope{Org: "acme"}, Period: "monthly", Limits: limit}); err != nil {
			t.Fatal(err)
		}
		return []govern.Option{govern.WithBudgets(budgets)}
	})
}

// governedRigWith is governedRig under another policy document, with the
// engine options opts makes over the SQLite store.
func governedRigWith(t *testing.T, policyDoc string, opts func(*sqlite.DB) []govern.Option) *rig {
	t.Helper()
	ctx := context.Background()
	doc, err := policy.Parse("models.yaml", []byte(policyDoc))
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
	eng := govern.New(set, opts(db)...)

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

// approvalPolicy holds every call to gpt-4o-mini for a person's approval.
const approvalPolicy = `version: agentgov/v1
name: model-approval
default: deny
rules:
  - id: reviewed-model
    match: {points: [pre_model_call], models: ["gpt-4o-mini"]}
    effect: require_approval
    approval: {approvers: ["group:finance"], timeout: 30m}
`

// An approval ticket is bound to the whole model call it was made for: the
// prompt and the estimate (max_tokens) included, not only the agent and
// the model. An agent holding an approved ticket that retries it with
// another prompt, or with a larger max_tokens, is refused and the
// provider never sees the call; the exact call that was approved goes
// through, once.
func TestApprovedTicketAllowsOnlyTheExactModelCall(t *testing.T) {
	var approvals *approval.Approvals
	r := governedRigWith(t, approvalPolicy, func(db *sqlite.DB) []govern.Option {
		approvals = approval.New(db, time.Now)
		return []govern.Option{govern.WithApprovals(approvals)}
	})
	const path = "/llm/v1/chat/completions"
	approved := `{"model":"gpt-4o-mini","max_tokens":50,"messages":[{"role":"user","content":"summarise the quarterly report"}]}`
	// The agent names its session, so that the session (otherwise worked
	// out from the conversation) stays the same whatever the prompt.
	session := []string{HeaderSession, "s-report"}
	res := r.do("POST", path, approved, session...)
	ticket := regexp.MustCompile(`apr_[0-9A-Z]+`).FindString(string(res.body))
	if res.status != 403 || ticket == "" {
		t.Fatalf("first call: %d %s; want 403 with a ticket", res.status, res.body)
	}
	if _, err := approvals.Decide(context.Background(), ticket, true, "fiona", "ok"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, body string }{
		// Of the same length, so that the estimate alone does not tell it apart.
		{"another prompt", `{"model":"gpt-4o-mini","max_tokens":50,"messages":[{"role":"user","content":"email rival.example the report"}]}`},
		{"a larger max_tokens", `{"model":"gpt-4o-mini","max_tokens":100000,"messages":[{"role":"user","content":"summarise the quarterly report"}]}`},
	} {
		res := r.do("POST", path, tc.body, append(session, HeaderApproval, ticket)...)
		if res.status == 200 || !strings.Contains(string(res.body), ticket) {
			t.Fatalf("retry with %s under the approved ticket: %d %s; want it refused naming the ticket", tc.name, res.status, res.body)
		}
		if n := len(r.up.seen()); n != 0 {
			t.Fatalf("after the retry with %s the provider saw %d calls, want 0", tc.name, n)
		}
	}
	if res := r.do("POST", path, approved, append(session, HeaderApproval, ticket)...); res.status != 200 {
		t.Fatalf("the approved call: %d %s", res.status, res.body)
	}
	if n := len(r.up.seen()); n != 1 {
		t.Fatalf("the provider saw %d calls, want the approved one", n)
	}
	if res := r.do("POST", path, approved, append(session, HeaderApproval, ticket)...); res.status == 200 {
		t.Fatalf("the approved call a second time: %d %s; want it refused", res.status, res.body)
	}
	if n := len(r.up.seen()); n != 1 {
		t.Fatalf("the provider saw %d calls, want the approved one only", n)
	}
}
