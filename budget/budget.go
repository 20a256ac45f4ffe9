// Package budget enforces token, cost and call budgets on agents' actions.
//
// Usage is counted where it happens, not where a caller says it happened: a
// decision reserves the action's estimate against every budget that applies,
// the outcome settles the actual amount and gives back the rest, and a
// reservation that is never settled expires. The check and the reservation
// happen in one store transaction for all applicable budgets together, so no
// amount of concurrency (nor several replicas sharing one store) can take
// spending past a hard limit, and counters survive restarts because they live
// only in the store. Configs are held in memory as an index, so an action no
// budget applies to never touches the store.
package budget

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agentgov/agentgov/action"
)

// DefaultReservationTTL is how long an unsettled reservation holds its
// amounts when Options.ReservationTTL is zero.
const DefaultReservationTTL = 10 * time.Minute

// expiredRetention is how long an expired reservation is remembered, so that
// an outcome arriving after expiry is still counted as spent.
const expiredRetention = 24 * time.Hour

// Options configure Budgets.
type Options struct {
	// Clock gives the time periods and expiry are computed from; time.Now
	// when nil.
	Clock func() time.Time
	// ReservationTTL bounds how long a decision's reservation waits for its
	// outcome; DefaultReservationTTL when zero.
	ReservationTTL time.Duration
	// Logger receives Run's failures to expire reservations, which it
	// retries at its next tick; none are logged when nil.
	Logger *slog.Logger
}

// Budgets enforces the budgets kept in a Store.
type Budgets struct {
	st  Store
	now func() time.Time
	ttl time.Duration
	log *slog.Logger

	idx       atomic.Pointer[index]
	mu        sync.Mutex // serialises config changes with the index reload
	batch     batcher
	crossings crossings
}

// New loads the budgets in st.
func New(st Store, opts Options) (*Budgets, error) {
	if st == nil {
		return nil, errors.New("budgets: no store")
	}
	if opts.ReservationTTL < 0 {
		return nil, fmt.Errorf("budgets: negative reservation TTL %s", opts.ReservationTTL)
	}
	b := &Budgets{st: st, now: opts.Clock, ttl: opts.ReservationTTL, log: opts.Logger}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	if b.now == nil {
		b.now = time.Now
	}
	if b.ttl == 0 {
		b.ttl = DefaultReservationTTL
	}
	if err := b.Reload(context.Background()); err != nil {
		return nil, err
	}
	return b, nil
}

// Reload rebuilds the in-memory index from the store. Put and Delete do it
// themselves; a replica calls it to see another replica's changes.
func (b *Budgets) Reload(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.reloadLocked(ctx)
}

func (b *Budgets) reloadLocked(ctx context.Context) error {
	cfgs, err := b.st.ListBudgets(ctx)
	if err != nil {
		return fmt.Errorf("load budgets: %w", err)
	}
	cs := make([]*compiled, 0, len(cfgs))
	for _, c := range cfgs {
		cc, err := compile(c.withDefaults())
		if err != nil {
			return fmt.Errorf("load budget %s: %w", c.ID, err)
		}
		cs = append(cs, cc)
	}
	b.idx.Store(newIndex(cs))
	return nil
}

// Change is the audit record of a change to the budgets: the config created
// or replaced, or the one deleted (with its counters).
type Change struct {
	Event  string `json:"event"` // "create", "replace" or "delete"
	Budget Config `json:"budget"`
}

// Record writes a change to the audit log before it is made: it is given
// everything the change will write, and an error from it stops the change.
// The engine supplies it (govern.Engine.PutBudget and DeleteBudget); a nil
// Record records nothing.
type Record func(ctx context.Context, c Change) error

func record(ctx context.Context, rs []Record, c Change) error {
	for _, r := range rs {
		if r == nil {
			continue
		}
		if err := r(ctx, c); err != nil {
			return err
		}
	}
	return nil
}

