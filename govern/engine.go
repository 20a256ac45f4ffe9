// Package govern is the decision pipeline: it runs an Action through the kill
// switch, session state, policy, rate limits, budgets and approvals, records
// the decision in the audit log, and later settles the outcome. Every stage
// but policy is optional, so the same Engine serves a library user deciding
// in process and the server with its stores.
package govern

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/budget"
	"github.com/agentgov/agentgov/policy"
)

// Auditor appends entries to the tamper-evident log; *audit.Log is one.
// Append returns only once the entry is durable.
type Auditor interface {
	Append(ctx context.Context, kind string, record any) (uint64, error)
}

// SessionChecker says whether an agent may act in a session, creating the
// session on first use; *session.Sessions is one.
type SessionChecker interface {
	Touch(ctx context.Context, id, agentID string) (ok bool, reason string, err error)
}

// BudgetKeeper reserves an action's estimate and settles its outcome;
// *budget.Budgets is one.
type BudgetKeeper interface {
	Reserve(ctx context.Context, decisionID string, a *action.Action) (budget.Verdict, error)
	Settle(ctx context.Context, decisionID string, o action.Outcome) error
	Release(ctx context.Context, decisionID string) error
	State(ctx context.Context, a *action.Action) ([]budget.Usage, error)
}

// Engine decides actions. It is safe for concurrent use; its policy set is
// swapped atomically by Load.
type Engine struct {
	set      atomic.Pointer[policy.Set]
	clock    func() time.Time
	trust    func(agentID string) float64
	tier     func(model string) string
	limiter  *limiter
	audit    Auditor
	sessions SessionChecker
	budgets  BudgetKeeper
	kill     KillSwitch
	approval Approvals
	notify   func(ctx context.Context, n Notice)

	idHi      uint16
	idCtr     atomic.Uint64
	started   time.Time
	startedMs int64
}

// Option configures an Engine.
type Option func(*Engine)

// WithClock sets the clock; the default is time.Now.
func WithClock(now func() time.Time) Option { return func(e *Engine) { e.clock = now } }

// WithAudit records every decision and outcome; without it nothing is logged.
func WithAudit(a Auditor) Option { return func(e *Engine) { e.audit = a } }

// WithSessions checks session state before policy.
func WithSessions(s SessionChecker) Option { return func(e *Engine) { e.sessions = s } }

// WithBudgets reserves estimates on allowed actions and settles outcomes.
func WithBudgets(b BudgetKeeper) Option { return func(e *Engine) { e.budgets = b } }

// WithTrust supplies the trust score policies see as `trust`. Without it
// every agent has trust 0, the most suspicious value.
func WithTrust(f func(agentID string) float64) Option { return func(e *Engine) { e.trust = f } }

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
	Kind     string          `json:"kind"` // "deny", "budget_soft", "kill"
	Decision action.ID       `json:"decision"`
	Agent    string          `json:"agent"`
	Severity action.Severity `json:"severity,omitempty"`
	Message  string          `json:"message"`
}

// New returns an Engine deciding with set.
func New(set *policy.Set, opts ...Option) *Engine {
	e := &Engine{clock: time.Now, limiter: newLimiter()}
	var seed [10]byte
	if _, err := rand.Read(seed[:]); err != nil {
		panic("govern: no randomness for decision ids: " + err.Error())
	}
	e.idHi = binary.BigEndian.Uint16(seed[:2])
	e.idCtr.Store(binary.BigEndian.Uint64(seed[2:]))
	e.set.Store(set)
	for _, o := range opts {
		o(e)
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
			"digest": set.Digest(), "documents": names, "previous": e.set.Load().Digest(),
		}); err != nil {
			return fmt.Errorf("load policy: audit: %w", err)
		}
	}
	e.set.Store(set)
	return nil
}

func (e *Engine) newID(now time.Time) action.ID {
	ms := e.startedMs
	if now != e.started {
		ms = now.UnixMilli()
	}
	return action.NewID(ms, e.idHi, e.idCtr.Add(1))
}

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
	pure := e.kill == nil && e.sessions == nil && e.budgets == nil && e.approval == nil && e.audit == nil
	// The library path reads the clock only when the policy needs the time;
	// its decision ids then carry the engine's start time, still unique.
	now := e.started
	if !pure || set.NeedsClock() {
		now = e.clock()
	}
	d := action.Decision{ID: e.newID(now)}
	if err := a.Validate(); err != nil {
		d.Effect, d.Reasons = action.Deny, []string{"invalid action: " + err.Error()}
		e.record(ctx, &a, &d, "")
		return d, err
	}
	if pure {
		// Policy and rate limits only, and no stage that could retain the
		// action, so it stays on the stack.
		env := e.env(&a, now)
		var r policy.Result
		e.evaluate(&a, &d, set, &env, &r)
		return d, nil
	}
	// The stages are interfaces, through which the action escapes; copy it
	// once here rather than letting every decision pay for it.
	full := a
	e.decide(ctx, &full, &d, set, now)
	e.record(ctx, &full, &d, set.Digest())
	return d, nil
}

func (e *Engine) env(a *action.Action, now time.Time) policy.Env {
	env := policy.Env{Now: now}
	if e.trust != nil {
		env.Trust = e.trust(a.Agent.ID)
	}
	if e.tier != nil && a.Model != "" {
		env.ModelTier = e.tier(a.Model)
	}
	return env
}

// DeniesUnconditionally reports whether an action is denied whatever its
// arguments: a kill switch covers it, or policy denies it even when every
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
	return e.set.Load().DeniesUnconditionally(&a), nil
}

