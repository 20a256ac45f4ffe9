// Package govern is the decision pipeline: it runs an Action through the kill
// switch, session state, policy, rate limits, budgets and approvals, records
// the decision in the audit log, and later settles the outcome. Every stage
// but policy is optional, so the same Engine serves a library user deciding
// in process and the server with its stores.
package govern

import (
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/anomaly"
	"github.com/agentgov/agentgov/budget"
	"github.com/agentgov/agentgov/policy"
	"github.com/agentgov/agentgov/provenance"
	"github.com/agentgov/agentgov/session"
	"github.com/agentgov/agentgov/trust"
)

// Auditor appends entries to the tamper-evident log; *audit.Log is one.
// Append returns only once the entry is durable.
type Auditor interface {
	Append(ctx context.Context, kind string, record any) (uint64, error)
}

// SessionChecker says whether an agent may act in a session, creating the
// session on first use, and makes the changes operators and agents ask for
// (see CreateSession, MoveSession); *session.Sessions is one.
type SessionChecker interface {
	Touch(ctx context.Context, id, agentID string) (ok bool, reason string, err error)
	Create(ctx context.Context, agentID, id string, by session.Actor, records ...session.Record) (session.Session, error)
	Transition(ctx context.Context, agentID, id string, to session.State, by session.Actor, records ...session.Record) (session.Session, error)
}

// BudgetKeeper reserves an action's estimate and settles its outcome;
// *budget.Budgets is one. ReserveApproved lifts a throttle that asks for
// approval: the engine calls it only for an action whose approval ticket it
// has checked.
type BudgetKeeper interface {
	Reserve(ctx context.Context, decisionID string, a *action.Action) (budget.Verdict, error)
	ReserveApproved(ctx context.Context, decisionID string, a *action.Action) (budget.Verdict, error)
	Put(ctx context.Context, c budget.Config, records ...budget.Record) error
	Delete(ctx context.Context, id string, records ...budget.Record) error
	Settle(ctx context.Context, decisionID string, o action.Outcome) error
	Release(ctx context.Context, decisionID string) error
	State(ctx context.Context, a *action.Action) ([]budget.Usage, error)
}

// Engine decides actions. It is safe for concurrent use; its policy set is
// swapped atomically by Load.
type Engine struct {
	set      atomic.Pointer[policy.Set]
	clock    func() time.Time
	trust    TrustKeeper
	recent   *recent // agents of recent allowed decisions, for outcomes (with trust)
	tier     func(model string) string
	limiter  *limiter
	audit    Auditor
	sessions SessionChecker
	budgets  BudgetKeeper
	kill     KillSwitch
	approval Approvals
	outcomes OutcomeLedger
	notify   func(ctx context.Context, n Notice)
	obs      Observer
	prov     *provenance.Ledger
	rel      Reliability
	anom     AnomalyDetector
	provSet  bool // WithProvenance was given, perhaps with nil
	tracer   Tracer
	sampled  atomic.Uint64 // decisions observed, to sample the timing of stages

	// Policy delivery (delivery.go): a shadow set evaluated beside the
	// live one, a canary set deciding for some agents.
	shadow   atomic.Pointer[policy.Set]
	canary   atomic.Pointer[canaryState]
	delivery DeliveryObserver

	started   time.Time
	startedMs int64

	// changeTimeout, when set, replaces auditTimeout as the bound of a
	// Change (tests set it, from export_test.go, to stay quick).
	changeTimeout time.Duration
}

// Option configures an Engine.
type Option func(*Engine)

// WithClock sets the clock; the default is time.Now.
func WithClock(now func() time.Time) Option { return func(e *Engine) { e.clock = now } }

// WithAudit records every decision and outcome; without it nothing is logged.
func WithAudit(a Auditor) Option { return func(e *Engine) { e.audit = a } }

// WithSessions checks session state before policy.
func WithSessions(s SessionChecker) Option { return func(e *Engine) { e.sessions = s } }

