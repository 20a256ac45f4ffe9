package govern_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/approval"
	"github.com/agentgov/agentgov/audit"
	"github.com/agentgov/agentgov/budget"
	"github.com/agentgov/agentgov/govern"
	"github.com/agentgov/agentgov/store/sqlite"
)

// stack is an engine over the real stores of one database, as the server
// wires it.
type stack struct {
	eng       *govern.Engine
	db        *sqlite.DB
	log       *audit.Log
	audit     *failingAuditor
	budgets   *budget.Budgets
	approvals *approval.Approvals
}

func newStack(t *testing.T, policy string, opts ...govern.Option) *stack {
	t.Helper()
	log, db := openAudit(t)
	b, err := budget.New(db, budget.Options{})
	if err != nil {
		t.Fatal(err)
	}
	apr := approval.New(db, time.Now)
	fa := &failingAuditor{Log: log}
	opts = append([]govern.Option{govern.WithAudit(fa), govern.WithBudgets(b), govern.WithApprovals(apr)}, opts...)
	return &stack{eng: govern.New(mustSet(t, policy), opts...), db: db, log: log, audit: fa, budgets: b, approvals: apr}
}

func (s *stack) budget(t *testing.T, js string) {
	t.Helper()
	c, err := budget.DecodeConfig([]byte(js))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.budgets.Put(context.Background(), c); err != nil {
		t.Fatal(err)
	}
}

func (s *stack) decide(t *testing.T, a action.Action) action.Decision {
	t.Helper()
	d, err := s.eng.Decide(context.Background(), a)
	if err != nil {
		t.Fatalf("decide %+v: %v", a, err)
	}
	return d
}

func (s *stack) approve(t *testing.T, id string) {
	t.Helper()
	if _, err := s.approvals.Decide(context.Background(), id, true, "fin", ""); err != nil {
		t.Fatal(err)
	}
}

const openPolicy = `
version: agentgov/v1
name: open
default: allow
rules:
  - id: wires
    match: {tools: [wire]}
    effect: require_approval
`

func call(tool string) action.Action {
	return action.Action{Agent: action.Agent{ID: "a1"}, Principal: action.Principal{Org: "acme"}, Tool: action.Tool{Name: tool}}
}

// Past a budget's throttle every call needs approval. An agent that makes
// up an approval id (or sends one from an unrelated call) is not let
// through; an honest agent gets a ticket, and once it is approved the
// throttle is lifted for that one call.
func TestBogusApprovalIDDoesNotLiftTheBudgetThrottle(t *testing.T) {
	s := newStack(t, openPolicy)
	s.budget(t, `{"id":"calls","scope":{"org":"acme"},"period":"none","limits":{"calls":10},"thresholds":{"throttle":0.2,"hard":1}}`)
	if d := s.decide(t, call("search")); d.Effect != action.Allow {
		t.Fatalf("first call: %+v", d)
	}
	// The second call reaches 20%.
	bogus := call("search")
	bogus.ApprovalID = "x"
	d := s.decide(t, bogus)
	if d.Effect == action.Allow {
		t.Fatalf("a made-up approval id lifted the throttle: %+v", d)
	}
	if !strings.Contains(strings.Join(d.Reasons, " "), "not_found") {
		t.Errorf("reasons %v do not say the ticket does not exist", d.Reasons)
	}

	// The honest way: the throttle opens a ticket, as a rule would.
	d = s.decide(t, call("search"))
	if d.Effect != action.RequireApproval || d.Approval == nil || !strings.Contains(strings.Join(d.Reasons, " "), "throttle") {
		t.Fatalf("throttled call: %+v", d)
	}
	s.approve(t, d.Approval.ID)
	retry := call("search")
	retry.ApprovalID = d.Approval.ID
	if d2 := s.decide(t, retry); d2.Effect != action.Allow || d2.Approval == nil || d2.Approval.Status != "used" {
		t.Fatalf("approved retry: %+v", d2)
	}
	if d2 := s.decide(t, retry); d2.Effect != action.Deny {
		t.Fatalf("the ticket lifted the throttle twice: %+v", d2)
	}
	if u, _ := s.budgets.Usage(context.Background(), budget.Scope{Org: "acme"}); u[0].Reserved.Calls != 2 {
		t.Fatalf("reserved calls %d, want 2 (the first call and the approved one)", u[0].Reserved.Calls)
	}
}

