package budget_test

import (
	"context"
	"errors"
	"math"
	"testing"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/budget"
)

// Whoever reports a call's usage (an agent, an upstream model provider),
// numbers near int64's limit must not wrap a budget's sums: the budget
// would become unreadable (every agent it covers denied) or negative (no
// limit at all). A call counts at most MaxCallTokens and MaxCallCostUSD,
// so the budget holds at its limit and denies the next call, saying why.
func TestUsageNearInt64sLimitCannotBreakABudget(t *testing.T) {
	for _, c := range []struct {
		name string
		o    action.Outcome
	}{
		{"input and output that wrap when added", action.Outcome{Status: "ok", InputTokens: math.MaxInt64, OutputTokens: math.MaxInt64}},
		{"a total at the limit", action.Outcome{Status: "ok", Tokens: math.MaxInt64}},
		{"a cost beyond what micro-dollars hold", action.Outcome{Status: "ok", CostUSD: 1e300}},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, t0)
			e.put(t, `{"id":"b","scope":{"org":"acme"},"period":"monthly","limits":{"cost_usd":10,"tokens":1000}}`)
			for range 2 {
				id, v := e.reserve(t, act("acme", "", "", "a", "", 10, 0.01))
				if !v.Reserved {
					break
				}
				if err := e.b.Settle(context.Background(), id, c.o); err != nil {
					t.Fatalf("settle: %v", err)
				}
			}
			u := e.usage(t, "b")
			if u.Spent.Tokens < 0 || u.Spent.InputTokens < 0 || u.Spent.OutputTokens < 0 || u.Spent.CostMicros < 0 ||
				u.Spent.Tokens > 2*budget.MaxCallTokens {
				t.Fatalf("spent %+v: a sum wrapped or passed the bound of its calls", u.Spent)
			}
			if _, v := e.reserve(t, act("acme", "", "", "a2", "", 10, 0.01)); v.Reserved || v.Effect != action.Deny {
				t.Fatalf("the next call of the org: %+v; want a denial by the exhausted budget", v)
			}
		})
	}
}

// An estimate beyond the bounds of one call is refused naming the field,
// whichever entry point passed it on.
func TestEstimateBeyondOneCallIsRefused(t *testing.T) {
	e := newEnv(t, t0)
	e.put(t, `{"id":"b","scope":{"org":"acme"},"period":"monthly","limits":{"tokens":1000}}`)
	for field, a := range map[string]*action.Action{
		"estimate.tokens":   act("acme", "", "", "a", "", budget.MaxCallTokens+1, 0),
		"estimate.cost_usd": act("acme", "", "", "a", "", 1, budget.MaxCallCostUSD+1),
	} {
		_, err := e.b.Reserve(context.Background(), "dec_"+field, a)
		var fe *action.FieldError
		if !errors.As(err, &fe) || fe.Field != field {
			t.Errorf("%s beyond one call: %v, want an error naming it", field, err)
		}
	}
}