// OutcomeLedger remembers which decisions have their outcome recorded, so
// that each is recorded, and its budget settled, once; *sqlite.DB is one.
type OutcomeLedger interface {
	// ClaimOutcome reports whether this call is the first to claim the
	// decision's outcome.
	ClaimOutcome(ctx context.Context, decisionID string, at time.Time) (claimed bool, err error)
	// ReleaseOutcome gives a claim back, for an outcome that could not be
	// recorded.
	ReleaseOutcome(ctx context.Context, decisionID string) error
}

// WithOutcomes records each decision's outcome once: a second outcome for
// a decision is refused with ErrOutcomeRecorded.
func WithOutcomes(l OutcomeLedger) Option { return func(e *Engine) { e.outcomes = l } }

// ErrOutcomeRecorded is returned by Outcome for a decision whose outcome is
// recorded already.
var ErrOutcomeRecorded = errors.New("the outcome of this decision is recorded already")

// WithBudgets reserves estimates on allowed actions and settles outcomes.
func WithBudgets(b BudgetKeeper) Option { return func(e *Engine) { e.budgets = b } }

// WithModelTier tells policies the catalogue tier of a model, as
// `model_tier`.
func WithModelTier(f func(model string) string) Option { return func(e *Engine) { e.tier = f } }

// WithNotify receives the notices the pipeline raises (policy "notify"
// responses, soft budget thresholds, kill switches it engaged).
func WithNotify(f func(ctx context.Context, n Notice)) Option {
	return func(e *Engine) { e.notify = f }
}

// Notice is something an operator should hear about.
type Notice struct {
	// Kind is "deny" (a policy's notify response), "budget_soft",
	// "budget_throttle", "budget_hard" or "budget_kill" (a budget
	// threshold crossed, once per budget and period), "kill" and
	// "kill_release" (a kill switch engaged or released, by anyone),
	// "kill_failed", "policy_load" (a policy set put in force),
	// "approval" (a ticket that could not be given back or expired),
	// "store_failed" (a decision denied because a store it needed failed;
	// the store's error is in Message, not in the decision's reasons),
	// "trust_drop" (an agent's trust score fell into a lower tier),
	// "canary_rollback" (a canary policy set rolled back) or "shadow" (a
	// shadow difference that could not be recorded).
	Kind     string          `json:"kind"`
	Decision action.ID       `json:"decision"`
	Agent    string          `json:"agent"`
	Severity action.Severity `json:"severity,omitempty"`
	Message  string          `json:"message"`
	// Fields are the particulars of the kind: the switch, the budget, the
	// policy digest.
	Fields map[string]any `json:"fields,omitempty"`
}

// New returns an Engine deciding with set.
func New(set *policy.Set, opts ...Option) *Engine {
	e := &Engine{clock: time.Now, limiter: newLimiter()}
	e.set.Store(set)
	for _, o := range opts {
		o(e)
	}
	if !e.provSet {
		e.prov = provenance.New(provenance.Config{})
	}
	e.started = e.clock()
	e.startedMs = e.started.UnixMilli()
	return e
}

// Policy returns the policy set in force.
func (e *Engine) Policy() *policy.Set { return e.set.Load() }

// Load replaces the policy set. A nil set is refused and the old one stays;
// a set that failed to compile never reaches here, since policy.Load returns
// no set on error. The swap is recorded in the audit log when there is one;
// if that record cannot be written, the old set stays in force.
func (e *Engine) Load(ctx context.Context, set *policy.Set) error {
	if set == nil {
		return errors.New("load policy: no policy set")
	}
	if e.audit != nil {
		names := make([]string, 0, len(set.Documents()))
		for _, d := range set.Documents() {
			names = append(names, d.Name)
		}
		if _, err := e.audit.Append(ctx, "policy_load", map[string]any{
			"digest": set.Digest(), "documents": names, "previous": e.set.Load().Digest(), "bundle": set.Bundle(),
		}); err != nil {
			return fmt.Errorf("load policy: audit: %w", err)
		}
	}
	prev := e.set.Swap(set)
	e.emit(ctx, Notice{Kind: "policy_load", Message: "policy set " + set.Digest() + " in force",
		Fields: map[string]any{"digest": set.Digest(), "previous": prev.Digest(), "documents": len(set.Documents())}})
	return nil
}

