package govern

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/approval"
	"github.com/agentgov/agentgov/policy"
	"github.com/agentgov/agentgov/trust"
)

// TrustKeeper keeps agents' trust scores and the rings bound to them;
// *trust.Keeper is one. The engine reads scores and rings from its memory
// on every decision, and tells it what it observes.
type TrustKeeper interface {
	// View is what policies see as `trust`.
	View(agentID string) *policy.Trust
	// Admit checks what an action does against its agent's ring.
	Admit(t trust.Target, now time.Time) (reason string, ok bool)
	// Observe queues what the engine saw of an agent; it never blocks.
	Observe(s trust.Signal)
	// CheckElevation says why an agent may not ask for a ring, or nil.
	CheckElevation(agentID string, ring int, ttl time.Duration, now time.Time) error
	// Grant gives an agent a ring on an approved ticket, audited.
	Grant(ctx context.Context, ticket, agentID string, ring int, ttl time.Duration, reason, by string) (trust.Elevation, error)
	Rings() trust.Rings
}

// WithTrust keeps trust scores and checks rings: policies see `trust`,
// ring checks run before policy rules, and denies, flagged actions, denied
// approvals and outcomes move the agent's score. Without it every agent
// has trust score 0 (tier untrusted), the most suspicious value.
func WithTrust(k TrustKeeper) Option {
	return func(e *Engine) {
		e.trust = k
		e.recent = newRecentAgents(recentAgents)
	}
}

// admitRing runs the ring check: an action outside the agent's ring is
// denied, naming the ring, before any policy rule reads it. The denial's
// signal for the trust keeper is returned, to be observed once the
// decision is recorded.
func (e *Engine) admitRing(a *action.Action, d *action.Decision, now time.Time) (trust.Signal, bool) {
	reason, ok := e.ringAdmits(a, now)
	if ok {
		return trust.Signal{}, true
	}
	deny(d, reason)
	return trust.Signal{Agent: a.Agent.ID, Kind: trust.KindRingDenied, Decision: d.ID.String(), Detail: reason}, false
}

// ringAdmits checks an action against its agent's ring and, for a
// delegated agent, against the ring of every delegator in its chain: a
// delegation only narrows, so a sub-agent registered in a more privileged
// ring than the agent that delegated to it does not lend that agent its
// ring.
func (e *Engine) ringAdmits(a *action.Action, now time.Time) (string, bool) {
	t := trust.TargetOf(a)
	reason, ok := e.trust.Admit(t, now)
	for i := 0; ok && i < len(a.Agent.Delegation); i++ {
		l := &a.Agent.Delegation[i]
		t.Agent = l.Agent
		if why, in := e.trust.Admit(t, now); !in {
			reason, ok = "delegation "+l.ID+" ("+l.Agent+" to "+l.Delegate+") acts within its delegator's ring: "+why, false
		}
	}
	return reason, ok
}

// policySignal is what policy said that moves trust: a deny, by its
// severity, or an allow flagged by an audit rule.
func policySignal(a *action.Action, d *action.Decision, r *policy.Result) trust.Signal {
	switch {
	case r.Effect == action.Deny:
		return trust.Signal{Agent: a.Agent.ID, Kind: trust.KindDeny, Severity: r.Severity, Decision: d.ID.String(), Detail: strings.Join(r.Rules, ", ")}
	case r.Flagged:
		return trust.Signal{Agent: a.Agent.ID, Kind: trust.KindFlagged, Severity: r.Severity, Decision: d.ID.String(), Detail: strings.Join(r.Rules, ", ")}
	}
	return trust.Signal{}
}

// observe tells the trust keeper of a signal, if there is one.
func (e *Engine) observe(s trust.Signal) {
	if s.Kind != "" {
		e.trust.Observe(s)
	}
}

type outcomeAgentKey struct{}

// WithOutcomeAgent tells Outcome whose decision it settles, for the trust
// score: the server knows it from the decision's audit entry, which may be
// another replica's.
func WithOutcomeAgent(ctx context.Context, agentID string) context.Context {
	return context.WithValue(ctx, outcomeAgentKey{}, agentID)
}

// observeOutcome moves the score of the agent whose decision the outcome
// settles: from the context, else from the decisions this engine made.
func (e *Engine) observeOutcome(ctx context.Context, id action.ID, o *action.Outcome) {
	agent, _ := ctx.Value(outcomeAgentKey{}).(string)
	if a := e.recent.take(id); agent == "" {
		agent = a
	}
	if agent == "" {
		return
	}
	kind := trust.KindOutcomeOK
	if o.Status == "error" {
		kind = trust.KindOutcomeError
	}
	e.trust.Observe(trust.Signal{Agent: agent, Kind: kind, Decision: id.String()})
}

// recentAgents is how many allowed decisions the engine remembers the
// agent of, for outcomes that come without it (the MCP gateway and the
// model proxy settle their own decisions in this process).
const recentAgents = 1 << 14

// recent remembers the agent of recent allowed decisions in a table
// indexed by decision id: a newer decision takes the slot of an older
// one, so that it costs the decision path one short lock and no
// allocation. An outcome whose decision was forgotten moves no score.
type recent struct {
	mu    sync.Mutex
	slots []recentSlot
}