// An approved ticket for one call is no key to the throttle on another: it
// is bound to the action it was issued for.
func TestApprovedTicketOfAnotherCallDoesNotLiftTheThrottle(t *testing.T) {
	s := newStack(t, openPolicy)
	wire := call("wire")
	d := s.decide(t, wire)
	if d.Effect != action.RequireApproval || d.Approval == nil {
		t.Fatalf("wire: %+v", d)
	}
	s.approve(t, d.Approval.ID)
	s.budget(t, `{"id":"calls","scope":{"org":"acme"},"period":"none","limits":{"calls":10},"thresholds":{"throttle":0.1,"hard":1}}`)

	other := call("search")
	other.ApprovalID = d.Approval.ID
	if d2 := s.decide(t, other); d2.Effect == action.Allow || !strings.Contains(strings.Join(d2.Reasons, " "), "wrong_tool") {
		t.Fatalf("another call with the wire's ticket: %+v", d2)
	}
	// The refusal did not use the ticket: the wire itself still runs.
	wire.ApprovalID = d.Approval.ID
	if d2 := s.decide(t, wire); d2.Effect != action.Allow {
		t.Fatalf("the approved wire: %+v", d2)
	}
}

// A ticket the action does not need is neither checked nor used.
func TestApprovalIDOfAnActionThatNeedsNoneIsIgnored(t *testing.T) {
	s := newStack(t, openPolicy)
	wire := call("wire")
	d := s.decide(t, wire)
	s.approve(t, d.Approval.ID)
	search := call("search")
	search.ApprovalID = d.Approval.ID
	if d2 := s.decide(t, search); d2.Effect != action.Allow {
		t.Fatalf("an allowed call carrying an unrelated ticket: %+v", d2)
	}
	wire.ApprovalID = d.Approval.ID
	if d2 := s.decide(t, wire); d2.Effect != action.Allow {
		t.Fatalf("the ticket was used by a call that did not need it: %+v", d2)
	}
}

// The model proxy asks approval for a prompt. The approver approved "wire
// $10 to Bob for lunch", estimated at 11 tokens; the agent retries with
// another prompt, or the same prompt with a far larger estimate. Neither
// gets through, and the refusal says what changed.
func TestTicketBindsContentAndEstimate(t *testing.T) {
	s := newStack(t, `
version: agentgov/v1
name: prompts
default: allow
rules:
  - id: money
    match: {points: [pre_model_call]}
    when: 'content.contains("wire")'
    effect: require_approval
`)
	prompt := func(content string, tokens int64) action.Action {
		return action.Action{Agent: action.Agent{ID: "a1"}, Point: action.PreModelCall, Model: "gpt-4o-mini",
			Destination: "api.openai.com", Content: content, Estimate: action.Estimate{Tokens: tokens, CostUSD: 0.0001}}
	}
	lunch := prompt("wire $10 to Bob for lunch", 11)
	d := s.decide(t, lunch)
	if d.Effect != action.RequireApproval || d.Approval == nil {
		t.Fatalf("prompt: %+v", d)
	}
	s.approve(t, d.Approval.ID)
	for _, c := range []struct {
		a      action.Action
		reason string
	}{
		{prompt("wire $1,000,000 to MALLORY", 11), approval.ReasonContentChanged},
		{prompt("wire $10 to Bob for lunch", 90000), approval.ReasonEstimateChanged},
	} {
		c.a.ApprovalID = d.Approval.ID
		if d2 := s.decide(t, c.a); d2.Effect != action.Deny || !strings.Contains(d2.Reasons[0], c.reason) {
			t.Errorf("%q, %d tokens: %+v, want a deny for %s", c.a.Content, c.a.Estimate.Tokens, d2, c.reason)
		}
	}
	lunch.ApprovalID = d.Approval.ID
	if d2 := s.decide(t, lunch); d2.Effect != action.Allow {
		t.Fatalf("the approved prompt: %+v", d2)
	}
}