// newID makes a decision id: the millisecond, then 80 bits from a
// cryptographically strong generator, so that an agent holding some ids
// cannot work out any other (an id names a decision to read or settle).
// crypto/rand per id costs several times a whole decision, so ids come
// from ChaCha8 generators seeded from it, one per processor through a pool.
func (e *Engine) newID(now time.Time) action.ID {
	ms := e.startedMs
	if now != e.started {
		ms = now.UnixMilli()
	}
	g := idSources.Get().(*mrand.ChaCha8)
	hi, lo := g.Uint64(), g.Uint64()
	idSources.Put(g)
	return action.NewID(ms, uint16(hi), lo)
}

var idSources = sync.Pool{New: func() any {
	var seed [32]byte
	crand.Read(seed[:]) // never fails: it crashes the program rather than return weak bytes
	return mrand.NewChaCha8(seed)
}}

// Trace carries correlation data into the audit entry of a decision.
type Trace struct {
	TraceParent   string `json:"traceparent,omitempty"`
	CorrelationID string `json:"correlation_id,omitempty"`
}

type traceKey struct{}

// WithTrace attaches trace data to ctx for Decide and Outcome.
func WithTrace(ctx context.Context, t Trace) context.Context {
	return context.WithValue(ctx, traceKey{}, t)
}

func traceFrom(ctx context.Context) *Trace {
	if t, ok := ctx.Value(traceKey{}).(Trace); ok && (t.TraceParent != "" || t.CorrelationID != "") {
		return &t
	}
	return nil
}

// Decide runs the pipeline. It always returns a Decision an enforcement
// point can act on; the error is non-nil only for an invalid action, whose
// decision is then a deny naming the problem.
func (e *Engine) Decide(ctx context.Context, a action.Action) (action.Decision, error) {
	set := e.set.Load()
	var canary *canaryState
	if e.canary.Load() != nil {
		set, canary = e.pick(&a)
	}
	pure := e.kill == nil && e.sessions == nil && e.budgets == nil && e.approval == nil && e.audit == nil &&
		(e.prov == nil || a.Session == "" || !set.UsesProvenance()) &&
		e.shadow.Load() == nil && canary == nil
	// The library path reads the clock only when the policy needs the time;
	// its decision ids then carry the engine's start time, still unique.
	now := e.started
	if !pure || set.NeedsClock() || e.rel != nil || e.anom != nil { // circuits and baselines move in time
		now = e.clock()
	}
	d := action.Decision{ID: e.newID(now)}
	if err := a.Validate(); err != nil {
		d.Effect, d.Reasons = action.Deny, []string{"invalid action: " + err.Error()}
		e.record(ctx, &a, &d, nil, holds{})
		if e.obs != nil {
			e.observeCopy(ctx, a, d, StageTimes{})
		}
		return d, err
	}
	if pure {
		// Policy and rate limits only, and no stage that could retain the
		// action, so it stays on the stack.
		var start time.Time
		if e.obs != nil {
			start = time.Now()
		}
		var an anomaly.Reading
		if e.anom != nil {
			if an = e.anom.Observe(action.CallOf(&a), now); an.Isolate != 0 {
				e.anomalyIsolate(ctx, &a, &d, &an)
				e.anomalyAfter(ctx, &a, &d, &an)
				return d, nil
			}
		}
		if e.trust != nil {
			if sig, ok := e.admitRing(&a, &d, now); !ok {
				e.observe(sig)
				if e.anom != nil {
					e.anomalyAfter(ctx, &a, &d, &an)
				}
				return d, nil
			}
		}
		env := e.env(&a, now)
		env.Anomaly = anomalyView(&an)
		var r policy.Result
		if len(a.Agent.Delegation) > 0 {
			if why := action.DelegationDenies(&a, e.clock()); why != "" {
				deny(&d, why)
				if e.anom != nil {
					e.anomalyAfter(ctx, &a, &d, &an)
				}
				return d, nil
			}
		}
		refused := false
		if e.rel != nil {
			var refusal string
			if env.Breaker, refusal = e.rel.Admit(d.ID, action.CallOf(&a), now); refusal != "" {
				deny(&d, refusal)
				refused = true
			}
		}
		if !refused {
			e.evaluate(&a, &d, set, &env, &r, &an)
		}
		if e.trust != nil {
			e.observe(policySignal(&a, &d, &r))
			if d.Effect == action.Allow {
				e.recent.put(d.ID, a.Agent.ID)
			}
		}
		if e.rel != nil {
			e.rel.Decided(d.ID, action.CallOf(&a), d.Effect, now)
		}
		if e.anom != nil {
			e.anomalyAfter(ctx, &a, &d, &an)
		}
		if e.obs != nil {
			var t StageTimes
			t.Total = time.Since(start)
			t.Stage[StagePolicy], t.Ran[StagePolicy] = t.Total, true
			e.observeCopy(ctx, a, d, t)
		}
		return d, nil
	}
	// The stages are interfaces, through which the action escapes: they
	// get a copy of it (the parameter of decideAudited), so that the
	// library's path above keeps its own on the stack.
	return e.decideAudited(ctx, a, d, set, now, canary), nil
}

