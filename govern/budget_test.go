package govern_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/budget"
	"github.com/agentgov/agentgov/govern"
	"github.com/agentgov/agentgov/killswitch"
	"github.com/agentgov/agentgov/store/sqlite"
)

func openBudgets(t *testing.T) *budget.Budgets {
	t.Helper()
	db, err := sqlite.OpenDir(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	b, err := budget.New(db, budget.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Policies see budget state and the model's tier: here premium models are
// refused once a budget is half spent.
func TestPoliciesSeeBudgetStateAndModelTier(t *testing.T) {
	b := openBudgets(t)
	ctx := context.Background()
	cfg, err := budget.DecodeConfig([]byte(`{"id":"team","scope":{"team":"search"},"period":"daily","limits":{"calls":10}}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Put(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	set := mustSet(t, `
version: agentgov/v1
name: models
default: allow
rules:
  - id: premium-when-half-spent
    match: {points: [pre_model_call]}
    when: 'model_tier == "premium" && budget.fraction >= 0.5'
    effect: deny
`)
	tiers := map[string]string{"big-model": "premium", "small-model": "economy"}
	eng := govern.New(set, govern.WithBudgets(b), govern.WithModelTier(func(m string) string { return tiers[m] }))
	call := func(model string) action.Decision {
		d, _ := eng.Decide(ctx, action.Action{Agent: action.Agent{ID: "a"}, Principal: action.Principal{Team: "search"}, Point: action.PreModelCall, Model: model})
		return d
	}
	for i := 0; i < 5; i++ {
		if d := call("big-model"); d.Effect != action.Allow {
			t.Fatalf("call %d: %+v", i, d)
		}
	}
	if d := call("big-model"); d.Effect != action.Deny || d.Rules[0] != "premium-when-half-spent" {
		t.Fatalf("premium at half budget: %+v", d)
	}
	if d := call("small-model"); d.Effect != action.Allow {
		t.Fatalf("economy at half budget: %+v", d)
	}
}

// 1,000 concurrent decisions against a budget that fits 37 allow exactly 37.
func TestConcurrentDecisionsNeverOverspend(t *testing.T) {
	b := openBudgets(t)
	ctx := context.Background()
	cfg, _ := budget.DecodeConfig([]byte(`{"id":"cap","scope":{"org":"acme"},"period":"none","limits":{"cost_usd":3.7}}`))
	if err := b.Put(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	eng := govern.New(mustSet(t, "version: agentgov/v1\nname: open\ndefault: allow\n"), govern.WithBudgets(b))
	var allowed atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 1000; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			d, _ := eng.Decide(ctx, action.Action{Agent: action.Agent{ID: fmt.Sprint("a", i%7)}, Principal: action.Principal{Org: "acme"},
				Tool: action.Tool{Name: "x"}, Estimate: action.Estimate{CostUSD: 0.1}})
			switch {
			case d.Effect == action.Allow:
				allowed.Add(1)
			case !strings.Contains(strings.Join(d.Reasons, " "), "budget cap"):
				t.Errorf("denied for another reason: %v", d.Reasons)
			}
		}(i)
	}
	wg.Wait()
	if n := allowed.Load(); n != 37 {
		t.Fatalf("%d allowed, want exactly 37", n)
	}
}

// failingSwitches is the real kill switch store with inserts that fail.
type failingSwitches struct{ *sqlite.DB }

func (failingSwitches) InsertSwitch(context.Context, killswitch.Switch) error {
	return errors.New("disk full")
}

// A budget kill threshold whose kill switch cannot be engaged does not let
// through the action that reached it.
func TestBudgetKillThresholdThatCannotTakeEffectDenies(t *testing.T) {
	log, db := openAudit(t)
	b, err := budget.New(db, budget.Options{})
	if err != nil {
		t.Fatal(err)
	}
	kill, err := killswitch.New(context.Background(), failingSwitches{db}, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cfg, err := budget.DecodeConfig([]byte(`{"id":"k","scope":{"org":"acme"},"period":"none","limits":{"calls":1},"thresholds":{"hard":1,"kill":1}}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Put(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	eng := govern.New(mustSet(t, "version: agentgov/v1\nname: open\ndefault: allow\n"), govern.WithAudit(log), govern.WithBudgets(b), govern.WithKillSwitch(kill))
	d, _ := eng.Decide(ctx, action.Action{Agent: action.Agent{ID: "a"}, Principal: action.Principal{Org: "acme"}, Tool: action.Tool{Name: "x"}})
	if d.Effect != action.Deny || !strings.Contains(d.Reasons[0], "kill switch could not be engaged") {
		t.Fatalf("decision at the kill threshold: %+v", d)
	}
	if u, _ := b.Usage(ctx, budget.Scope{Org: "acme"}); u[0].Reserved.Calls != 0 {
		t.Fatalf("the denied action still holds %d calls", u[0].Reserved.Calls)
	}
}