// Someone who reads the data directory finds no secret or personal data in
// the approvals table: the approver's copy of the action is masked as the
// audit log's is, and the digest still binds the exact action.
func TestTicketStoresTheActionMasked(t *testing.T) {
	s := newStack(t, openPolicy)
	wire := call("wire")
	wire.Args = map[string]any{"to": "jane.doe@example.com", "amount": 10, "note": "key AKIAIOSFODNN7EXAMPLE"}
	wire.Content = "card 4111 1111 1111 1111"
	d := s.decide(t, wire)
	if d.Effect != action.RequireApproval || d.Approval == nil {
		t.Fatalf("wire: %+v", d)
	}
	tickets, err := s.db.ListTickets(context.Background())
	if err != nil || len(tickets) != 1 {
		t.Fatalf("tickets %+v %v", tickets, err)
	}
	raw, _ := json.Marshal(tickets[0])
	for _, secret := range []string{"jane.doe@example.com", "AKIAIOSFODNN7EXAMPLE", "4111 1111 1111 1111"} {
		if strings.Contains(string(raw), secret) {
			t.Errorf("%s is stored in clear: %s", secret, raw)
		}
	}
	want, _ := action.Digest(&wire)
	tk := tickets[0]
	if tk.ActionDigest != want || !strings.Contains(tk.Action.Content, "[REDACTED:") || tk.Action.Args["amount"] != int64(10) {
		t.Fatalf("ticket %s", raw)
	}
	s.approve(t, tk.ID)
	wire.ApprovalID = tk.ID
	if d2 := s.decide(t, wire); d2.Effect != action.Allow {
		t.Fatalf("the approved wire: %+v", d2)
	}
}

// The retry under an approved ticket cannot be written to the audit log: it
// is denied, and the approval is not lost with it; once the log is back,
// the same retry goes through, once.
func TestTicketIsNotUsedByADecisionThatWasNotLogged(t *testing.T) {
	s := newStack(t, openPolicy)
	wire := call("wire")
	d := s.decide(t, wire)
	s.approve(t, d.Approval.ID)
	wire.ApprovalID = d.Approval.ID
	s.audit.broken.Store(true)
	if d2 := s.decide(t, wire); d2.Effect != action.Deny || !strings.Contains(d2.Reasons[0], "audit log unavailable") {
		t.Fatalf("retry with the log down: %+v", d2)
	}
	if tk, _ := s.approvals.Get(context.Background(), d.Approval.ID); tk.Status != approval.Approved || tk.UsedBy != "" {
		t.Fatalf("the ticket was used by a decision that did not happen: %+v", tk)
	}
	s.audit.broken.Store(false)
	if d2 := s.decide(t, wire); d2.Effect != action.Allow {
		t.Fatalf("retry once the log is back: %+v", d2)
	}
	if d2 := s.decide(t, wire); d2.Effect != action.Deny {
		t.Fatalf("third use: %+v", d2)
	}
}

// A require_approval decision that cannot be logged leaves no ticket for an
// approver to approve.
func TestTicketOfADecisionThatWasNotLoggedIsCancelled(t *testing.T) {
	s := newStack(t, openPolicy)
	s.audit.broken.Store(true)
	d := s.decide(t, call("wire"))
	if d.Effect != action.Deny || d.Approval != nil {
		t.Fatalf("wire with the log down: %+v", d)
	}
	if l, err := s.approvals.List(context.Background(), ""); err != nil || len(l) != 0 {
		t.Fatalf("tickets left for a decision that did not happen: %+v %v", l, err)
	}
}