// decideAudited runs every stage on a and records the decision.
func (e *Engine) decideAudited(ctx context.Context, a action.Action, d action.Decision, set *policy.Set, now time.Time, canary *canaryState) action.Decision {
	span := e.startSpan(ctx)
	w := e.stopwatch()
	h := e.decide(ctx, &a, &d, set, now, &w)
	e.record(ctx, &a, &d, set, h)
	e.provenanceAfter(&a, &d, set)
	w.lap(StageAudit)
	// What the decision tells of the agent counts once the decision is in
	// the log: a decision that is not did not happen, and the trust entry
	// it causes follows it.
	if e.trust != nil && (e.audit == nil || d.AuditIndex != nil) {
		e.observe(h.signal)
		if d.Effect == action.Allow {
			e.recent.put(d.ID, a.Agent.ID)
		}
	}
	if e.rel != nil {
		e.rel.Decided(d.ID, action.CallOf(&a), d.Effect, now)
	}
	if e.anom != nil && (e.audit == nil || d.AuditIndex != nil) {
		e.anomalyAfter(ctx, &a, &d, &h.anomaly)
	}
	// A decision withdrawn because it could not be recorded has no
	// shadow either.
	if h.shadow && (e.audit == nil || d.AuditIndex != nil) {
		e.shadowDiff(ctx, &a, &d, h.policy, &h.env)
	}
	if canary != nil {
		e.canaryDecided(ctx, canary, &d)
	}
	var times *StageTimes
	if e.obs != nil {
		times = w.done()
		e.obs.Decided(e.entryOf(ctx), &a, &d, times)
	}
	if span != nil {
		span.End(e.entryOf(ctx), &a, &d, times)
	}
	return d
}

// observeCopy tells the observer of a decision made on the library's path
// from copies, so that the caller's action and decision stay on its stack.
//
//go:noinline
func (e *Engine) observeCopy(ctx context.Context, a action.Action, d action.Decision, t StageTimes) {
	e.obs.Decided(e.entryOf(ctx), &a, &d, &t)
}

func (e *Engine) env(a *action.Action, now time.Time) policy.Env {
	env := policy.Env{Now: now}
	if e.trust != nil {
		env.Trust = e.trust.View(a.Agent.ID)
	}
	if e.tier != nil && a.Model != "" {
		env.ModelTier = e.tier(a.Model)
	}
	return env
}