// evaluate applies the policy set and, to an allow, the rate limits.
func (e *Engine) evaluate(a *action.Action, d *action.Decision, set *policy.Set, env *policy.Env, r *policy.Result) {
	set.EvaluateInto(a, env, r)
	d.Effect, d.Flagged, d.Rules, d.Reasons, d.Severity, d.Obligations = r.Effect, r.Flagged, r.Rules, r.Reasons, r.Severity, r.Obligations
	if r.Effect == action.Allow {
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

func (e *Engine) decide(ctx context.Context, a *action.Action, d *action.Decision, set *policy.Set, now time.Time) {
	if e.kill != nil {
		if reason, blocked := e.killCheck(a); blocked {
			deny(d, reason)
			return
		}
	}
	if e.sessions != nil && a.Session != "" {
		ok, reason, err := e.sessions.Touch(ctx, a.Session, a.Agent.ID)
		if err != nil {
			reason = "session state unavailable: " + err.Error()
		}
		if !ok || err != nil {
			deny(d, reason)
			return
		}
	}

	env := e.env(a, now)
	if e.budgets != nil && set.Uses("budget") {
		us, err := e.budgets.State(ctx, a)
		if err != nil {
			deny(d, "budget state unavailable: "+err.Error())
			return
		}
		env.Budget = budgetView(us)
	}
	var r policy.Result
	e.evaluate(a, d, set, &env, &r)
	if d.Effect == action.Deny {
		e.respond(ctx, a, d, r.Responses)
		return
	}
	// Approval may be needed by policy or, below, by a budget throttle.
	// Either way an agent retrying with an approved ticket gets through only
	// after the budgets have reserved for it.
	retry := a.ApprovalID != "" && e.approval != nil
	if e.budgets != nil && (d.Effect == action.Allow || retry) {
		if !e.reserve(ctx, a, d) {
			return
		}
	}
	if d.Effect != action.RequireApproval {
		return
	}
	if !retry {
		e.ticket(ctx, a, d, r.Approval, set)
		return
	}
	if !e.redeem(ctx, a, d, set) || !e.admit(a, d, set, now) {
		if e.budgets != nil {
			_ = e.budgets.Release(ctx, d.ID.String())
		}
	}
}

// deny turns d into a deny for reason, dropping what earlier stages said.
func deny(d *action.Decision, reason string) {
	d.Effect = action.Deny
	d.Reasons = []string{reason}
	d.Rules = nil
	d.Flagged = false
	d.Obligations = nil
}

func (e *Engine) reserve(ctx context.Context, a *action.Action, d *action.Decision) bool {
	v, err := e.budgets.Reserve(ctx, d.ID.String(), a)
	if err != nil {
		deny(d, "budget state unavailable: "+err.Error())
		return false
	}
	for _, al := range v.Alerts {
		e.emit(ctx, Notice{Kind: "budget_soft", Decision: d.ID, Agent: a.Agent.ID, Message: al.Message})
	}
	for _, sc := range v.Kill {
		e.isolateScope(ctx, a, d, sc)
	}
	switch v.Effect {
	case action.Allow:
		return true
	case action.RequireApproval:
		d.Effect = action.RequireApproval
		d.Rules = nil
		d.Reasons = append(append([]string(nil), d.Reasons...), v.Reasons...)
		return true
	default:
		deny(d, joinReasons(v.Reasons, "budget exhausted"))
		return false
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
	Trace      *Trace          `json:"trace,omitempty"`
}

// record appends the decision to the audit log. A decision that is not in
// the log did not happen: if the append fails, an allow becomes a deny and
// any budget it reserved is released.
func (e *Engine) record(ctx context.Context, a *action.Action, d *action.Decision, digest string) {
	// (Invalid actions reach here too, with an empty digest.)
	if e.audit == nil {
		return
	}
	logged := redact(a, d.Obligations)
	// The digest names the arguments the agent sent, as an approval ticket
	// does, so that the record identifies the exact call even where the
	// arguments themselves are redacted or masked in it.
	argsDigest, _, err := action.ArgsDigest(a.Args)
	if err != nil && d.Effect != action.Deny {
		e.withdraw(ctx, d, "arguments cannot be written to the audit log: "+err.Error())
	}
	rec := decisionRecord{Decision: *d, Action: maskSensitive(logged), ArgsDigest: argsDigest, Policy: digest, Trace: traceFrom(ctx)}
	// The append must survive the caller hanging up: an allow the agent
	// never hears about is harmless, a decision missing from the log is not.
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	idx, err := e.audit.Append(actx, "decision", rec)
	if err != nil {
		e.withdraw(actx, d, "audit log unavailable, failing closed: "+err.Error())
		return
	}
	d.AuditIndex = &idx
}

// withdraw turns d into a denial for reason, giving back the budget an
// allow had reserved.
func (e *Engine) withdraw(ctx context.Context, d *action.Decision, reason string) {
	if d.Effect == action.Allow && e.budgets != nil {
		_ = e.budgets.Release(context.WithoutCancel(ctx), d.ID.String())
	}
	deny(d, reason)
}

// Outcome records what happened after an allowed action: it settles the
// budget reservation and appends an outcome entry.
func (e *Engine) Outcome(ctx context.Context, id action.ID, o action.Outcome) error {
	if err := o.Validate(); err != nil {
		return err
	}
	if e.budgets != nil {
		if err := e.budgets.Settle(ctx, id.String(), o); err != nil {
			return fmt.Errorf("outcome %s: settle budget: %w", id, err)
		}
	}
	if e.audit != nil {
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if _, err := e.audit.Append(actx, "outcome", map[string]any{"decision": id, "outcome": o, "trace": traceFrom(ctx)}); err != nil {
			return fmt.Errorf("outcome %s: audit: %w", id, err)
		}
	}
	return nil
}
