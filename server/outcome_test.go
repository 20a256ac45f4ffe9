package server_test

import (
	"context"
	"strings"
	"testing"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/budget"
)

func (e *env) budget(js string) {
	e.t.Helper()
	if code, m := e.call("POST", "/v1/budgets", "admin-tok", js); code != 201 {
		e.t.Fatalf("budget: %d %v", code, m)
	}
}

func (e *env) spent(org string) budget.Amounts {
	e.t.Helper()
	us, err := e.budgets.Usage(context.Background(), budget.Scope{Org: org})
	if err != nil || len(us) != 1 {
		e.t.Fatalf("usage: %+v %v", us, err)
	}
	return us[0].Spent
}

// The model proxy decides a call for a1 and streams the answer; a1 reads
// the decision id from the X-Agentgov-Decision header and posts an outcome
// costing nothing before the proxy settles. It is refused, and the proxy's
// real settlement counts.
func TestAgentCannotSettleADecisionTheProxySettles(t *testing.T) {
	e := start(t)
	e.budget(`{"id":"spend","scope":{"org":"acme"},"period":"none","limits":{"cost_usd":100}}`)
	ctx := action.WithEnforcer(context.Background(), "model_proxy")
	d, err := e.eng.Decide(ctx, action.Action{
		Agent: action.Agent{ID: "a1"}, Principal: action.Principal{User: "alice", Team: "search", Org: "acme"},
		Point: action.PreModelCall, Model: "gpt-4o", Content: "hello", Estimate: action.Estimate{Tokens: 100, CostUSD: 1},
	})
	if err != nil || d.Effect != action.Allow {
		t.Fatalf("proxy decision: %+v %v", d, err)
	}
	code, m := e.call("POST", "/v1/decisions/"+d.ID.String()+"/outcome", "a1-tok", `{"status":"ok","cost_usd":0,"tokens":0}`)
	if code != 403 || !strings.Contains(errMsg(m), "model_proxy") {
		t.Fatalf("the agent's outcome for the proxy's decision: %d %v", code, m)
	}
	// The proxy's own settlement still has the reservation to settle.
	if err := e.eng.Outcome(context.Background(), d.ID, action.Outcome{Status: "ok", Tokens: 5000, CostUSD: 7.5}); err != nil {
		t.Fatal(err)
	}
	if got := e.spent("acme"); got.CostMicros != 7_500_000 || got.Tokens != 5000 {
		t.Fatalf("spent %+v, want the proxy's 7.5 USD and 5000 tokens", got)
	}
	if n := len(e.entries("outcome")); n != 1 {
		t.Fatalf("%d outcome entries, want the proxy's one", n)
	}
	// The agent may still read its decision.
	if code, _ := e.call("GET", "/v1/decisions/"+d.ID.String(), "a1-tok", ""); code != 200 {
		t.Fatalf("reading the decision: %d", code)
	}
}

// An agent settles its own decision once: a second outcome, cheaper or
// not, is refused and changes nothing.
func TestOutcomeOfAnAgentSettledDecisionIsRecordedOnce(t *testing.T) {
	e := start(t)
	e.budget(`{"id":"spend","scope":{"org":"acme"},"period":"none","limits":{"cost_usd":100}}`)
	_, d := e.call("POST", "/v1/decide", "a1-tok", `{"tool":{"name":"read_file"},"estimate":{"cost_usd":1}}`)
	id := d["id"].(string)
	if code, m := e.call("POST", "/v1/decisions/"+id+"/outcome", "a1-tok", `{"status":"ok","cost_usd":2}`); code != 200 {
		t.Fatalf("outcome: %d %v", code, m)
	}
	if code, m := e.call("POST", "/v1/decisions/"+id+"/outcome", "a1-tok", `{"status":"ok","cost_usd":2}`); code != 409 {
		t.Fatalf("the same outcome again: %d %v", code, m)
	}
	if code, m := e.call("POST", "/v1/decisions/"+id+"/outcome", "a1-tok", `{"status":"error","cost_usd":0}`); code != 409 {
		t.Fatalf("another outcome: %d %v", code, m)
	}
	if got := e.spent("acme"); got.CostMicros != 2_000_000 || got.Calls != 1 {
		t.Fatalf("spent %+v, want one call at 2 USD", got)
	}
	if n := len(e.entries("outcome")); n != 1 {
		t.Fatalf("%d outcome entries, want 1", n)
	}
	// A retry with the same Idempotency-Key gets the first answer back.
	_, d = e.call("POST", "/v1/decide", "a1-tok", `{"tool":{"name":"read_file"}}`)
	id = d["id"].(string)
	for range 2 {
		if code, m := e.call("POST", "/v1/decisions/"+id+"/outcome", "a1-tok", `{"status":"ok"}`, "Idempotency-Key", "o-1"); code != 200 {
			t.Fatalf("idempotent retry: %d %v", code, m)
		}
	}
}

// An outcome the audit log cannot take is not recorded, and may be sent
// again once the log is back.
func TestOutcomeThatCannotBeAuditedIsNotRecorded(t *testing.T) {
	e := start(t)
	e.budget(`{"id":"spend","scope":{"org":"acme"},"period":"none","limits":{"cost_usd":100}}`)
	_, d := e.call("POST", "/v1/decide", "a1-tok", `{"tool":{"name":"read_file"},"estimate":{"cost_usd":1}}`)
	id := d["id"].(string)
	e.audit.broken.Store(true)
	if code, _ := e.call("POST", "/v1/decisions/"+id+"/outcome", "a1-tok", `{"status":"ok","cost_usd":3}`); code != 503 {
		t.Fatalf("outcome with the log down: %d", code)
	}
	e.audit.broken.Store(false)
	if got := e.spent("acme"); got.Calls != 0 {
		t.Fatalf("an unrecorded outcome was settled: %+v", got)
	}
	if code, m := e.call("POST", "/v1/decisions/"+id+"/outcome", "a1-tok", `{"status":"ok","cost_usd":3}`); code != 200 {
		t.Fatalf("outcome once the log is back: %d %v", code, m)
	}
	if got := e.spent("acme"); got.CostMicros != 3_000_000 {
		t.Fatalf("spent %+v", got)
	}
}