// DeniesUnconditionally reports whether an action is denied whatever its
// arguments: a kill switch covers it, its agent's ring does not allow it,
// or policy denies it even when every
// condition is read in its favour. Nothing is recorded; it answers "should
// this tool be shown at all", not "may this call proceed".
func (e *Engine) DeniesUnconditionally(ctx context.Context, a action.Action) (bool, error) {
	if err := a.Validate(); err != nil {
		return true, err
	}
	if e.kill != nil {
		if _, blocked := e.killCheck(&a); blocked {
			return true, nil
		}
	}
	if e.trust != nil {
		if _, ok := e.ringAdmits(&a, e.clock()); !ok {
			return true, nil
		}
	}
	return e.set.Load().DeniesUnconditionally(&a), nil
}

// evaluate applies the policy set, the anomaly responses and, to an
// allow, the rate limits.
func (e *Engine) evaluate(a *action.Action, d *action.Decision, set *policy.Set, env *policy.Env, r *policy.Result, an *anomaly.Reading) {
	set.EvaluateInto(a, env, r)
	d.Effect, d.Flagged, d.Rules, d.Reasons, d.Severity, d.Obligations = r.Effect, r.Flagged, r.Rules, r.Reasons, r.Severity, r.Obligations
	if an.Ask|an.Flag != 0 {
		anomalyResponds(a, d, an)
	}
	if d.Effect == action.Allow {
		e.admit(a, d, set, env.Now)
	}
}

// budgetView is the `budget` variable of CEL.
func budgetView(us []budget.Usage) map[string]any {
	top := 0.0
	by := make(map[string]any, len(us))
	for _, u := range us {
		top = max(top, u.Fraction)
		by[u.ID] = map[string]any{
			"fraction": u.Fraction, "period": u.Period,
			"spent_usd": float64(u.Spent.CostMicros) / 1e6, "tokens": u.Spent.Tokens, "calls": u.Spent.Calls,
			"limit_usd": float64(u.Limits.CostMicros) / 1e6, "limit_tokens": u.Limits.Tokens, "limit_calls": u.Limits.Calls,
		}
	}
	return map[string]any{"fraction": top, "budgets": by}
}

// admit counts an allowed action against the rate limits, denying it when
// one is full.
func (e *Engine) admit(a *action.Action, d *action.Decision, set *policy.Set, now time.Time) bool {
	limits := set.RateLimits()
	if len(limits) == 0 {
		return true
	}
	rl := e.limiter.admit(limits, a, now)
	if rl == nil {
		return true
	}
	deny(d, fmt.Sprintf("rate limit %s: more than %d per %s for %s %q", rl.ID, rl.Limit, time.Duration(rl.Per), rl.Key, keyOf(rl.RateLimit, a)))
	return false
}

// holds are what a decision took on its way, which it gives back if it
// cannot be recorded: a decision that is not in the log did not happen.
// (A budget reservation is given back for any allow.)
type holds struct {
	opened   string // the approval ticket a require_approval decision opened
	redeemed string // the approval ticket an allow used
	// policy is the effect the policy rules gave, before rate limits,
	// budgets and approvals; empty when an earlier stage decided. It is
	// recorded so that replay can re-decide the policy stage alone.
	policy action.Effect
	// env is what the policy stage saw, for the shadow set (a copy, so
	// that the stage's own stays on the stack); shadow says it is set.
	env    policy.Env
	shadow bool
	// signal is what the decision tells the trust keeper, once recorded.
	signal trust.Signal
	// anomaly is what the anomaly detector found, acted on once recorded.
	anomaly anomaly.Reading
}