// Put creates or replaces a budget. Counters of the current period carry
// over a replacement with the same id and period; they start again when the
// period changes. Each record given is called with the change before it is
// stored; if one fails, nothing is stored.
func (b *Budgets) Put(ctx context.Context, c Config, records ...Record) error {
	c = c.withDefaults()
	cc, err := compile(c)
	if err != nil {
		return err
	}
	if err := checkScope(c.Scope); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	event := "create"
	if _, ok := b.idx.Load().get(c.ID); ok {
		event = "replace"
	}
	if err := record(ctx, records, Change{Event: event, Budget: c}); err != nil {
		return fmt.Errorf("put budget %s: %w", c.ID, err)
	}
	if err := b.st.PutBudget(ctx, c); err != nil {
		return fmt.Errorf("put budget %s: %w", c.ID, err)
	}
	b.replaceLocked(c.ID, cc)
	return nil
}

// replaceLocked swaps in an index where budget id is cc (removed when cc is
// nil), without reading the store back.
func (b *Budgets) replaceLocked(id string, cc *compiled) {
	old := b.idx.Load().all
	cs := make([]*compiled, 0, len(old)+1)
	for _, o := range old {
		if o.cfg.ID != id {
			cs = append(cs, o)
		}
	}
	if cc != nil {
		cs = append(cs, cc)
	}
	b.idx.Store(newIndex(cs))
}

// Delete removes a budget and its counters. Each record given is called
// with the change before it is made; if one fails, nothing is deleted.
func (b *Budgets) Delete(ctx context.Context, id string, records ...Record) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	old, ok := b.idx.Load().get(id)
	if !ok {
		return fmt.Errorf("delete budget %s: %w: %s", id, ErrNotFound, id)
	}
	if err := record(ctx, records, Change{Event: "delete", Budget: old.cfg}); err != nil {
		return fmt.Errorf("delete budget %s: %w", id, err)
	}
	if err := b.st.DeleteBudget(ctx, id); err != nil {
		return fmt.Errorf("delete budget %s: %w", id, err)
	}
	b.replaceLocked(id, nil)
	return nil
}

