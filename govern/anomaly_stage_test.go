package govern_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/anomaly"
	"github.com/agentgov/agentgov/approval"
	"github.com/agentgov/agentgov/govern"
	"github.com/agentgov/agentgov/killswitch"
	"github.com/agentgov/agentgov/trust"
)

// watched is an engine over real stores (SQLite, the audit log, approval
// tickets, the kill switch, trust scores) with the anomaly detector, on a
// clock the test moves.
type watched struct {
	*trusted
	det     *anomaly.Detector
	now     time.Time
	mu      sync.Mutex
	notices []govern.Notice
}

func newWatched(t *testing.T, policy string, cfg anomaly.Config) *watched {
	t.Helper()
	ctx := context.Background()
	cfg.Fill()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	w := &watched{det: anomaly.New(cfg), now: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)}
	clock := func() time.Time { return w.now }
	var tc trust.Config
	tc.Fill()
	var r trust.Rings
	r.Fill()
	log, db := openAudit(t)
	k, err := trust.New(ctx, trust.Options{Store: db, Config: tc, Rings: r, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	ks, err := killswitch.New(ctx, db, clock)
	if err != nil {
		t.Fatal(err)
	}
	apr := approval.New(db, clock)
	fa := &failingAuditor{Log: log}
	eng := govern.New(mustSet(t, policy), govern.WithClock(clock), govern.WithAudit(fa), govern.WithApprovals(apr),
		govern.WithKillSwitch(ks), govern.WithTrust(k), govern.WithAnomaly(w.det),
		govern.WithNotify(func(_ context.Context, n govern.Notice) {
			w.mu.Lock()
			w.notices = append(w.notices, n)
			w.mu.Unlock()
		}))
	k.Bind(eng.Change, nil)
	w.trusted = &trusted{stack: &stack{eng: eng, db: db, log: log, audit: fa, approvals: apr}, keeper: k, kill: ks}
	return w
}

func (w *watched) noticesOf(kind string) []govern.Notice {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []govern.Notice
	for _, n := range w.notices {
		if n.Kind == kind {
			out = append(out, n)
		}
	}
	return out
}

// baseline has the agent call tool n times a minute for minutes minutes.
func (w *watched) baseline(t *testing.T, tool string, minutes, n int) {
	t.Helper()
	start := w.now
	for m := range minutes {
		for i := range n {
			w.now = start.Add(time.Duration(m)*time.Minute + time.Duration(i)*time.Second)
			if d := w.decide(t, call(tool)); d.Effect != action.Allow || d.Flagged {
				t.Fatalf("baseline minute %d call %d: %+v", m, i, d)
			}
		}
	}
	w.now = start.Add(time.Duration(minutes) * time.Minute)
}

const anomalyOpen = `
version: agentgov/v1
name: open
default: allow
rules: []
`

// An agent with a steady baseline that bursts passes the z-score
// threshold; the flag response marks the decision, records an "anomaly"
// entry and a notice once for the interval, and its trust score falls.
func TestAnomalyBurstIsFlaggedAuditedAndLowersTrust(t *testing.T) {
	w := newWatched(t, anomalyOpen, anomaly.Config{WarmupIntervals: 30, RateZ: 4, Responses: []anomaly.Response{{When: "rate_z", Action: "flag"}}})
	w.baseline(t, "read_file", 30, 10)
	var flagged []int
	for i := 1; i <= 40; i++ {
		w.now = w.now.Add(time.Second)
		if d := w.decide(t, call("read_file")); d.Flagged {
			if d.Effect != action.Allow {
				t.Fatalf("a flagged burst call was not allowed: %+v", d)
			}
			flagged = append(flagged, i)
		}
	}
	if len(flagged) != 18 || flagged[0] != 23 {
		t.Fatalf("flagged calls %v, want the 23rd to the 40th", flagged)
	}
	es := entriesOf(t, w.log, "anomaly")
	if len(es) != 1 {
		t.Fatalf("%d anomaly entries, want 1 for the interval", len(es))
	}
	rec := string(es[0].Record)
	for _, want := range []string{`"anomaly":"rate_z"`, `"agent":"a1"`, `"count":23`, `"mean":10`, "23 calls by a1"} {
		if !strings.Contains(rec, want) {
			t.Errorf("anomaly entry lacks %s: %s", want, rec)
		}
	}
	if ns := w.noticesOf("anomaly"); len(ns) != 1 || ns[0].Agent != "a1" || ns[0].Fields["anomaly"] != "rate_z" {
		t.Fatalf("notices %+v", ns)
	}
	// The decision's own entry says what the detector found.
	ds := entriesOf(t, w.log, "decision")
	if last := string(ds[len(ds)-1].Record); !strings.Contains(last, `"rate_z":9.48`) || !strings.Contains(last, `"count":40`) {
		t.Fatalf("last decision entry %s", last)
	}
	w.flush(t)
	if got := w.keeper.View("a1").Score(); got >= 500 {
		t.Fatalf("trust score %d after a burst, want below 500", got)
	}
	if w.det.Fired(anomaly.RateZ) != 1 {
		t.Fatalf("episodes %d", w.det.Fired(anomaly.RateZ))
	}
}

// The first use of a tool after the warm-up needs approval; approved, the
// retry goes through, and the tool is known from then on.
func TestAnomalyNewToolNeedsApproval(t *testing.T) {
	w := newWatched(t, anomalyOpen, anomaly.Config{WarmupIntervals: 5, Responses: []anomaly.Response{{When: "new_tool", Action: "approval"}}})
	w.decide(t, call("list_dir")) // during the warm-up: learned silently
	w.baseline(t, "read_file", 5, 2)
	if d := w.decide(t, call("list_dir")); d.Effect != action.Allow {
		t.Fatalf("a tool first used during the warm-up: %+v", d)
	}
	d := w.decide(t, call("delete_repo"))
	if d.Effect != action.RequireApproval || d.Approval == nil || len(d.Rules) != 1 || d.Rules[0] != "anomaly.new_tool" ||
		d.Reasons[0] != "anomaly new_tool: a1 has never been allowed to use tool delete_repo" {
		t.Fatalf("first use after the warm-up: %+v", d)
	}
	// Asking again without the ticket asks again: the tool is not learned
	// by being refused.
	if d2 := w.decide(t, call("delete_repo")); d2.Effect != action.RequireApproval {
		t.Fatalf("second ask: %+v", d2)
	}
	w.approve(t, d.Approval.ID)
	retry := call("delete_repo")
	retry.ApprovalID = d.Approval.ID
	if d := w.decide(t, retry); d.Effect != action.Allow {
		t.Fatalf("approved retry: %+v", d)
	}
	if d := w.decide(t, call("delete_repo")); d.Effect != action.Allow {
		t.Fatalf("after it was allowed once: %+v", d)
	}
}

// The isolate response engages the kill switch on the agent, audited as
// the anomaly's doing; the agent's next action is stopped by the switch.
func TestAnomalyIsolateEngagesTheKillSwitch(t *testing.T) {
	w := newWatched(t, anomalyOpen, anomaly.Config{WarmupIntervals: 5, Responses: []anomaly.Response{{When: "new_tool", Action: "isolate"}}})
	w.baseline(t, "read_file", 5, 2)
	d := w.decide(t, call("exfiltrate"))
	if d.Effect != action.Deny || !strings.Contains(d.Reasons[0], "anomaly new_tool") || !strings.Contains(d.Reasons[0], "isolated by the kill switch") {
		t.Fatalf("isolating decision: %+v", d)
	}
	kills := entriesOf(t, w.log, "kill")
	if len(kills) != 1 || !strings.Contains(string(kills[0].Record), `"by":"anomaly"`) || !strings.Contains(string(kills[0].Record), d.ID.String()) {
		t.Fatalf("kill entries %+v", kills)
	}
	if sws, err := w.kill.List(context.Background(), false); err != nil || len(sws) != 1 || sws[0].Scope != killswitch.Agent || sws[0].Target != "a1" {
		t.Fatalf("switches %+v", sws)
	}
	if next := w.decide(t, call("read_file")); next.Effect != action.Deny || !strings.Contains(next.Reasons[0], "kill switch") {
		t.Fatalf("after isolation: %+v", next)
	}
	if len(w.noticesOf("kill")) != 1 {
		t.Fatalf("kill notices %+v", w.noticesOf("kill"))
	}
}

// A policy rule reads anomaly.new_tool as any other variable; a deny by
// policy stands whatever the responses.
func TestAnomalyPolicyRule(t *testing.T) {
	const p = `
version: agentgov/v1
name: careful
default: allow
rules:
  - id: new-tools
    when: anomaly.new_tool
    effect: require_approval
  - id: no-shell
    match: {tools: [shell]}
    effect: deny
`
	w := newWatched(t, p, anomaly.Config{WarmupIntervals: 2, Responses: []anomaly.Response{{When: "new_tool", Action: "approval"}}})
	w.baseline(t, "read_file", 2, 1)
	if d := w.decide(t, call("send_mail")); d.Effect != action.RequireApproval || d.Rules[0] != "new-tools" {
		t.Fatalf("%+v", d)
	}
	if d := w.decide(t, call("shell")); d.Effect != action.Deny || d.Rules[0] != "no-shell" {
		t.Fatalf("%+v", d)
	}
}

// On the library's path (no stores) the detector costs no allocation, and
// the approval response still asks.
func TestAnomalyLibraryPath(t *testing.T) {
	cfg := anomaly.Config{WarmupIntervals: 1, Responses: []anomaly.Response{{When: "new_tool", Action: "approval"}}}
	cfg.Fill()
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	eng := govern.New(mustSet(t, anomalyOpen), govern.WithAnomaly(anomaly.New(cfg)), govern.WithClock(func() time.Time { return now }))
	ctx := context.Background()
	a := call("read_file")
	if d, _ := eng.Decide(ctx, a); d.Effect != action.Allow {
		t.Fatalf("%+v", d)
	}
	now = now.Add(time.Minute)
	if n := testing.AllocsPerRun(1000, func() { eng.Decide(ctx, a) }); n != 1 {
		t.Fatalf("%v allocations per decision, want 1 (its id)", n)
	}
	if d, _ := eng.Decide(ctx, call("write_file")); d.Effect != action.RequireApproval {
		t.Fatalf("%+v", d)
	}
}

// An agent that rotates over its tools, then loops on one, leaves its
// entropy band: with the approval response, the loop waits for a human.
func TestAnomalyEntropyOutOfBandAsksForApproval(t *testing.T) {
	w := newWatched(t, anomalyOpen, anomaly.Config{WarmupIntervals: 2, EntropyWindow: 10, MaxToolsPerAgent: 16,
		Responses: []anomaly.Response{{When: "entropy", Action: "approval"}}})
	tools := []string{"read_file", "list_dir", "search", "open_url"}
	start := w.now
	for i := range 120 { // twelve windows over two minutes
		w.now = start.Add(time.Duration(i) * time.Second)
		if d := w.decide(t, call(tools[i%4])); d.Effect != action.Allow {
			t.Fatalf("rotation call %d: %+v", i, d)
		}
	}
	var asked action.Decision
	for i := range 10 {
		w.now = w.now.Add(time.Second)
		if d := w.decide(t, call("read_file")); d.Effect == action.RequireApproval {
			asked = d
			break
		} else if i == 9 {
			t.Fatalf("ten calls of one tool stayed in band: %+v", d)
		}
	}
	if asked.Rules[0] != "anomaly.entropy" || !strings.Contains(asked.Reasons[0], "outside its band") || asked.Approval == nil {
		t.Fatalf("%+v", asked)
	}
}