func (e *Engine) decide(ctx context.Context, a *action.Action, d *action.Decision, set *policy.Set, now time.Time, w *stopwatch) holds {
	var h holds
	if e.kill != nil {
		reason, blocked := e.killCheck(a)
		w.lap(StageKill)
		if blocked {
			deny(d, reason)
			return h
		}
	}
	if e.sessions != nil && a.Session != "" {
		ok, reason, err := e.sessions.Touch(ctx, a.Session, a.Agent.ID)
		w.lap(StageSession)
		if err != nil {
			reason = e.unavailable(ctx, a, d, "session state unavailable", err)
		}
		if !ok || err != nil {
			deny(d, reason)
			return h
		}
	}
	// A delegated agent acts only within every link of its chain, whatever
	// the policies would let its delegator do.
	if len(a.Agent.Delegation) > 0 {
		if why := action.DelegationDenies(a, now); why != "" {
			deny(d, why)
			return h
		}
	}

	if e.anom != nil {
		if h.anomaly = e.anom.Observe(action.CallOf(a), now); h.anomaly.Isolate != 0 {
			e.anomalyIsolate(ctx, a, d, &h.anomaly)
			return h
		}
	}
	if e.trust != nil {
		var ok bool
		if h.signal, ok = e.admitRing(a, d, now); !ok {
			return h
		}
	}

	env := e.env(a, now)
	env.Anomaly = anomalyView(&h.anomaly)
	if e.rel != nil {
		var refusal string
		if env.Breaker, refusal = e.rel.Admit(d.ID, action.CallOf(a), now); refusal != "" {
			deny(d, refusal)
			return h
		}
	}
	e.provenanceBefore(ctx, a, set, &env)
	if e.budgets != nil && set.Uses("budget") {
		us, err := e.budgets.State(ctx, a)
		w.lap(StageBudgetState)
		if err != nil {
			deny(d, e.unavailable(ctx, a, d, "budget state unavailable", err))
			return h
		}
		env.Budget = budgetView(us)
	}
	var r policy.Result
	e.evaluate(a, d, set, &env, &r, &h.anomaly)
	if r.Provenance && d.Effect != action.Allow {
		d.Provenance = provenanceOf(a, env.Provenance)
	}
	h.policy = r.Effect
	if e.shadow.Load() != nil {
		h.env, h.shadow = env, true
	}
	w.lap(StagePolicy)
	if e.trust != nil {
		h.signal = policySignal(a, d, &r)
	}
	if d.Effect == action.Deny {
		e.respond(ctx, a, d, r.Responses)
		return h
	}
	// Approval may be needed by policy or, below, by a budget throttle.
	// Either way an agent retrying with a ticket gets through only once the
	// engine has checked the ticket, the budgets have reserved for it and
	// the ticket is used; an approval id the action merely carries lifts
	// nothing.
	policyAsks := d.Effect == action.RequireApproval
	needs := policyAsks
	retry := a.ApprovalID != "" && e.approval != nil
	reserved := false
	if e.budgets != nil && (d.Effect == action.Allow || retry) {
		answer := e.reserve(ctx, a, d, false)
		w.lap(StageBudget)
		switch answer {
		case budgetRefused:
			return h
		case budgetThrottled:
			needs = true
		case budgetReserved:
			reserved = true
		}
	}
	if !needs {
		return h
	}
	if !retry {
		e.ticket(ctx, a, d, r.Approval, set, &h)
		w.lap(StageApproval)
		return h
	}
	e.redeem(ctx, a, d, set, now, policyAsks, reserved, &h)
	w.lap(StageApproval)
	return h
}

// deny turns d into a deny for reason, dropping what earlier stages said.
func deny(d *action.Decision, reason string) {
	d.Effect = action.Deny
	d.Reasons = []string{reason}
	d.Rules = nil
	d.Flagged = false
	d.Obligations = nil
	d.Provenance = nil
}

// budgetAnswer is what the budgets said of an action.
type budgetAnswer int

const (
	budgetReserved  budgetAnswer = iota // allowed, and its estimate is held
	budgetThrottled                     // a throttle asks for approval; nothing is held
	budgetRefused                       // denied; d says why
)