// Get returns one budget's config, with defaults filled in.
func (b *Budgets) Get(ctx context.Context, id string) (Config, error) {
	c, ok := b.idx.Load().get(id)
	if !ok {
		return Config{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return c.cfg, nil
}

// List returns every budget's config, sorted by id.
func (b *Budgets) List(ctx context.Context) ([]Config, error) {
	all := b.idx.Load().all
	out := make([]Config, len(all))
	for i, c := range all {
		out[i] = c.cfg
	}
	return out, nil
}

// Verdict is the budgets' answer to one action.
type Verdict struct {
	// Effect is Allow, RequireApproval (a throttle threshold was crossed) or
	// Deny (a hard limit, a rate throttle, or a store failure).
	Effect  action.Effect
	Reasons []string
	// Kill lists the scopes of budgets whose kill threshold the action
	// reached; the engine engages the kill switch on them.
	Kill []Scope
	// Alerts are the thresholds the action took a budget to, each at most
	// once per budget and period: a soft threshold only when the action
	// was reserved (and once across restarts and replicas: it is stored),
	// a throttle, hard limit or kill threshold the first time this
	// process saw it refuse or stop an action in the period.
	Alerts []Alert
	// Reserved is true when the estimate is now held: the engine must then
	// Settle or Release the decision.
	Reserved bool
}

// Alert says that an action took a budget to one of its thresholds.
type Alert struct {
	// Level is the threshold: "soft", "throttle", "hard" or "kill".
	Level       string    `json:"level"`
	Budget      string    `json:"budget"`
	Scope       Scope     `json:"scope"`
	PeriodStart time.Time `json:"period_start,omitzero"`
	Threshold   float64   `json:"threshold"`
	Fraction    float64   `json:"fraction"`
	Message     string    `json:"message"`
	// key is the counter of the period (or session) crossed.
	key string
}

// Reserve checks every budget that applies to a and, only when all allow it,
// holds the action's estimate against each of them (one call, the estimated
// tokens — counted against the input and output token limits too, since the
// split is not known yet — and the estimated cost), all in one store
// transaction.
//
// The action that would take any limited dimension past a hard threshold, or
// arrives when one is already reached, is denied. One that reaches a
// throttle threshold needs approval (or is rate-limited). Only an allowed
// action is reserved: the engine must Release it if a later stage does not
// allow it.
//
// With no applicable budget Reserve allows without touching the store. On a
// store failure it returns a Deny verdict together with the error.
func (b *Budgets) Reserve(ctx context.Context, decisionID string, a *action.Action) (Verdict, error) {
	return b.reserveFor(ctx, decisionID, a, false)
}

// ReserveApproved is Reserve for an action a human approved: a throttle
// threshold that asks for approval has had it. Hard limits, kill thresholds
// and rate throttles hold as ever. Only the engine may call it, and only
// for an action whose approval ticket it checked: what the action itself
// says (its approval_id) proves nothing.
func (b *Budgets) ReserveApproved(ctx context.Context, decisionID string, a *action.Action) (Verdict, error) {
	return b.reserveFor(ctx, decisionID, a, true)
}

func (b *Budgets) reserveFor(ctx context.Context, decisionID string, a *action.Action, approved bool) (Verdict, error) {
	apps := b.idx.Load().applicable(ScopeOf(a))
	if len(apps) == 0 {
		return Verdict{Effect: action.Allow}, nil
	}
	fail := func(err error) (Verdict, error) {
		err = fmt.Errorf("reserve budgets: %w", err)
		return Verdict{Effect: action.Deny, Reasons: []string{err.Error()}}, err
	}
	if decisionID == "" {
		return fail(errors.New("empty decision id"))
	}
	est, err := estimateOf(a)
	if err != nil {
		return fail(err)
	}
	var v Verdict
	var own error // this decision's own failure, which does not abort the batch
	err = b.do(ctx, func(ctx context.Context, tx Tx, now time.Time) error {
		v, own = b.reserve(ctx, tx, decisionID, a, apps, est, now, approved)
		if errors.Is(own, ErrDuplicate) {
			return nil // refused before anything was written
		}
		return own
	})
	if err == nil {
		err = own
	}
	if err != nil {
		return fail(err)
	}
	v.Alerts = b.crossings.first(v.Alerts)
	return v, nil
}

// Bounds of what one call may reserve or count. Counters are int64 sums:
// amounts near their limit would wrap a sum (input plus output, or two
// calls), leaving a budget unreadable, which denies every agent it covers,
// or negative, which limits none. No real call comes near them.
const (
	MaxCallTokens     = 10_000_000_000
	MaxCallCostUSD    = 1_000_000
	maxCallCostMicros = MaxCallCostUSD * microsPerDollar
)

func estimateOf(a *action.Action) (Amounts, error) {
	if a.Estimate.Tokens < 0 || a.Estimate.Tokens > MaxCallTokens {
		return Amounts{}, &action.FieldError{Field: "estimate.tokens", Problem: fmt.Sprintf("must be 0 to %d", int64(MaxCallTokens))}
	}
	cost, err := microsFromFloat(a.Estimate.CostUSD)
	if err != nil || cost < 0 || cost > maxCallCostMicros {
		return Amounts{}, &action.FieldError{Field: "estimate.cost_usd", Problem: fmt.Sprintf("must be 0 to %d dollars", MaxCallCostUSD)}
	}
	t := a.Estimate.Tokens
	return Amounts{CostMicros: cost, Tokens: t, InputTokens: t, OutputTokens: t, Calls: 1}, nil
}

// plan is what one budget will record if the action is reserved.
type plan struct {
	c     *compiled
	span  span
	alert *Alert
	rate  string // rate counter to count this call in, when throttled by rate
}

func (b *Budgets) reserve(ctx context.Context, tx Tx, decisionID string, a *action.Action, apps []*compiled, est Amounts, now time.Time, approved bool) (Verdict, error) {
	v := Verdict{Effect: action.Allow}
	plans := make([]plan, 0, len(apps))
	for _, c := range apps {
		id := c.cfg.ID
		sp := c.period.at(now, a.Agent.ID, a.Session)
		ctrs, err := tx.Counters(ctx, id, sp.keys)
		if err != nil {
			return Verdict{}, fmt.Errorf("budget %s: %w", id, err)
		}
		var used Amounts
		alerted := false
		for _, ctr := range ctrs {
			used = used.add(ctr.Spent).add(ctr.Reserved)
			alerted = alerted || ctr.Alerted
		}
		proj := used.add(est)
		p := plan{c: c, span: sp}
		lim, u, pr := c.cfg.Limits.dims(), used.dims(), proj.dims()

		denied := false
		if c.hard > 0 {
			for i := range lim {
				if lim[i].v == 0 {
					continue
				}
				if cp := capOf(lim[i].v, c.hard); pr[i].v > cp || u[i].v >= cp {
					denied = true
					reason := fmt.Sprintf("budget %s: %s (%s)", id, describe(lim[i].name, pr[i].v, lim[i].v), thresholdName("hard limit", c.hard))
					if e := pr[i].v - u[i].v; e > 0 {
						// Say how much of it is this call, so that the caller
						// knows whether a smaller estimate would fit.
						reason = fmt.Sprintf("%s: %s already spent or reserved, %s for this call", reason, amount(lim[i].name, u[i].v), amount(lim[i].name, e))
					}
					v.Reasons = append(v.Reasons, reason)
					v.Alerts = append(v.Alerts, crossed("hard", c, sp, c.cfg.Thresholds.Hard, proj, reason))
					break
				}
			}
		}
		if c.kill > 0 {
			if i := crossing(pr, lim, c.kill); i >= 0 {
				v.Kill = append(v.Kill, c.cfg.Scope)
				reason := fmt.Sprintf("budget %s: %s (%s: kill switch on %s)", id, describe(lim[i].name, pr[i].v, lim[i].v), thresholdName("kill", c.kill), c.cfg.Scope)
				v.Reasons = append(v.Reasons, reason)
				v.Alerts = append(v.Alerts, crossed("kill", c, sp, c.cfg.Thresholds.Kill, proj, reason))
			}
		}
		if !denied && c.throttle > 0 {
			if i := crossing(pr, lim, c.throttle); i >= 0 {
				switch {
				case c.rateN > 0:
					p.rate = rateKey(now, c.rateWidth)
					rc, err := tx.Counters(ctx, id, []string{p.rate})
					if err != nil {
						return Verdict{}, fmt.Errorf("budget %s: %w", id, err)
					}
					if len(rc) > 0 && rc[0].Spent.Calls >= c.rateN {
						denied = true
						reason := fmt.Sprintf("budget %s: %s (%s: throttled to %d calls per %s)", id, describe(lim[i].name, pr[i].v, lim[i].v), thresholdName("throttle", c.throttle), c.rateN, c.rateWidth)
						v.Reasons = append(v.Reasons, reason)
						v.Alerts = append(v.Alerts, crossed("throttle", c, sp, c.cfg.Thresholds.Throttle, proj, reason))
					}
				case !approved:
					if v.Effect == action.Allow {
						v.Effect = action.RequireApproval // never weakens another budget's deny
					}
					reason := fmt.Sprintf("budget %s: %s (%s: needs approval)", id, describe(lim[i].name, pr[i].v, lim[i].v), thresholdName("throttle", c.throttle))
					v.Reasons = append(v.Reasons, reason)
					v.Alerts = append(v.Alerts, crossed("throttle", c, sp, c.cfg.Thresholds.Throttle, proj, reason))
				}
			}
		}
		if denied {
			v.Effect = action.Deny
		}
		if c.soft > 0 && !alerted {
			if i := crossing(pr, lim, c.soft); i >= 0 {
				al := crossed("soft", c, sp, c.cfg.Thresholds.Soft, proj, fmt.Sprintf("budget %s: %s (%s)", id, describe(lim[i].name, pr[i].v, lim[i].v), thresholdName("soft limit", c.soft)))
				p.alert = &al
			}
		}
		plans = append(plans, p)
	}
	if v.Effect != action.Allow {
		return v, nil
	}
	r := Reservation{DecisionID: decisionID, ExpiresAt: now.Add(b.ttl), Holds: make([]Hold, len(plans))}
	for i, p := range plans {
		r.Holds[i] = Hold{Budget: p.c.cfg.ID, Key: p.span.key, Amount: est}
	}
	if err := tx.InsertReservation(ctx, r); err != nil {
		return Verdict{}, fmt.Errorf("decision %s: %w", decisionID, err)
	}
	for _, p := range plans {
		id := p.c.cfg.ID
		if err := tx.AddCounter(ctx, id, p.span.key, Amounts{}, est, p.alert != nil, now); err != nil {
			return Verdict{}, fmt.Errorf("budget %s: %w", id, err)
		}
		if p.rate != "" {
			if err := tx.AddCounter(ctx, id, p.rate, Amounts{Calls: 1}, Amounts{}, false, now); err != nil {
				return Verdict{}, fmt.Errorf("budget %s: %w", id, err)
			}
		}
		if p.alert != nil {
			v.Alerts = append(v.Alerts, *p.alert)
		}
	}
	v.Reserved = true
	return v, nil
}

// crossed is the alert of an action that took budget c to a threshold in
// span sp, its projected use proj.
func crossed(level string, c *compiled, sp span, threshold float64, proj Amounts, msg string) Alert {
	return Alert{
		Level: level, Budget: c.cfg.ID, Scope: c.cfg.Scope, PeriodStart: sp.start,
		Threshold: threshold, Fraction: fraction(proj, c.cfg.Limits), Message: msg, key: sp.key,
	}
}

// crossings remembers which throttle, hard and kill thresholds this
// process has reported in which period, so that an agent refused a
// thousand times is reported once. The soft threshold is remembered in the
// store instead (a counter's alerted flag).
type crossings struct {
	mu   sync.Mutex
	seen map[string]bool
}

// maxCrossings bounds what is remembered: beyond it (per-session budgets
// of many sessions) the memory starts again, and a threshold may be
// reported a second time.
const maxCrossings = 10000

// first keeps the alerts not reported before.
func (c *crossings) first(as []Alert) []Alert {
	if len(as) == 0 {
		return as
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	out := as[:0]
	for _, a := range as {
		if a.Level == "soft" {
			out = append(out, a)
			continue
		}
		k := a.Level + "\x00" + a.Budget + "\x00" + a.key
		if c.seen[k] {
			continue
		}
		if c.seen == nil || len(c.seen) >= maxCrossings {
			c.seen = map[string]bool{}
		}
		c.seen[k] = true
		out = append(out, a)
	}
	return out
}

// crossing returns the index of the fullest limited dimension of x that
// reaches the threshold p (parts per million), or -1.
func crossing(x, lim [5]dim, p int64) int {
	best, bestF := -1, -1.0
	for i := range lim {
		if lim[i].v == 0 || !reaches(x[i].v, lim[i].v, p) {
			continue
		}
		if f := float64(x[i].v) / float64(lim[i].v); f > bestF {
			best, bestF = i, f
		}
	}
	return best
}

// fraction is the fullest limited dimension of x as a fraction of its limit;
// 0 when nothing is limited.
func fraction(x, limits Amounts) float64 {
	f := 0.0
	xs, ls := x.dims(), limits.dims()
	for i := range ls {
		if ls[i].v > 0 {
			f = max(f, float64(xs[i].v)/float64(ls[i].v))
		}
	}
	return f
}

func describe(name string, v, limit int64) string {
	if name == "cost" {
		return fmt.Sprintf("cost %s/%s USD", formatUSD(v), formatUSD(limit))
	}
	return fmt.Sprintf("%s %d/%d", name, v, limit)
}

// amount is v of the dimension name as describe writes it.
func amount(name string, v int64) string {
	if name == "cost" {
		return formatUSD(v) + " USD"
	}
	return fmt.Sprint(v)
}

func thresholdName(name string, p int64) string {
	if p == 1e6 {
		return name
	}
	return fmt.Sprintf("%s at %s%%", name, trimFloat(float64(p)/1e4))
}

func trimFloat(f float64) string { return fmt.Sprintf("%g", f) }

// Settle records what a decision's action really used and gives back its
// reservation. The call counts once whatever its status. Tokens reported
// without an input/output split count against both the input and the output
// token limits, since either may have been all of them; money finer than a
// micro-dollar rounds up. An expired reservation still has its actual usage
// counted; a decision with no reservation (no budget applied) is a no-op.
func (b *Budgets) Settle(ctx context.Context, decisionID string, o action.Outcome) error {
	if err := o.Validate(); err != nil {
		return fmt.Errorf("settle %s: %w", decisionID, err)
	}
	cost, err := microsFromFloat(o.CostUSD)
	if err != nil {
		if !errors.Is(err, errMoneyRange) || !(o.CostUSD > 0) {
			return fmt.Errorf("settle %s: %w", decisionID, &action.FieldError{Field: "cost_usd", Problem: "must be a non-negative number of dollars"})
		}
		cost = maxCallCostMicros
	}
	// What a call used is counted up to the bounds of one call, whoever
	// reported it (an upstream may report anything): the budget then holds
	// at its limit instead of wrapping.
	in, out := min(o.InputTokens, MaxCallTokens), min(o.OutputTokens, MaxCallTokens)
	total := min(o.Tokens, MaxCallTokens)
	if total <= 0 {
		total = min(in+out, MaxCallTokens)
	}
	actual := Amounts{CostMicros: min(cost, maxCallCostMicros), Tokens: total, Calls: 1}
	if in > 0 || out > 0 {
		actual.InputTokens, actual.OutputTokens = in, out
	} else {
		actual.InputTokens, actual.OutputTokens = total, total
	}
	// Whose spend it is comes from the audit log, read before the write
	// transaction. A decision the log does not hold (a library engine
	// without one) is spent by nobody in particular.
	party, _, err := b.st.DecisionParty(ctx, decisionID)
	if err != nil {
		return fmt.Errorf("settle %s: %w", decisionID, err)
	}
	if err := b.finish(ctx, decisionID, &actual, &spent{party: party, amount: spendOf(&o, cost)}); err != nil {
		return fmt.Errorf("settle %s: %w", decisionID, err)
	}
	return nil
}

// Release gives back a decision's reservation without counting anything, for
// an action a later stage of the pipeline did not allow. Releasing an
// unknown or already finished decision is a no-op.
func (b *Budgets) Release(ctx context.Context, decisionID string) error {
	if err := b.finish(ctx, decisionID, nil, nil); err != nil {
		return fmt.Errorf("release %s: %w", decisionID, err)
	}
	return nil
}

// finish gives back a decision's reservation, counts actual against its
// budgets, and adds sp to its party's spend, in one transaction.
func (b *Budgets) finish(ctx context.Context, decisionID string, actual *Amounts, sp *spent) error {
	budgets := len(b.idx.Load().all) > 0
	if !budgets && sp == nil {
		return nil // no budget exists to count against, no spend to keep
	}
	return b.do(ctx, func(ctx context.Context, tx Tx, now time.Time) error {
		if sp != nil {
			if err := tx.AddSpend(ctx, sp.party, now.UTC().Format(time.DateOnly), sp.amount); err != nil {
				return fmt.Errorf("spend: %w", err)
			}
		}
		if !budgets {
			return nil
		}
		r, ok, err := tx.Reservation(ctx, decisionID)
		if err != nil || !ok {
			return err
		}
		for _, h := range r.Holds {
			var give Amounts
			if !r.Expired {
				give = h.Amount.neg()
			}
			var spent Amounts
			if actual != nil {
				spent = *actual
			}
			if spent.IsZero() && give.IsZero() {
				continue
			}
			if err := tx.AddCounter(ctx, h.Budget, h.Key, spent, give, false, now); err != nil {
				return fmt.Errorf("budget %s: %w", h.Budget, err)
			}
		}
		return tx.DeleteReservation(ctx, decisionID)
	})
}

// expireDue gives back the holds of every reservation past its TTL.
func expireDue(ctx context.Context, tx Tx, now time.Time) error {
	const batch = 256
	for {
		due, err := tx.DueReservations(ctx, now, batch)
		if err != nil {
			return fmt.Errorf("expire reservations: %w", err)
		}
		for _, r := range due {
			for _, h := range r.Holds {
				if err := tx.AddCounter(ctx, h.Budget, h.Key, Amounts{}, h.Amount.neg(), false, now); err != nil {
					return fmt.Errorf("expire reservation %s: %w", r.DecisionID, err)
				}
			}
			if err := tx.MarkExpired(ctx, r.DecisionID); err != nil {
				return fmt.Errorf("expire reservation %s: %w", r.DecisionID, err)
			}
		}
		if len(due) < batch {
			return nil
		}
	}
}

// Expire gives back the reservations past their TTL and forgets those
// expired long ago. Reserve does the first on its own for the budgets it
// checks; Run calls Expire periodically so that usage reports stay current.
func (b *Budgets) Expire(ctx context.Context) error {
	now := b.now()
	return b.st.UpdateBudgets(ctx, func(tx Tx) error {
		if err := expireDue(ctx, tx, now); err != nil {
			return err
		}
		if _, err := tx.PurgeExpired(ctx, now.Add(-expiredRetention)); err != nil {
			return fmt.Errorf("purge reservations: %w", err)
		}
		return nil
	})
}

// Run expires reservations every quarter of the TTL until ctx ends. A
// failure (the store unreachable for a while) is logged and retried at the
// next tick: until then expired reservations hold their amounts, which
// errs on the side of denying.
func (b *Budgets) Run(ctx context.Context) error {
	return b.run(ctx, b.ttl/4)
}

func (b *Budgets) run(ctx context.Context, every time.Duration) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := b.Expire(ctx); err != nil && ctx.Err() == nil {
				b.log.Error("budget reservations not expired; retrying", "err", err)
			}
		}
	}
}