type recentSlot struct {
	id    action.ID
	agent string
}

func newRecentAgents(n int) *recent {
	return &recent{slots: make([]recentSlot, n)}
}

func (r *recent) slot(id action.ID) *recentSlot {
	var h uint64
	for _, b := range id {
		h = h*131 + uint64(b)
	}
	return &r.slots[h%uint64(len(r.slots))]
}

func (r *recent) put(id action.ID, agent string) {
	r.mu.Lock()
	*r.slot(id) = recentSlot{id, agent}
	r.mu.Unlock()
}

func (r *recent) take(id action.ID) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.slot(id)
	if s.id != id {
		return ""
	}
	a := s.agent
	*s = recentSlot{}
	return a
}

// RequestElevation opens an approval ticket for agent to hold ring for
// ttl, on behalf of the agent itself or an admin; an approver's approval
// grants it (see DecideApproval). The ticket is bound to the agent, the
// ring, the ttl and the reason, and recorded as a "ring.elevation" request
// entry; a request that cannot be recorded is withdrawn.
func (e *Engine) RequestElevation(ctx context.Context, agent action.Agent, principal action.Principal, ring int, ttl time.Duration, reason string) (approval.Ticket, error) {
	if e.trust == nil || e.approval == nil {
		return approval.Ticket{}, fmt.Errorf("request elevation: trust and approvals are %w", ErrNotConfigured)
	}
	reason = strings.TrimSpace(reason)
	switch {
	case reason == "":
		return approval.Ticket{}, fmt.Errorf("%w: reason: say why the agent needs the ring", trust.ErrRefused)
	case len(reason) > 1024:
		return approval.Ticket{}, fmt.Errorf("%w: reason: longer than 1024 bytes", trust.ErrRefused)
	}
	if err := e.trust.CheckElevation(agent.ID, ring, ttl, e.clock()); err != nil {
		return approval.Ticket{}, err
	}
	a := trust.ElevationAction(agent, principal, ring, ttl, reason)
	shown := maskSensitive(a)
	rings := e.trust.Rings()
	t, err := e.approval.Create(ctx, approval.Request{
		Action: &a, Shown: &shown, PolicyDigest: trust.ElevationDigest,
		Rules:     []string{"ring-elevation"},
		Reasons:   []string{fmt.Sprintf("agent %s asks to hold ring %d for %v: %s", agent.ID, ring, ttl, reason)},
		Approvers: rings.Approvers, Timeout: rings.ApprovalTimeout, OnTimeout: approval.TimeoutDeny,
	})
	if err != nil {
		return approval.Ticket{}, err
	}
	err = e.Change(ctx, "ring.elevation", func(ctx context.Context, record func(context.Context, any) error) error {
		return record(ctx, map[string]any{"event": "request", "ticket": t.ID, "agent": agent.ID, "ring": ring, "ttl": ttl.String(), "reason": shown.Args["reason"]})
	})
	if err != nil {
		if cerr := e.approval.Cancel(context.WithoutCancel(ctx), t.ID); cerr != nil {
			e.emit(ctx, Notice{Kind: "approval", Message: "elevation request " + t.ID + " could not be recorded, and could not be cancelled: " + cerr.Error()})
		}
		return approval.Ticket{}, err
	}
	return t, nil
}

// grantElevation gives the ring of an approved elevation ticket.
func (e *Engine) grantElevation(ctx context.Context, t approval.Ticket, by string) error {
	var args struct {
		Ring   int    `json:"ring"`
		TTL    string `json:"ttl"`
		Reason string `json:"reason"`
	}
	if err := json.Unmarshal(t.Args, &args); err != nil {
		return fmt.Errorf("elevation ticket %s: %w", t.ID, err)
	}
	ttl, err := time.ParseDuration(args.TTL)
	if err != nil {
		return fmt.Errorf("elevation ticket %s: ttl: %w", t.ID, err)
	}
	_, err = e.trust.Grant(ctx, t.ID, t.AgentID, args.Ring, ttl, args.Reason, by)
	return err
}

// approvalDecided tells the trust keeper of an approver's answer: a denied
// ticket lowers the agent's score; an approved elevation ticket grants its
// ring. An elevation denied is no misbehaviour, and moves nothing.
func (e *Engine) approvalDecided(ctx context.Context, t approval.Ticket, approve bool, by string) error {
	if e.trust == nil {
		return nil
	}
	elevation := trust.IsElevationTicket(t.Tool, t.PolicyDigest)
	switch {
	case elevation && approve:
		if err := e.grantElevation(ctx, t, by); err != nil {
			e.emit(ctx, Notice{Kind: "approval", Agent: t.AgentID, Message: "elevation " + t.ID + " was approved but could not be granted: " + err.Error()})
			return fmt.Errorf("approval %s recorded, but its elevation could not be granted: %w", t.ID, err)
		}
	case !elevation && !approve:
		e.trust.Observe(trust.Signal{Agent: t.AgentID, Kind: trust.KindApprovalDenied, Decision: t.DecisionID, Detail: "approval " + t.ID + " denied by " + by})
	}
	return nil
}