// reserve holds the action's estimate against its budgets; approved lifts
// a throttle that asks for approval. A throttle turns d into a
// require_approval, a refusal into a deny.
func (e *Engine) reserve(ctx context.Context, a *action.Action, d *action.Decision, approved bool) budgetAnswer {
	reserve := e.budgets.Reserve
	if approved {
		reserve = e.budgets.ReserveApproved
	}
	v, err := reserve(ctx, d.ID.String(), a)
	if err != nil {
		deny(d, e.unavailable(ctx, a, d, "budget state unavailable", err))
		return budgetRefused
	}
	for _, al := range v.Alerts {
		e.emit(ctx, Notice{Kind: "budget_" + al.Level, Decision: d.ID, Agent: a.Agent.ID, Message: al.Message,
			Fields: map[string]any{"budget": al.Budget, "scope": al.Scope.String(), "fraction": al.Fraction, "threshold": al.Threshold}})
	}
	for _, sc := range v.Kill {
		if err := e.isolateScope(ctx, d, sc); err != nil && v.Reserved {
			// A kill threshold that cannot take effect must not let the
			// action that reached it through.
			_ = e.budgets.Release(context.WithoutCancel(ctx), d.ID.String())
			deny(d, "budget kill threshold reached, and the kill switch could not be engaged: "+err.Error())
			return budgetRefused
		}
	}
	switch v.Effect {
	case action.Allow:
		return budgetReserved
	case action.RequireApproval:
		d.Effect = action.RequireApproval
		d.Rules = nil
		d.Reasons = append(append([]string(nil), d.Reasons...), v.Reasons...)
		return budgetThrottled
	default:
		deny(d, joinReasons(v.Reasons, "budget exhausted"))
		return budgetRefused
	}
}

func joinReasons(rs []string, fallback string) string {
	if len(rs) == 0 {
		return fallback
	}
	out := rs[0]
	for _, r := range rs[1:] {
		out += "; " + r
	}
	return out
}

func (e *Engine) emit(ctx context.Context, n Notice) {
	if e.notify != nil {
		e.notify(ctx, n)
	}
}

// decisionRecord is the audit entry of a decision: the whole action (after
// redaction obligations) and the whole decision, so that the log alone
// explains every answer.
type decisionRecord struct {
	Decision   action.Decision `json:"decision"`
	Action     action.Action   `json:"action"`
	ArgsDigest string          `json:"args_digest"`
	Policy     string          `json:"policy,omitempty"`
	// Bundle is the digest of the signed bundle the policy came from.
	Bundle string `json:"bundle,omitempty"`
	// PolicyEffect is what the policy rules said, before rate limits,
	// budgets and approvals; absent when the kill switch or session state
	// decided first.
	PolicyEffect action.Effect `json:"policy_effect,omitempty"`
	Trace        *Trace        `json:"trace,omitempty"`
	// SettledBy names the enforcement point that records the outcome of
	// this decision itself (action.WithEnforcer); no one else may.
	SettledBy string `json:"settled_by,omitempty"`
	// Anomaly is what the anomaly detector found, when it found anything.
	Anomaly *anomaly.Reading `json:"anomaly,omitempty"`
}

// record appends the decision to the audit log. A decision that is not in
// the log did not happen: if the append fails, it becomes a deny and gives
// back what it held (its budget reservation, the ticket it opened or used).
func (e *Engine) record(ctx context.Context, a *action.Action, d *action.Decision, set *policy.Set, h holds) {
	// (Invalid actions reach here too, with no set.)
	if e.audit == nil {
		return
	}
	var digest, bundle string
	if set != nil {
		digest, bundle = set.Digest(), set.Bundle()
	}
	logged := redact(a, d.Obligations)
	// The digest names the arguments the agent sent, as an approval ticket
	// does, so that the record identifies the exact call even where the
	// arguments themselves are redacted or masked in it.
	argsDigest, _, err := action.ArgsDigest(a.Args)
	if err != nil && d.Effect != action.Deny {
		e.withdraw(ctx, d, "arguments cannot be written to the audit log: "+err.Error(), h)
		h = holds{policy: h.policy}
	}
	rec := decisionRecord{Decision: maskDecision(*d), Action: maskSensitive(logged), ArgsDigest: argsDigest, Policy: digest, Bundle: bundle, PolicyEffect: h.policy, Trace: maskTrace(traceFrom(ctx)), SettledBy: action.EnforcerOf(ctx)}
	if e.anom != nil && (h.anomaly.Over != 0 || (set != nil && set.Uses("anomaly"))) {
		rec.Anomaly = &h.anomaly
	}
	// The append must survive the caller hanging up: an allow the agent
	// never hears about is harmless, a decision missing from the log is not.
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	idx, err := e.audit.Append(actx, "decision", rec)
	if err != nil {
		e.withdraw(actx, d, e.unavailable(actx, a, d, "audit log unavailable, failing closed", err), h)
		return
	}
	d.AuditIndex = &idx
}

