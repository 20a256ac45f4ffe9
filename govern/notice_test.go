package govern_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/budget"
	"github.com/agentgov/agentgov/govern"
	"github.com/agentgov/agentgov/killswitch"
)

// notices collects what the engine tells the operator.
type notices struct {
	mu   sync.Mutex
	seen []govern.Notice
}

func (n *notices) notify(ctx context.Context, x govern.Notice) {
	n.mu.Lock()
	n.seen = append(n.seen, x)
	n.mu.Unlock()
}

func (n *notices) kinds() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []string
	for _, x := range n.seen {
		out = append(out, x.Kind)
	}
	return out
}

func (n *notices) last() govern.Notice {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.seen[len(n.seen)-1]
}

// Every kill switch engaged or released, whoever asked, every policy set
// put in force, and every budget threshold crossed is told to the
// operator, each once.
func TestOperatorHearsOfKillsReloadsAndBudgetThresholds(t *testing.T) {
	log, db := openAudit(t)
	ctx := context.Background()
	kill, err := killswitch.New(ctx, db, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	b, err := budget.New(db, budget.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var n notices
	eng := govern.New(mustSet(t, basic), govern.WithAudit(log), govern.WithKillSwitch(kill), govern.WithBudgets(b), govern.WithNotify(n.notify))

	sw, err := eng.EngageKill(ctx, killswitch.Switch{Scope: killswitch.Agent, Target: "a9", Reason: "runaway", By: "ops"})
	if err != nil {
		t.Fatal(err)
	}
	if got := n.last(); got.Kind != "kill" || got.Agent != "a9" || got.Fields["switch"] != sw.ID || got.Fields["by"] != "ops" || got.Message != "runaway" {
		t.Fatalf("engage: %+v", got)
	}
	// The same scope again keeps the switch in force and tells nothing new.
	if _, err := eng.EngageKill(ctx, killswitch.Switch{Scope: killswitch.Agent, Target: "a9", Reason: "again", By: "ops"}); err != nil {
		t.Fatal(err)
	}
	if _, err := eng.ReleaseKill(ctx, sw.ID, "ops2"); err != nil {
		t.Fatal(err)
	}
	if got := n.last(); got.Kind != "kill_release" || got.Fields["by"] != "ops2" || got.Fields["switch"] != sw.ID {
		t.Fatalf("release: %+v", got)
	}

	set := mustSet(t, basic+"\n")
	prev := eng.Policy().Digest()
	if err := eng.Load(ctx, set); err != nil {
		t.Fatal(err)
	}
	if got := n.last(); got.Kind != "policy_load" || got.Fields["digest"] != set.Digest() || got.Fields["previous"] != prev {
		t.Fatalf("load: %+v", got)
	}

	if err := eng.PutBudget(ctx, budget.Config{ID: "two", Scope: budget.Scope{Agent: "a1"}, Period: "daily",
		Limits: budget.Amounts{Calls: 2}, Thresholds: budget.Thresholds{Soft: 0.5, Hard: 1}}, "ops"); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		eng.Decide(ctx, tool("read_file", map[string]any{"path": "/tmp/x"}))
	}
	want := []string{"kill", "kill_release", "policy_load", "budget_soft", "budget_hard"}
	got := n.kinds()
	if len(got) != len(want) {
		t.Fatalf("notices %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("notices %v, want %v", got, want)
		}
	}
	if hard := n.last(); hard.Fields["budget"] != "two" || hard.Agent != "a1" || hard.Decision.IsZero() {
		t.Fatalf("hard: %+v", hard)
	}
	if d, _ := eng.Decide(ctx, tool("read_file", map[string]any{"path": "/tmp/x"})); d.Effect != action.Deny {
		t.Fatalf("a third call within two: %+v", d)
	}
}

// observer records what the engine tells it.
type observer struct {
	mu       sync.Mutex
	entries  []string
	timed    int
	totals   int
	outcomes []string
}

func (o *observer) Decided(entry string, a *action.Action, d *action.Decision, t *govern.StageTimes) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.entries = append(o.entries, entry)
	if t.Ran[govern.StagePolicy] && t.Ran[govern.StageAudit] {
		o.timed++
	}
	if t.Total > 0 {
		o.totals++
	}
}

func (o *observer) OutcomeRecorded(out *action.Outcome) {
	o.mu.Lock()
	o.outcomes = append(o.outcomes, out.Status)
	o.mu.Unlock()
}

// Every decision is observed with its entry point and total time; the
// stages of one in govern.StageSample are timed (the first among them).
func TestEveryDecisionIsObservedAndStagesSampled(t *testing.T) {
	log, _ := openAudit(t)
	var o observer
	eng := govern.New(mustSet(t, basic), govern.WithAudit(log), govern.WithObserver(&o))
	ctx := context.Background()
	n := 2 * govern.StageSample
	var last action.Decision
	for i := range n {
		c := ctx
		if i == 0 {
			c = action.WithEnforcer(ctx, "mcp_gateway")
		}
		last, _ = eng.Decide(c, tool("read_file", map[string]any{"path": "/tmp/x"}))
	}
	if err := eng.Outcome(ctx, last.ID, action.Outcome{Status: "ok"}); err != nil {
		t.Fatal(err)
	}
	o.mu.Lock()
	entries, timed, totals, outcomes := o.entries, o.timed, o.totals, o.outcomes
	o.mu.Unlock()
	if len(entries) != n || entries[0] != "mcp_gateway" || entries[1] != "api" || totals != n {
		t.Fatalf("entries %v, totals %d", entries, totals)
	}
	if timed != 2 {
		t.Errorf("%d decisions had their stages timed, want 2 of %d", timed, n)
	}
	if len(outcomes) != 1 || outcomes[0] != "ok" {
		t.Errorf("outcomes %v", outcomes)
	}
	// The library's engine, without an audit log, names itself.
	lib := govern.New(mustSet(t, basic), govern.WithObserver(&o))
	lib.Decide(ctx, tool("read_file", nil))
	o.mu.Lock()
	defer o.mu.Unlock()
	if got := o.entries[len(o.entries)-1]; got != "library" {
		t.Errorf("library entry %q", got)
	}
}