// Usage is what one budget has counted in the period in force.
type Usage struct {
	ID     string `json:"id"`
	Scope  Scope  `json:"scope"`
	Period string `json:"period"`
	// PeriodStart and PeriodEnd bound a calendar period or, for a rolling
	// window, the buckets counted; absent for session and none.
	PeriodStart time.Time `json:"period_start,omitzero"`
	PeriodEnd   time.Time `json:"period_end,omitzero"`
	// Agent and Session are set for a per-session budget: the session's
	// agent and id.
	Agent    string  `json:"agent,omitempty"`
	Session  string  `json:"session,omitempty"`
	Spent    Amounts `json:"spent"`
	Reserved Amounts `json:"reserved"`
	Limits   Amounts `json:"limits"`
	// Fraction is the fullest limited dimension, spent plus reserved over
	// its limit; 0 when nothing is limited.
	Fraction float64 `json:"fraction"`
}

// State is what a policy sees of a budget that applies to its action.
type State = Usage

// Usage reports the budgets that apply to filter (every budget when filter
// is empty) in the period in force now. A per-session budget is reported
// once per session of the filter's agent and session (every one when the
// filter names neither), most recent first (at most 100).
func (b *Budgets) Usage(ctx context.Context, filter Scope) ([]Usage, error) {
	if err := b.Expire(ctx); err != nil {
		return nil, fmt.Errorf("usage: %w", err)
	}
	return b.UsageAt(ctx, filter, b.now())
}

