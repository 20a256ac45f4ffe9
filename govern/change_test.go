package govern_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/approval"
	"github.com/agentgov/agentgov/audit"
	"github.com/agentgov/agentgov/govern"
	"github.com/agentgov/agentgov/killswitch"
)

// records returns the audit entries of kind, as their records.
func records(t *testing.T, log *audit.Log, kind string) []map[string]any {
	t.Helper()
	es, err := log.Entries(context.Background(), -1, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for _, e := range es {
		if e.Kind != kind {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(e.Record, &m); err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

// A change whose record cannot be written is not made; one that fails after
// its record was written is followed by a record of the failure.
func TestChangeRecordsFirstAndRecordsFailures(t *testing.T) {
	log, _ := openAudit(t)
	fa := &failingAuditor{Log: log}
	eng := govern.New(mustSet(t, basic), govern.WithAudit(fa))
	ctx := context.Background()

	fa.broken.Store(true)
	applied := false
	err := eng.Change(ctx, "test", func(ctx context.Context, record func(context.Context, any) error) error {
		if err := record(ctx, map[string]any{"x": 1}); err != nil {
			return err
		}
		applied = true
		return nil
	})
	if !errors.Is(err, govern.ErrNotAudited) || applied {
		t.Fatalf("with the log down: err %v, applied %v", err, applied)
	}
	fa.broken.Store(false)

	err = eng.Change(ctx, "test", func(ctx context.Context, record func(context.Context, any) error) error {
		if err := record(ctx, map[string]any{"x": 2}); err != nil {
			return err
		}
		return errors.New("store full")
	})
	if err == nil || !strings.Contains(err.Error(), "store full") {
		t.Fatalf("failed apply: %v", err)
	}
	if got := records(t, log, "test"); len(got) != 1 || got[0]["x"] != float64(2) {
		t.Fatalf("test entries %v", got)
	}
	if got := records(t, log, "test.failed"); len(got) != 1 || !strings.Contains(got[0]["error"].(string), "store full") {
		t.Fatalf("failure entries %v", got)
	}

	// A caller that hangs up does not stop the change half way.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	err = eng.Change(cctx, "test", func(ctx context.Context, record func(context.Context, any) error) error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return record(ctx, map[string]any{"x": 3})
	})
	if err != nil || len(records(t, log, "test")) != 2 {
		t.Fatalf("change on a cancelled context: %v", err)
	}
}

// A policy's isolate response engages the kill switch only through the
// audit log: with the log down the action is denied and no switch is left
// in force that the log does not show.
func TestIsolateEngagesNoSwitchTheLogDoesNotShow(t *testing.T) {
	log, db := openAudit(t)
	fa := &failingAuditor{Log: log}
	kill, err := killswitch.New(context.Background(), db, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	eng := govern.New(mustSet(t, `
version: agentgov/v1
name: iso
default: allow
rules:
  - id: shadow
    match: {tools: [read_file]}
    when: 'args.path == "/etc/shadow"'
    effect: deny
    severity: high
responses:
  high: [isolate]
`), govern.WithAudit(fa), govern.WithKillSwitch(kill))
	ctx := context.Background()
	shadow := tool("read_file", map[string]any{"path": "/etc/shadow"})
	fa.broken.Store(true)
	if d, _ := eng.Decide(ctx, shadow); d.Effect != action.Deny {
		t.Fatalf("with the log down: %+v", d)
	}
	fa.broken.Store(false)
	if l, _ := kill.List(ctx, true); len(l) != 0 {
		t.Fatalf("a switch was engaged without a record: %+v", l)
	}
	if d, _ := eng.Decide(ctx, tool("read_file", map[string]any{"path": "/tmp/x"})); d.Effect != action.Allow {
		t.Fatalf("the agent is stopped by an unrecorded switch: %+v", d)
	}
	// With the log up, the switch and its record go together.
	d, _ := eng.Decide(ctx, shadow)
	kills := records(t, log, "kill")
	if l, _ := kill.List(ctx, false); len(l) != 1 || len(kills) != 1 || kills[0]["decision"] != d.ID.String() ||
		kills[0]["switch"].(map[string]any)["id"] != l[0].ID {
		t.Fatalf("switches %+v, kill entries %v", l, kills)
	}
}

// An approval given through the MCP gateway's elicitation goes through the
// same audited change as one given through the API.
func TestApprovalThroughElicitationIsAudited(t *testing.T) {
	s := newStack(t, openPolicy)
	d := s.decide(t, call("wire"))
	ctx := context.Background()
	answer := govern.ApprovalDecision{Ticket: d.Approval.ID, Approve: true, By: "user:alice", Note: "approved through MCP elicitation", Via: "mcp_elicitation"}
	s.audit.broken.Store(true)
	if _, err := s.eng.DecideApproval(ctx, answer); !errors.Is(err, govern.ErrNotAudited) {
		t.Fatalf("with the log down: %v", err)
	}
	if tk, _ := s.approvals.Get(ctx, d.Approval.ID); tk.Status != approval.Pending {
		t.Fatalf("an unrecorded approval was stored: %+v", tk)
	}
	s.audit.broken.Store(false)
	refused := answer
	refused.May = func(approval.Ticket) error { return errors.New("must come from group:finance") }
	if _, err := s.eng.DecideApproval(ctx, refused); err == nil || len(records(t, s.log, "approval")) != 0 {
		t.Fatalf("a refused answer: %v", err)
	}
	tk, err := s.eng.DecideApproval(ctx, answer)
	if err != nil || tk.Status != approval.Approved {
		t.Fatalf("approve: %+v %v", tk, err)
	}
	got := records(t, s.log, "approval")
	if len(got) != 1 || got[0]["via"] != "mcp_elicitation" || got[0]["by"] != "user:alice" || got[0]["ticket"] != tk.ID ||
		got[0]["action_digest"] != tk.ActionDigest || got[0]["event"] != "approve" {
		t.Fatalf("approval entries %v", got)
	}
}

// Each expiry of an undecided ticket is audited before it is stored.
func TestTicketExpiryIsAudited(t *testing.T) {
	log, db := openAudit(t)
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	apr := approval.New(db, clock)
	fa := &failingAuditor{Log: log}
	eng := govern.New(mustSet(t, `
version: agentgov/v1
name: quick
default: allow
rules:
  - id: wires
    match: {tools: [wire]}
    effect: require_approval
    approval: {timeout: 1m}
`), govern.WithAudit(fa), govern.WithApprovals(apr), govern.WithClock(clock))
	ctx := context.Background()
	d, _ := eng.Decide(ctx, tool("wire", nil))
	now = now.Add(time.Minute)
	fa.broken.Store(true)
	if got, err := eng.ExpireApprovals(ctx); !errors.Is(err, govern.ErrNotAudited) || len(got) != 0 {
		t.Fatalf("expire with the log down: %+v %v", got, err)
	}
	if due, _ := apr.Due(ctx); len(due) != 1 {
		t.Fatalf("an unrecorded expiry was stored: %d due", len(due))
	}
	fa.broken.Store(false)
	got, err := eng.ExpireApprovals(ctx)
	if err != nil || len(got) != 1 || got[0].ID != d.Approval.ID {
		t.Fatalf("expire: %+v %v", got, err)
	}
	entries := records(t, log, "approval")
	if len(entries) != 1 || entries[0]["event"] != "expire" || entries[0]["ticket"] != d.Approval.ID || entries[0]["decision"] != d.ID.String() {
		t.Fatalf("expiry entries %v", entries)
	}
	if again, _ := eng.ExpireApprovals(ctx); len(again) != 0 {
		t.Fatalf("expired twice: %+v", again)
	}
}

// A decision made for an enforcement point says so in its audit record, so
// that no one else settles it; one made for the agent says nothing.
func TestDecisionRecordNamesTheEnforcementPointThatSettlesIt(t *testing.T) {
	log, _ := openAudit(t)
	eng := govern.New(mustSet(t, basic), govern.WithAudit(log))
	ctx := action.WithEnforcer(context.Background(), "mcp_gateway")
	d, _ := eng.Decide(ctx, tool("read_file", nil))
	if s := allowedEntry(t, log, d); !strings.Contains(s, `"settled_by":"mcp_gateway"`) {
		t.Fatalf("record of a gateway decision: %s", s)
	}
	d, _ = eng.Decide(context.Background(), tool("read_file", nil))
	if s := allowedEntry(t, log, d); strings.Contains(s, "settled_by") {
		t.Fatalf("record of an agent's decision: %s", s)
	}
}

// hangingAuditor is the real log until hang is set; from then on it never
// answers an append: it returns only once the append's context ends (or
// the test does). An append given no deadline, or a later one than bound,
// is an error of the test: nothing would ever end it.
type hangingAuditor struct {
	*audit.Log
	t     *testing.T
	bound time.Duration
	hang  atomic.Bool
	end   chan struct{}
}

func (h *hangingAuditor) Append(ctx context.Context, kind string, rec any) (uint64, error) {
	if !h.hang.Load() {
		return h.Log.Append(ctx, kind, rec)
	}
	if dl, ok := ctx.Deadline(); !ok || time.Until(dl) > h.bound {
		h.t.Errorf("the %s entry was appended with no bound (deadline %v, set %v); want at most %s", kind, dl, ok, h.bound)
		return 0, errors.New("unbounded append")
	}
	select {
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-h.end:
		return 0, errors.New("the test ended")
	}
}

// An audit log that takes an append and never answers it (a database that
// hangs, not one that fails) must not hang a change of state, nor let it
// through: engaging a kill switch and deciding an approval each give up
// once the change's bound has passed, with ErrNotAudited, and nothing is
// changed: no switch is in force and the ticket is still pending.
func TestChangeGivesUpOnAnAuditLogThatNeverAnswers(t *testing.T) {
	ctx := context.Background()
	log, db := openAudit(t)
	kill, err := killswitch.New(ctx, db, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	approvals := approval.New(db, time.Now)
	const bound = 50 * time.Millisecond
	ha := &hangingAuditor{Log: log, t: t, bound: bound, end: make(chan struct{})}
	t.Cleanup(func() { close(ha.end) })
	eng := govern.New(mustSet(t, openPolicy), govern.WithAudit(ha), govern.WithKillSwitch(kill), govern.WithApprovals(approvals))
	govern.SetChangeTimeout(eng, bound)
	d, err := eng.Decide(ctx, call("wire"))
	if err != nil || d.Effect != action.RequireApproval || d.Approval == nil {
		t.Fatalf("the wire: %+v %v; want a ticket", d, err)
	}

	ha.hang.Store(true)
	if _, err := eng.EngageKill(ctx, killswitch.Switch{Scope: killswitch.Agent, Target: "a1", Reason: "runaway", By: "ops"}); !errors.Is(err, govern.ErrNotAudited) {
		t.Fatalf("engaging a switch with the log hung: %v; want ErrNotAudited", err)
	}
	if l, err := kill.List(ctx, false); err != nil || len(l) != 0 {
		t.Fatalf("switches in force %+v (%v); want none the log does not show", l, err)
	}
	if _, err := eng.DecideApproval(ctx, govern.ApprovalDecision{Ticket: d.Approval.ID, Approve: true, By: "fin"}); !errors.Is(err, govern.ErrNotAudited) {
		t.Fatalf("approving with the log hung: %v; want ErrNotAudited", err)
	}
	if tk, err := approvals.Get(ctx, d.Approval.ID); err != nil || tk.Status != approval.Pending {
		t.Fatalf("ticket %+v (%v); want it still pending", tk, err)
	}
}
