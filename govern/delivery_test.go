package govern_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/govern"
)

const candidate = `
version: agentgov/v1
name: basic
default: allow
`

func TestCanaryShareIsStablePerAgent(t *testing.T) {
	live, cand := mustSet(t, basic), mustSet(t, candidate)
	eng := govern.New(live, govern.WithCanary(govern.Canary{Set: cand, Share: 0.3, Agents: []string{"vip-*"}}, nil))
	ctx := context.Background()
	in := 0
	for i := range 2000 {
		a := tool("write_file", nil)
		a.Agent.ID = fmt.Sprintf("agent-%d", i)
		d1, _ := eng.Decide(ctx, a)
		d2, _ := eng.Decide(ctx, a)
		if d1.Effect != d2.Effect {
			t.Fatalf("agent %s moved between the sets: %s then %s", a.Agent.ID, d1.Effect, d2.Effect)
		}
		if d1.Effect == action.Allow {
			in++
		}
	}
	// A share of 0.3 of 2000 agents: far from none and from all.
	if in < 450 || in > 750 {
		t.Fatalf("%d of 2000 agents in a 0.3 canary", in)
	}
	a := tool("write_file", nil)
	a.Agent.ID = "vip-1"
	if d, _ := eng.Decide(ctx, a); d.Effect != action.Allow {
		t.Fatalf("a named agent is not in the canary: %v", d.Effect)
	}
}

func TestCanaryRollbackThatCannotBeRecordedKeepsTheCanary(t *testing.T) {
	log, _ := openAudit(t)
	fa := &failingAuditor{Log: log}
	eng := govern.New(mustSet(t, basic), govern.WithAudit(fa),
		govern.WithCanary(govern.Canary{Set: mustSet(t, candidate), Agents: []string{"a1"}}, nil))
	ctx := context.Background()
	fa.broken.Store(true)
	if err := eng.RollbackCanary(ctx, "slo page"); err == nil || !strings.Contains(err.Error(), "audit") {
		t.Fatalf("rollback with the log down: %v", err)
	}
	if eng.CanaryInForce() == nil {
		t.Fatal("an unrecorded rollback took effect")
	}
	fa.broken.Store(false)
	if err := eng.RollbackCanary(ctx, "slo page"); err != nil {
		t.Fatal(err)
	}
	if eng.CanaryInForce() != nil {
		t.Fatal("still in force after a rollback")
	}
	if d, _ := eng.Decide(ctx, tool("write_file", nil)); d.Effect != action.Deny {
		t.Fatalf("the live set does not decide after the rollback: %v", d.Effect)
	}
	// Again: nothing to do, nothing recorded.
	if err := eng.RollbackCanary(ctx, "again"); err != nil {
		t.Fatal(err)
	}
}

type countingDelivery struct{ diffs, canary, rollbacks int }

func (c *countingDelivery) ShadowDiff(live, shadow action.Effect) { c.diffs++ }
func (c *countingDelivery) CanaryDecided(action.Effect)           { c.canary++ }
func (c *countingDelivery) CanaryRolledBack(string)               { c.rollbacks++ }

func TestShadowInALibraryEngineHasNoEffectAndIsCounted(t *testing.T) {
	obs := &countingDelivery{}
	eng := govern.New(mustSet(t, basic), govern.WithShadow(mustSet(t, candidate), obs))
	ctx := context.Background()
	d, _ := eng.Decide(ctx, tool("write_file", nil)) // live: default deny; shadow: allow
	if d.Effect != action.Deny || obs.diffs != 1 {
		t.Fatalf("effect %s, %d differences", d.Effect, obs.diffs)
	}
	if d, _ := eng.Decide(ctx, tool("read_file", map[string]any{"path": "/tmp/x"})); d.Effect != action.Allow || obs.diffs != 1 {
		t.Fatalf("the same answer counted as a difference: %s %d", d.Effect, obs.diffs)
	}
}

// A new shadow set takes effect once its load is recorded; a load the log
// cannot take leaves the old shadow; an engine without a shadow has none
// to replace.
func TestShadowLoadIsRecordedBeforeItTakesEffect(t *testing.T) {
	log, _ := openAudit(t)
	fa := &failingAuditor{Log: log}
	obs := &countingDelivery{}
	eng := govern.New(mustSet(t, basic), govern.WithAudit(fa), govern.WithShadow(mustSet(t, basic), obs))
	ctx := context.Background()
	if d, _ := eng.Decide(ctx, tool("write_file", nil)); d.Effect != action.Deny || obs.diffs != 0 {
		t.Fatalf("same shadow as live: %s, %d differences", d.Effect, obs.diffs)
	}
	open := mustSet(t, candidate)
	fa.broken.Store(true)
	if err := eng.LoadShadow(ctx, open, "reload"); err == nil || !strings.Contains(err.Error(), "audit") {
		t.Fatalf("shadow load with the log down: %v", err)
	}
	fa.broken.Store(false)
	eng.Decide(ctx, tool("write_file", nil))
	if obs.diffs != 0 || eng.ShadowPolicy().Digest() == open.Digest() {
		t.Fatalf("an unrecorded shadow load took effect: %d differences", obs.diffs)
	}
	if err := eng.LoadShadow(ctx, open, "reload"); err != nil {
		t.Fatal(err)
	}
	if d, _ := eng.Decide(ctx, tool("write_file", nil)); d.Effect != action.Deny || obs.diffs != 1 {
		t.Fatalf("after the shadow load: %s, %d differences", d.Effect, obs.diffs)
	}
	if err := govern.New(mustSet(t, basic)).LoadShadow(ctx, open, "reload"); !errors.Is(err, govern.ErrNoShadow) {
		t.Fatalf("an engine without a shadow: %v", err)
	}
}