// UsageAt is Usage for the periods in force at t, such as last month's.
// It does not expire reservations first.
func (b *Budgets) UsageAt(ctx context.Context, filter Scope, t time.Time) ([]Usage, error) {
	ix := b.idx.Load()
	cs := ix.all
	if !filter.IsZero() {
		cs = ix.applicable(filter)
	}
	var out []Usage
	err := b.st.ViewBudgets(ctx, func(tx Tx) error {
		out = out[:0]
		for _, c := range cs {
			if c.period.kind == periodSession && (filter.Session == "" || filter.Agent == "") {
				prefix := "s:"
				if filter.Agent != "" {
					prefix = sessionKey(filter.Agent, "")
				}
				ctrs, err := tx.CountersWithPrefix(ctx, c.cfg.ID, prefix, 100)
				if err != nil {
					return fmt.Errorf("budget %s: %w", c.cfg.ID, err)
				}
				for _, ctr := range ctrs {
					agent, session, ok := parseSessionKey(ctr.Key)
					if !ok || (filter.Session != "" && session != filter.Session) {
						continue
					}
					u := usageOf(c, span{}, []Counter{ctr})
					u.Agent, u.Session = agent, session
					out = append(out, u)
				}
				continue
			}
			u, err := usageIn(ctx, tx, c, t, filter.Agent, filter.Session)
			if err != nil {
				return err
			}
			out = append(out, u)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("usage: %w", err)
	}
	return out, nil
}

// State reports every budget that applies to a, for policies to read. It
// reads a snapshot and reserves nothing; with no applicable budget it does
// not touch the store.
func (b *Budgets) State(ctx context.Context, a *action.Action) ([]State, error) {
	apps := b.idx.Load().applicable(ScopeOf(a))
	if len(apps) == 0 {
		return nil, nil
	}
	now := b.now()
	out := make([]State, 0, len(apps))
	err := b.st.ViewBudgets(ctx, func(tx Tx) error {
		out = out[:0]
		for _, c := range apps {
			u, err := usageIn(ctx, tx, c, now, a.Agent.ID, a.Session)
			if err != nil {
				return err
			}
			out = append(out, u)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("budget state: %w", err)
	}
	return out, nil
}

func usageIn(ctx context.Context, tx Tx, c *compiled, t time.Time, agent, session string) (Usage, error) {
	sp := c.period.at(t, agent, session)
	ctrs, err := tx.Counters(ctx, c.cfg.ID, sp.keys)
	if err != nil {
		return Usage{}, fmt.Errorf("budget %s: %w", c.cfg.ID, err)
	}
	u := usageOf(c, sp, ctrs)
	if c.period.kind == periodSession {
		u.Agent, u.Session = agent, session
	}
	return u, nil
}

func usageOf(c *compiled, sp span, ctrs []Counter) Usage {
	u := Usage{
		ID: c.cfg.ID, Scope: c.cfg.Scope, Period: c.cfg.Period,
		PeriodStart: sp.start, PeriodEnd: sp.end, Limits: c.cfg.Limits,
	}
	for _, ctr := range ctrs {
		u.Spent = u.Spent.add(ctr.Spent)
		u.Reserved = u.Reserved.add(ctr.Reserved)
	}
	u.Fraction = fraction(u.Spent.add(u.Reserved), u.Limits)
	return u
}
