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
	"github.com/agentgov/agentgov/govern"
	"github.com/agentgov/agentgov/killswitch"
	"github.com/agentgov/agentgov/trust"
)

// trusted is an engine over real stores with trust scores and, when
// given, rings.
type trusted struct {
	*stack
	keeper *trust.Keeper
	kill   *killswitch.Switchboard
}

func newTrusted(t *testing.T, policy string, cfg trust.Config, r trust.Rings) *trusted {
	t.Helper()
	ctx := context.Background()
	cfg.Fill()
	r.Fill()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
	log, db := openAudit(t)
	k, err := trust.New(ctx, trust.Options{Store: db, Config: cfg, Rings: r})
	if err != nil {
		t.Fatal(err)
	}
	ks, err := killswitch.New(ctx, db, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	apr := approval.New(db, time.Now)
	fa := &failingAuditor{Log: log}
	eng := govern.New(mustSet(t, policy), govern.WithAudit(fa), govern.WithApprovals(apr), govern.WithKillSwitch(ks), govern.WithTrust(k))
	k.Bind(eng.Change, func(ctx context.Context, agent, reason string) error {
		_, err := eng.EngageKill(ctx, killswitch.Switch{Scope: killswitch.Agent, Target: agent, Reason: reason, By: "trust"})
		return err
	})
	return &trusted{stack: &stack{eng: eng, db: db, log: log, audit: fa, approvals: apr}, keeper: k, kill: ks}
}

func (s *trusted) flush(t *testing.T) {
	t.Helper()
	if err := s.keeper.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// entries returns the audit log's entries of the given kinds, in order.
func entriesOf(t *testing.T, log *audit.Log, kinds ...string) []audit.Entry {
	t.Helper()
	all, err := log.Entries(context.Background(), -1, 10000)
	if err != nil {
		t.Fatal(err)
	}
	var out []audit.Entry
	for _, e := range all {
		for _, k := range kinds {
			if e.Kind == k {
				out = append(out, e)
			}
		}
	}
	return out
}

const trustPolicy = `
version: agentgov/v1
name: trust-gates
default: allow
rules:
  - id: etc
    match: {tools: [read_file]}
    when: 'args.path.startsWith("/etc/")'
    effect: deny
    severity: high
  - id: payments-need-trust
    match: {tools: [pay]}
    when: 'trust.score < 480 || trust.tier == "untrusted"'
    effect: deny
    severity: medium
`

func readFile(agent, path string) action.Action {
	return action.Action{Agent: action.Agent{ID: agent}, Tool: action.Tool{Name: "read_file"}, Args: map[string]any{"path": path}}
}

// A policy reads trust.score and trust.tier of the acting agent, as the
// agent's own denies move them.
func TestPoliciesSeeTheAgentsTrust(t *testing.T) {
	s := newTrusted(t, trustPolicy, trust.Config{}, trust.Rings{})
	pay := action.Action{Agent: action.Agent{ID: "a1"}, Tool: action.Tool{Name: "pay"}}
	if d := s.decide(t, pay); d.Effect != action.Allow {
		t.Fatalf("a new agent (500) paying: %+v", d)
	}
	if d := s.decide(t, readFile("a1", "/etc/shadow")); d.Effect != action.Deny {
		t.Fatalf("reading /etc: %+v", d)
	}
	s.flush(t)
	if d := s.decide(t, pay); d.Effect != action.Deny || d.Rules[0] != "payments-need-trust" {
		t.Fatalf("an agent at 450 paying: %+v", d)
	}
	// Another agent is untouched.
	pay.Agent.ID = "a2"
	if d := s.decide(t, pay); d.Effect != action.Allow {
		t.Fatalf("another agent paying: %+v", d)
	}
	batch := entriesOf(t, s.log, "trust")
	if len(batch) != 1 || !strings.Contains(string(batch[0].Record), `"agent":"a1","delta":-50`) {
		t.Fatalf("trust entries %v", batch)
	}
}

// Without a keeper, trust reads as score 0, tier untrusted: a rule that
// grants on trust grants nothing.
func TestWithoutTrustEveryAgentIsUntrusted(t *testing.T) {
	eng := govern.New(mustSet(t, `
version: agentgov/v1
name: gate
default: deny
rules:
  - id: trusted-only
    match: {tools: [pay]}
    when: 'trust.score >= 0 && trust.tier == "untrusted"'
    effect: allow
`))
	d, err := eng.Decide(context.Background(), action.Action{Agent: action.Agent{ID: "a1"}, Tool: action.Tool{Name: "pay"}})
	if err != nil || d.Effect != action.Allow {
		t.Fatalf("%+v %v", d, err)
	}
}

var testRings = trust.Rings{
	Default: func() *int { v := 2; return &v }(),
	Profiles: map[int]trust.Profile{
		0: {MinTier: trust.Verified},
		1: {MinTier: trust.Trusted},
		2: {MinTier: trust.Standard},
		3: {Description: "read-only", Tools: []string{"read_*"}},
	},
}

const approveWrites = `
version: agentgov/v1
name: writes
default: allow
rules:
  - id: writes-need-approval
    match: {tools: [write_file]}
    effect: require_approval
`

// The ring check runs before policy rules: an action outside the ring is
// denied naming the ring, and no approval ticket is opened for it.
func TestRingCheckRunsBeforePolicy(t *testing.T) {
	s := newTrusted(t, approveWrites, trust.Config{Initial: 400}, testRings)
	d := s.decide(t, action.Action{Agent: action.Agent{ID: "a1"}, Tool: action.Tool{Name: "write_file"}})
	if d.Effect != action.Deny || d.Approval != nil || len(d.Rules) != 0 {
		t.Fatalf("write by a probationary agent: %+v", d)
	}
	if r := strings.Join(d.Reasons, "; "); !strings.Contains(r, "ring: agent a1 holds ring 3 (demoted from ring 2") || !strings.Contains(r, "ring 3 (read-only) does not allow tool write_file") {
		t.Fatalf("reasons %s", r)
	}
	if list, err := s.approvals.List(context.Background(), ""); err != nil || len(list) != 0 {
		t.Fatalf("tickets %+v, %v", list, err)
	}
	if d := s.decide(t, readFile("a1", "/tmp/x")); d.Effect != action.Allow {
		t.Fatalf("read in ring 3: %+v", d)
	}
	// The ring denial itself costs trust.
	s.flush(t)
	if got := s.keeper.View("a1").Score(); got != 390 {
		t.Fatalf("score after a ring denial: %d", got)
	}
}

// An agent asks to be elevated; the request is an approval ticket; once an
// approver approves it the agent holds the ring, and each step is in the
// audit log. A denied elevation costs no trust; any other denied ticket
// does.
func TestElevationThroughAnApprovalTicket(t *testing.T) {
	s := newTrusted(t, approveWrites, trust.Config{Initial: 400}, testRings)
	ctx := context.Background()
	agent := action.Agent{ID: "a1"}
	if _, err := s.eng.RequestElevation(ctx, agent, action.Principal{}, 3, time.Minute, "x"); err == nil {
		t.Fatal("asked for the ring it holds")
	}
	if _, err := s.eng.RequestElevation(ctx, agent, action.Principal{}, 2, time.Minute, " "); err == nil {
		t.Fatal("asked without a reason")
	}
	tk, err := s.eng.RequestElevation(ctx, agent, action.Principal{}, 2, 5*time.Minute, "write the report")
	if err != nil || tk.Status != approval.Pending || tk.AgentID != "a1" {
		t.Fatalf("request %+v, %v", tk, err)
	}
	// Asking does not elevate.
	if d := s.decide(t, action.Action{Agent: agent, Tool: action.Tool{Name: "write_file"}}); d.Effect != action.Deny {
		t.Fatalf("write while pending: %+v", d)
	}
	if _, err := s.eng.DecideApproval(ctx, govern.ApprovalDecision{Ticket: tk.ID, Approve: true, By: "lead"}); err != nil {
		t.Fatal(err)
	}
	// Ring 2 now; the write goes on to policy, which asks for approval.
	if d := s.decide(t, action.Action{Agent: agent, Tool: action.Tool{Name: "write_file"}}); d.Effect != action.RequireApproval {
		t.Fatalf("write once elevated: %+v", d)
	}
	var kinds []string
	for _, e := range entriesOf(t, s.log, "ring.elevation", "approval") {
		var rec map[string]any
		json.Unmarshal(e.Record, &rec)
		kinds = append(kinds, e.Kind+":"+func() string {
			if ev, ok := rec["event"].(string); ok {
				return ev
			}
			return "decided"
		}())
	}
	if got := strings.Join(kinds, ","); got != "ring.elevation:request,approval:approve,ring.elevation:grant" {
		t.Fatalf("audit trail %s", got)
	}
	// The write's ticket, denied: that costs trust.
	d := s.decide(t, action.Action{Agent: agent, Tool: action.Tool{Name: "write_file"}})
	if _, err := s.eng.DecideApproval(ctx, govern.ApprovalDecision{Ticket: d.Approval.ID, Approve: false, By: "lead"}); err != nil {
		t.Fatal(err)
	}
	s.flush(t)
	// 400, less 10 for the write refused by ring 3 while pending, less
	// 30 for the denied ticket.
	if got := s.keeper.View("a1").Score(); got != 360 {
		t.Fatalf("score after a denied ticket: %d", got)
	}
}

// Outcomes move the score of the agent whose decision they settle.
func TestOutcomesMoveTheScore(t *testing.T) {
	s := newTrusted(t, trustPolicy, trust.Config{}, trust.Rings{})
	ctx := context.Background()
	d := s.decide(t, readFile("a1", "/tmp/x"))
	if err := s.eng.Outcome(ctx, d.ID, action.Outcome{Status: "error", Error: "boom"}); err != nil {
		t.Fatal(err)
	}
	d = s.decide(t, readFile("a2", "/tmp/x"))
	if err := s.eng.Outcome(govern.WithOutcomeAgent(ctx, "a2"), d.ID, action.Outcome{Status: "ok"}); err != nil {
		t.Fatal(err)
	}
	s.flush(t)
	if a1, a2 := s.keeper.View("a1").Score(), s.keeper.View("a2").Score(); a1 != 498 || a2 != 501 {
		t.Fatalf("scores a1 %d, a2 %d", a1, a2)
	}
}

// A score below the floor stops the agent: its next decision is denied by
// the kill switch the floor engaged.
func TestFloorKillsThroughTheEngine(t *testing.T) {
	s := newTrusted(t, trustPolicy, trust.Config{KillBelow: 460}, trust.Rings{})
	s.decide(t, readFile("a1", "/etc/passwd"))
	s.flush(t)
	d := s.decide(t, readFile("a1", "/tmp/x"))
	if d.Effect != action.Deny || !strings.Contains(d.Reasons[0], "trust score fell to 450 (from 500), below trust.kill_below 460") {
		t.Fatalf("after the floor: %+v", d)
	}
	kills := entriesOf(t, s.log, "kill")
	if len(kills) != 1 || !strings.Contains(string(kills[0].Record), `"by":"trust"`) {
		t.Fatalf("kill entries %v", kills)
	}
}

// An agent cannot pass a ticket of its own making for an elevation: a
// decision about a tool named agentgov/elevate that a policy sends for
// approval grants no ring once approved, because only an elevation request
// opens a ticket bound to the elevation digest.
func TestADecisionsTicketIsNoElevation(t *testing.T) {
	s := newTrusted(t, `
version: agentgov/v1
name: lookalike
default: allow
rules:
  - id: ask
    match: {tools: ["agentgov/elevate"]}
    effect: require_approval
`, trust.Config{Initial: 400}, testRings)
	ctx := context.Background()
	forged := trust.ElevationAction(action.Agent{ID: "a1"}, action.Principal{}, 0, time.Hour, "routine")
	d := s.decide(t, forged)
	if d.Effect != action.Deny {
		// Ring 3 refuses the lookalike tool outright; were it inside the
		// ring, its ticket must still grant nothing.
		if d.Approval == nil {
			t.Fatalf("lookalike: %+v", d)
		}
		if _, err := s.eng.DecideApproval(ctx, govern.ApprovalDecision{Ticket: d.Approval.ID, Approve: true, By: "lead"}); err != nil {
			t.Fatal(err)
		}
	}
	if rs := s.keeper.RingOf("a1", time.Now()); rs.Ring != 3 || rs.Elevation != nil {
		t.Fatalf("a decision's ticket elevated the agent: %+v", rs)
	}
	// Inside the ring, approved: still no elevation.
	s2 := newTrusted(t, `
version: agentgov/v1
name: lookalike
default: allow
rules:
  - id: ask
    match: {tools: ["agentgov/elevate"]}
    effect: require_approval
`, trust.Config{}, testRings)
	d = s2.decide(t, forged)
	if d.Effect != action.RequireApproval || d.Approval == nil {
		t.Fatalf("lookalike in ring 2: %+v", d)
	}
	if _, err := s2.eng.DecideApproval(ctx, govern.ApprovalDecision{Ticket: d.Approval.ID, Approve: true, By: "lead"}); err != nil {
		t.Fatal(err)
	}
	if rs := s2.keeper.RingOf("a1", time.Now()); rs.Ring != 2 || rs.Elevation != nil {
		t.Fatalf("a decision's ticket elevated the agent: %+v", rs)
	}
}

// A tool outside the agent's ring is denied whatever its arguments, so the
// MCP gateway does not list it to that agent.
func TestToolsOutsideTheRingAreDeniedUnconditionally(t *testing.T) {
	s := newTrusted(t, approveWrites, trust.Config{Initial: 400}, testRings)
	ctx := context.Background()
	if deny, err := s.eng.DeniesUnconditionally(ctx, action.Action{Agent: action.Agent{ID: "a1"}, Tool: action.Tool{Name: "write_file"}}); err != nil || !deny {
		t.Fatalf("write_file in ring 3: %v %v", deny, err)
	}
	if deny, err := s.eng.DeniesUnconditionally(ctx, readFile("a1", "/tmp/x")); err != nil || deny {
		t.Fatalf("read_file in ring 3: %v %v", deny, err)
	}
}

// A decision that could not be recorded did not happen: it moves no score.
func TestAnUnrecordedDecisionMovesNoScore(t *testing.T) {
	s := newTrusted(t, trustPolicy, trust.Config{}, trust.Rings{})
	s.audit.broken.Store(true)
	if d := s.decide(t, readFile("a1", "/etc/shadow")); d.Effect != action.Deny || !strings.Contains(d.Reasons[0], "audit log unavailable") {
		t.Fatalf("decision without an audit log: %+v", d)
	}
	s.audit.broken.Store(false)
	s.flush(t)
	if got := s.keeper.View("a1").Score(); got != 500 {
		t.Fatalf("score after an unrecorded deny: %d", got)
	}
	s.decide(t, readFile("a1", "/etc/shadow"))
	s.flush(t)
	if got := s.keeper.View("a1").Score(); got != 450 {
		t.Fatalf("score after a recorded deny: %d", got)
	}
}

// A delegated agent acts within the ring of every agent in its chain: a
// sub-agent whose own ring allows writes, acting for a delegator held to
// reads, is denied a write naming the delegation and the delegator's
// ring; a read passes; without the delegation the sub-agent writes.
func TestADelegatedAgentActsWithinItsDelegatorsRing(t *testing.T) {
	r := testRings
	r.Agents = []trust.Assignment{{Agents: []string{"reader"}, Ring: 3}, {Agents: []string{"helper"}, Ring: 2}}
	s := newTrusted(t, trustPolicy, trust.Config{}, r)
	chain := []action.Delegation{{ID: "dlg_1", Agent: "reader", Delegate: "helper", ExpiresAt: time.Now().Add(time.Hour)}}
	write := action.Action{Agent: action.Agent{ID: "helper", Delegation: chain}, Tool: action.Tool{Name: "write_file"}}
	d := s.decide(t, write)
	if r := strings.Join(d.Reasons, "; "); d.Effect != action.Deny || !strings.Contains(r, "delegation dlg_1 (reader to helper) acts within its delegator's ring: ring: agent reader holds ring 3") {
		t.Fatalf("a write for a read-only delegator: %s %s", d.Effect, r)
	}
	if deny, err := s.eng.DeniesUnconditionally(context.Background(), write); err != nil || !deny {
		t.Fatalf("write_file shown to the delegated agent: %v %v", deny, err)
	}
	read := readFile("helper", "/tmp/x")
	read.Agent.Delegation = chain
	if d := s.decide(t, read); d.Effect != action.Allow {
		t.Fatalf("a read for a read-only delegator: %s %v", d.Effect, d.Reasons)
	}
	if d := s.decide(t, action.Action{Agent: action.Agent{ID: "helper"}, Tool: action.Tool{Name: "write_file"}}); d.Effect != action.Allow {
		t.Fatalf("helper's own write in ring 2: %s %v", d.Effect, d.Reasons)
	}
}