// unavailable is the reason of a decision denied because a store it needed
// failed: what failed, for the caller, while the store's own error, which
// may name hosts, users, files or database objects, goes to the operator
// in a store_failed notice with the decision's id.
func (e *Engine) unavailable(ctx context.Context, a *action.Action, d *action.Decision, what string, err error) string {
	e.emit(ctx, Notice{Kind: "store_failed", Decision: d.ID, Agent: a.Agent.ID, Message: what + ": " + err.Error()})
	return what
}

// withdraw turns d into a denial for reason, giving back the budget an
// allow had reserved, the ticket it used (an approval is not lost with a
// decision that did not happen) and the ticket it opened (no approver may
// approve a request that was never recorded).
func (e *Engine) withdraw(ctx context.Context, d *action.Decision, reason string, h holds) {
	ctx = context.WithoutCancel(ctx)
	if d.Effect == action.Allow && e.budgets != nil {
		_ = e.budgets.Release(ctx, d.ID.String())
	}
	if h.redeemed != "" {
		if err := e.approval.Unredeem(ctx, h.redeemed, d.ID.String()); err != nil {
			e.emit(ctx, Notice{Kind: "approval", Decision: d.ID, Message: "approval " + h.redeemed + " was used by a decision that could not be recorded, and could not be given back: " + err.Error()})
		}
	}
	if h.opened != "" {
		if err := e.approval.Cancel(ctx, h.opened); err != nil {
			e.emit(ctx, Notice{Kind: "approval", Decision: d.ID, Message: "approval " + h.opened + " was opened by a decision that could not be recorded, and could not be cancelled: " + err.Error()})
		}
	}
	deny(d, reason)
	d.Approval = nil
}

// Outcome records what happened after an allowed action: it appends an
// outcome entry and then settles the budget reservation, on a context
// detached from the caller's. With WithOutcomes, each decision's outcome is
// recorded once; a second is refused with ErrOutcomeRecorded and changes
// nothing. An outcome that cannot be recorded or settled is given back, so
// that the caller may send it again.
func (e *Engine) Outcome(ctx context.Context, id action.ID, o action.Outcome) error {
	if err := o.Validate(); err != nil {
		return err
	}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), auditTimeout)
	defer cancel()
	if e.outcomes != nil {
		claimed, err := e.outcomes.ClaimOutcome(actx, id.String(), e.clock())
		if err != nil {
			return fmt.Errorf("outcome %s: %w", id, err)
		}
		if !claimed {
			return fmt.Errorf("outcome %s: %w", id, ErrOutcomeRecorded)
		}
	}
	// The error is free text from the agent or the upstream it called.
	o.Error = maskText(o.Error)
	err := e.Change(actx, "outcome", func(ctx context.Context, record func(context.Context, any) error) error {
		if err := record(ctx, map[string]any{"decision": id, "outcome": o, "trace": maskTrace(traceFrom(ctx))}); err != nil {
			return err
		}
		if e.budgets != nil {
			if err := e.budgets.Settle(ctx, id.String(), o); err != nil {
				return fmt.Errorf("settle budget: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		if e.outcomes != nil {
			_ = e.outcomes.ReleaseOutcome(actx, id.String())
		}
		return fmt.Errorf("outcome %s: %w", id, err)
	}
	if e.obs != nil {
		e.obs.OutcomeRecorded(&o)
	}
	if e.trust != nil {
		e.observeOutcome(ctx, id, &o)
	}
	e.reliabilityOutcome(ctx, id, &o)
	return nil
}
