package trust

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/policy"
)

// ChangeFunc makes a change of state the audit log must hold: apply calls
// record with the entry before it writes anything (govern.Engine.Change).
type ChangeFunc func(ctx context.Context, kind string, apply func(ctx context.Context, record func(context.Context, any) error) error) error

// KillFunc engages the kill switch on an agent, for reason.
type KillFunc func(ctx context.Context, agent, reason string) error

// Options are what a Keeper is built from.
type Options struct {
	Store Store
	// Config and Rings must be filled and validated.
	Config Config
	Rings  Rings
	Clock  func() time.Time
	Logger *slog.Logger
}

// Keeper keeps the scores of one process: it queues what it observes,
// applies it in batches through the store, and answers the decision path
// from an immutable snapshot.
type Keeper struct {
	st       Store
	cfg      Config
	rings    Rings
	profiles *profileArray // rings.Profiles by ring
	clock    func() time.Time
	log      *slog.Logger

	// change and kill are bound once the engine exists (Bind).
	change ChangeFunc
	kill   KillFunc
	// dropped hears of scores that fell into a lower tier (an alert).
	dropped func(ctx context.Context, d Drop)
	// ringOf is the registry's ring of an agent, when there is a registry.
	ringOf atomic.Pointer[func(agentID string) (int, bool)]

	initial *entry
	snap    atomic.Pointer[snapshot]
	pubMu   sync.Mutex // serialises publishing snapshots

	mu      sync.Mutex // guards pending
	pending map[string]*pending
	flushMu sync.Mutex // one flush at a time
	wake    chan struct{}
}

type entry struct {
	score int
	tier  Tier
	view  *policy.Trust
}

type snapshot struct {
	scores map[string]*entry
	elev   map[string][]Elevation // not ended, by agent
}

type pending struct {
	delta  int
	reset  bool
	clean  int
	events []Event
	more   int // events beyond maxPendingEvents, counted in delta only
}

// maxPendingEvents bounds the events of one agent listed per batch: an
// agent denied in a tight loop moves its score by every deny, but its
// audit entry lists the first ones and a count.
const maxPendingEvents = 32

// New builds a Keeper and loads the stored scores.
func New(ctx context.Context, opt Options) (*Keeper, error) {
	if opt.Store == nil {
		return nil, errors.New("trust: a store is required")
	}
	k := &Keeper{st: opt.Store, cfg: opt.Config, rings: opt.Rings, clock: opt.Clock, log: opt.Logger,
		pending: map[string]*pending{}, wake: make(chan struct{}, 1)}
	if k.clock == nil {
		k.clock = time.Now
	}
	if k.log == nil {
		k.log = slog.Default()
	}
	k.change = func(ctx context.Context, kind string, apply func(context.Context, func(context.Context, any) error) error) error {
		return apply(ctx, func(context.Context, any) error { return nil })
	}
	k.initial = k.entryOf(k.cfg.Initial)
	k.profiles = k.rings.array()
	if err := k.Reload(ctx); err != nil {
		return nil, err
	}
	return k, nil
}

// Bind gives the Keeper the audited change and the kill switch of the
// engine it serves; call it before Run.
func (k *Keeper) Bind(change ChangeFunc, kill KillFunc) {
	k.change, k.kill = change, kill
}

// Drop is a score that fell into a lower tier.
type Drop struct {
	Agent              string
	FromScore, ToScore int
	FromTier, ToTier   Tier
}

// OnDrop tells f of every score that falls into a lower tier, after it is
// recorded; call it before Run.
func (k *Keeper) OnDrop(f func(ctx context.Context, d Drop)) { k.dropped = f }

// SetRingSource sets where an agent's ring comes from before the rings:
// agents and default keys are consulted (the agent registry).
func (k *Keeper) SetRingSource(f func(agentID string) (int, bool)) { k.ringOf.Store(&f) }

// Config is the trust configuration in force.
func (k *Keeper) Config() Config { return k.cfg }

// Rings is the rings configuration in force.
func (k *Keeper) Rings() Rings { return k.rings }

func (k *Keeper) entryOf(score int) *entry {
	t := k.cfg.TierOf(score)
	return &entry{score: score, tier: t, view: policy.NewTrust(score, string(t))}
}

// Reload replaces the snapshot with what the store holds: at start, and on
// a replica when another changed a score or an elevation.
func (k *Keeper) Reload(ctx context.Context) error {
	scores, err := k.st.TrustScores(ctx)
	if err != nil {
		return fmt.Errorf("load trust scores: %w", err)
	}
	elevs, err := k.st.Elevations(ctx)
	if err != nil {
		return fmt.Errorf("load elevations: %w", err)
	}
	s := &snapshot{scores: make(map[string]*entry, len(scores)), elev: map[string][]Elevation{}}
	for _, sc := range scores {
		s.scores[sc.Agent] = k.entryOf(sc.Score)
	}
	for _, e := range elevs {
		s.elev[e.Agent] = append(s.elev[e.Agent], e)
	}
	k.pubMu.Lock()
	k.snap.Store(s)
	k.pubMu.Unlock()
	return nil
}

func (k *Keeper) lookup(agentID string) *entry {
	if e, ok := k.snap.Load().scores[agentID]; ok {
		return e
	}
	return k.initial
}

// View is what policies see as `trust` for the agent: from memory, with
// no allocation.
func (k *Keeper) View(agentID string) *policy.Trust { return k.lookup(agentID).view }

// Score is the agent's score and tier.
func (k *Keeper) Score(agentID string) (int, Tier) {
	e := k.lookup(agentID)
	return e.score, e.tier
}

// RingState is the ring an agent holds and why.
type RingState struct {
	// Base is the ring assigned to the agent (registry or configuration).
	Base int `json:"base"`
	// Ring is the ring it holds now: Base demoted for its tier, or an
	// elevation.
	Ring int `json:"ring"`
	// Demoted is set when the tier took the agent below Base.
	Demoted bool `json:"demoted,omitempty"`
	// Elevation is the elevation it holds, if any.
	Elevation *Elevation `json:"elevation,omitempty"`
}

// RingOf is the agent's ring at now. With rings off it is ring 0 of
// nothing: callers check Rings().On().
func (k *Keeper) RingOf(agentID string, now time.Time) RingState {
	if !k.rings.On() {
		return RingState{}
	}
	e := k.lookup(agentID)
	return k.ringAt(agentID, e.tier, k.snap.Load().elev[agentID], now)
}

func (k *Keeper) ringAt(agentID string, tier Tier, elevs []Elevation, now time.Time) RingState {
	base := -1
	if f := k.ringOf.Load(); f != nil {
		if r, ok := (*f)(agentID); ok && r >= 0 && r < NumRings {
			base = r
		}
	}
	if base < 0 {
		base = k.rings.baseRing(agentID)
	}
	rs := RingState{Base: base, Ring: k.profiles.demote(base, tier)}
	rs.Demoted = rs.Ring != base
	for i := range elevs {
		el := &elevs[i]
		if now.Before(el.Until) && tier.Rank() >= el.Floor.Rank() && el.Ring < rs.Ring {
			rs.Ring = el.Ring
			cp := *el
			rs.Elevation = &cp
		}
	}
	return rs
}

// Target is what a ring check reads of an action, passed by value so that
// the action itself stays where the caller keeps it.
type Target struct {
	Agent       string
	Point       action.Point
	Server      string
	Tool        string
	Destination string
	Model       string
}

// TargetOf is what a ring check reads of a.
func TargetOf(a *action.Action) Target {
	return Target{Agent: a.Agent.ID, Point: a.PointOrDefault(), Server: a.Tool.Server, Tool: a.Tool.Name, Destination: a.Destination, Model: a.Model}
}

// Admit checks an action against its agent's ring: reason says which
// ring refused it and why.
func (k *Keeper) Admit(a Target, now time.Time) (reason string, ok bool) {
	if !k.rings.On() {
		return "", true
	}
	rs := k.RingOf(a.Agent, now)
	why := k.profiles[rs.Ring].outside(rs.Ring, &a)
	if why == "" {
		return "", true
	}
	holds := fmt.Sprintf("agent %s holds ring %d", a.Agent, rs.Ring)
	if rs.Demoted && rs.Elevation == nil {
		_, tier := k.Score(a.Agent)
		holds += fmt.Sprintf(" (demoted from ring %d: its trust tier %s is below ring %d's min_tier %s)", rs.Base, tier, rs.Base, k.profiles[rs.Base].MinTier)
	}
	return "ring: " + holds + ": " + why, false
}

// Signal is something the engine observed of an agent.
type Signal struct {
	Agent    string
	Kind     string // one of the Kind constants (not streak or decay)
	Severity action.Severity
	Decision string
	Detail   string
	// Anomaly is the kind of a KindAnomaly signal: rate_z, new_tool or
	// entropy.
	Anomaly string
}

// weight is the points of a signal.
func (k *Keeper) weight(s Signal) int {
	w := &k.cfg.Events
	switch s.Kind {
	case KindDeny:
		switch s.Severity {
		case action.SeverityLow:
			return *w.Deny.Low
		case action.SeverityMedium:
			return *w.Deny.Medium
		case action.SeverityHigh:
			return *w.Deny.High
		case action.SeverityCritical:
			return *w.Deny.Critical
		}
		return *w.Deny.Unrated
	case KindFlagged:
		return *w.Flagged
	case KindRingDenied:
		return *w.RingDenied
	case KindApprovalDenied:
		return *w.ApprovalDenied
	case KindOutcomeError:
		return *w.OutcomeError
	case KindOutcomeOK:
		return *w.OutcomeOK
	case KindAnomaly:
		switch s.Anomaly {
		case "rate_z":
			return *w.Anomaly.RateZ
		case "new_tool":
			return *w.Anomaly.NewTool
		case "entropy":
			return *w.Anomaly.Entropy
		}
	case KindQuarantinedTool:
		return *w.QuarantinedTool
	}
	return 0
}

// Observe queues a signal; it is applied at the next flush, at once when
// it lowers the score. It never blocks on the store.
func (k *Keeper) Observe(s Signal) {
	if s.Agent == "" {
		return
	}
	w := k.weight(s)
	clean := s.Kind == KindOutcomeOK
	if w == 0 && !(clean && k.cfg.Streak.Bonus > 0) {
		return
	}
	k.mu.Lock()
	p := k.pending[s.Agent]
	if p == nil {
		p = &pending{}
		k.pending[s.Agent] = p
	}
	p.delta += w
	switch {
	case clean:
		// Clean outcomes are many: one event per batch says how many.
		p.clean++
	case len(p.events) < maxPendingEvents:
		p.events = append(p.events, Event{At: k.clock().UTC(), Kind: s.Kind, Delta: w, Decision: s.Decision, Detail: s.Detail})
	default:
		p.more++
	}
	if w < 0 {
		p.reset = true
	}
	k.mu.Unlock()
	if w < 0 {
		select {
		case k.wake <- struct{}{}:
		default:
		}
	}
}

// batchChange is one agent's part of a "trust" audit entry.
type batchChange struct {
	Agent  string  `json:"agent"`
	Delta  int     `json:"delta"`
	Clean  int     `json:"clean_outcomes,omitempty"`
	Events []Event `json:"events,omitempty"`
	More   int     `json:"more_events,omitempty"`
}

// tierChange is the "trust.tier" audit entry: a score that crossed into
// another tier, and the ring that goes with it.
type tierChange struct {
	Agent string    `json:"agent"`
	From  tierState `json:"from"`
	To    tierState `json:"to"`
}

type tierState struct {
	Score int  `json:"score"`
	Tier  Tier `json:"tier"`
	Ring  *int `json:"ring,omitempty"`
}

// Flush applies the queued signals: one audit entry ("trust") lists every
// agent's events, then each agent's score moves in one atomic update of
// the store. A score that changes tier gets a "trust.tier" entry (with the
// ring it now holds); one that falls below kill_below engages the kill
// switch. Signals that could not be applied stay queued.
func (k *Keeper) Flush(ctx context.Context) error {
	k.flushMu.Lock()
	defer k.flushMu.Unlock()
	k.mu.Lock()
	batch := k.pending
	k.pending = map[string]*pending{}
	k.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	now := k.clock().UTC()
	agents := slices.Sorted(maps.Keys(batch))
	rec := map[string]any{"changes": nil}
	changes := make([]batchChange, 0, len(agents))
	for _, a := range agents {
		p := batch[a]
		evs := p.events
		if p.clean > 0 {
			evs = append(evs, Event{At: now, Kind: KindOutcomeOK, Delta: p.clean * *k.cfg.Events.OutcomeOK, Detail: fmt.Sprintf("%d clean outcomes", p.clean)})
		}
		p.events = evs
		changes = append(changes, batchChange{Agent: a, Delta: p.delta, Clean: p.clean, Events: evs, More: p.more})
	}
	rec["changes"] = changes
	var moved []Moved
	applied := map[string]bool{}
	err := k.change(ctx, "trust", func(ctx context.Context, record func(context.Context, any) error) error {
		if err := record(ctx, rec); err != nil {
			return err
		}
		for _, a := range agents {
			p := batch[a]
			rise := p.clean * *k.cfg.Events.OutcomeOK
			m, err := k.st.ApplyTrust(ctx, Adjustment{
				Agent: a, Initial: k.cfg.Initial, Delta: p.delta - rise, Rise: rise,
				RiseCap: *k.cfg.MaxRisePerHour, Window: now.Truncate(time.Hour), Reset: p.reset, Clean: p.clean,
				StreakEvery: k.cfg.Streak.Every, StreakBonus: k.cfg.Streak.Bonus, Events: p.events, At: now,
			})
			if err != nil {
				return fmt.Errorf("apply trust events of agent %s: %w", a, err)
			}
			applied[a] = true
			moved = append(moved, m)
		}
		return nil
	})
	if err != nil {
		k.requeue(batch, applied)
	}
	k.settle(ctx, moved, now)
	return err
}

// requeue puts back what a failed flush did not apply.
func (k *Keeper) requeue(batch map[string]*pending, applied map[string]bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for a, p := range batch {
		if applied[a] {
			continue
		}
		if q := k.pending[a]; q != nil {
			p.delta += q.delta
			p.clean += q.clean
			p.reset = p.reset || q.reset
			p.more += q.more
			p.events = append(p.events, q.events...)
		}
		k.pending[a] = p
	}
}

// settle publishes moved scores, and records and acts on what they
// changed: tiers, rings, elevations that no longer hold, the floor.
func (k *Keeper) settle(ctx context.Context, moved []Moved, now time.Time) {
	if len(moved) == 0 {
		return
	}
	k.pubMu.Lock()
	old := k.snap.Load()
	s := &snapshot{scores: maps.Clone(old.scores), elev: old.elev}
	for _, m := range moved {
		s.scores[m.Agent] = k.entryOf(m.To)
	}
	k.snap.Store(s)
	k.pubMu.Unlock()

	for _, m := range moved {
		from, to := k.cfg.TierOf(m.From), k.cfg.TierOf(m.To)
		if from != to {
			tc := tierChange{Agent: m.Agent, From: tierState{Score: m.From, Tier: from}, To: tierState{Score: m.To, Tier: to}}
			if k.rings.On() {
				elevs := s.elev[m.Agent]
				r0, r1 := k.ringAt(m.Agent, from, elevs, now).Ring, k.ringAt(m.Agent, to, elevs, now).Ring
				tc.From.Ring, tc.To.Ring = &r0, &r1
			}
			if err := k.change(ctx, "trust.tier", func(ctx context.Context, record func(context.Context, any) error) error {
				return record(ctx, tc)
			}); err != nil {
				k.log.Error("trust tier change not recorded", "agent", m.Agent, "error", err)
			}
			if to.Rank() < from.Rank() && k.dropped != nil {
				k.dropped(ctx, Drop{Agent: m.Agent, FromScore: m.From, ToScore: m.To, FromTier: from, ToTier: to})
			}
			if to.Rank() < from.Rank() {
				for _, el := range s.elev[m.Agent] {
					if to.Rank() < el.Floor.Rank() {
						k.end(ctx, el, now, "tier_dropped")
					}
				}
			}
		}
		if k.cfg.KillBelow > 0 && m.To < k.cfg.KillBelow && m.To < m.From && k.kill != nil {
			reason := fmt.Sprintf("trust score fell to %d (from %d), below trust.kill_below %d", m.To, m.From, k.cfg.KillBelow)
			if err := k.kill(ctx, m.Agent, reason); err != nil {
				k.log.Error("trust floor: kill switch not engaged", "agent", m.Agent, "error", err)
			}
		}
	}
}

// Run applies queued signals every flush_every (at once for those that
// lower a score), ends elevations past their time, and decays scores,
// until ctx ends; then it applies what is queued one last time.
func (k *Keeper) Run(ctx context.Context) error {
	flush := time.NewTicker(k.cfg.FlushEvery)
	defer flush.Stop()
	var decay <-chan time.Time
	if k.cfg.Decay.Every > 0 && k.cfg.Decay.Step > 0 {
		t := time.NewTicker(k.cfg.Decay.Every)
		defer t.Stop()
		decay = t.C
	}
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			err := k.Flush(fctx)
			cancel()
			if err != nil {
				k.log.Error("trust events not applied at stop", "error", err)
			}
			return nil
		case <-k.wake:
			if err := k.Flush(ctx); err != nil && ctx.Err() == nil {
				k.log.Error("trust events not applied; retrying", "error", err)
			}
		case <-flush.C:
			if err := k.Flush(ctx); err != nil && ctx.Err() == nil {
				k.log.Error("trust events not applied; retrying", "error", err)
			}
			k.ExpireElevations(ctx)
		case <-decay:
			if err := k.Decay(ctx); err != nil && ctx.Err() == nil {
				k.log.Error("trust decay", "error", err)
			}
		}
	}
}

// Decay moves every score not decayed for decay.every step points toward
// the initial score, recorded as a "trust.decay" entry before it is made.
func (k *Keeper) Decay(ctx context.Context) error {
	if k.cfg.Decay.Every <= 0 || k.cfg.Decay.Step <= 0 {
		return nil
	}
	now := k.clock().UTC()
	before := now.Add(-k.cfg.Decay.Every)
	var moved []Moved
	err := k.change(ctx, "trust.decay", func(ctx context.Context, record func(context.Context, any) error) error {
		if err := record(ctx, map[string]any{"toward": k.cfg.Initial, "step": k.cfg.Decay.Step, "decayed_before": before}); err != nil {
			return err
		}
		var err error
		moved, err = k.st.DecayTrust(ctx, k.cfg.Initial, k.cfg.Decay.Step, before, now)
		return err
	})
	k.settle(ctx, moved, now)
	return err
}

// elevationRecord is a "ring.elevation" audit entry.
type elevationRecord struct {
	Event     string    `json:"event"` // request, grant, end
	Elevation Elevation `json:"elevation"`
}

// CheckElevation says why agentID may not ask for ring for ttl, or nil.
func (k *Keeper) CheckElevation(agentID string, ring int, ttl time.Duration, now time.Time) error {
	if !k.rings.On() {
		return fmt.Errorf("%w: rings are not configured", ErrRefused)
	}
	if ring < 0 || ring >= NumRings {
		return fmt.Errorf("%w: ring: want 0 to 3, got %d", ErrRefused, ring)
	}
	if ttl <= 0 || ttl > k.rings.MaxElevation {
		return fmt.Errorf("%w: ttl: want a duration up to rings.max_elevation (%v), got %v", ErrRefused, k.rings.MaxElevation, ttl)
	}
	if rs := k.RingOf(agentID, now); ring >= rs.Ring {
		return fmt.Errorf("%w: agent %s holds ring %d already; an elevation asks for a more privileged ring (lower number)", ErrRefused, agentID, rs.Ring)
	}
	return nil
}

// ErrRefused is wrapped by the error of an elevation that cannot be asked
// for.
var ErrRefused = errors.New("elevation refused")

// Grant gives the agent ring until now+ttl, on the approved ticket,
// recorded as a "ring.elevation" grant entry before it is stored. The
// floor is the agent's tier now: should it fall, the elevation ends.
func (k *Keeper) Grant(ctx context.Context, ticket, agentID string, ring int, ttl time.Duration, reason, by string) (Elevation, error) {
	if ring < 0 || ring >= NumRings || ttl <= 0 || ttl > k.rings.MaxElevation {
		return Elevation{}, fmt.Errorf("%w: ring %d for %v is out of bounds", ErrRefused, ring, ttl)
	}
	now := k.clock().UTC()
	_, tier := k.Score(agentID)
	el := Elevation{Ticket: ticket, Agent: agentID, Ring: ring, Until: now.Add(ttl), Floor: tier, Reason: reason, By: by, GrantedAt: now}
	err := k.change(ctx, "ring.elevation", func(ctx context.Context, record func(context.Context, any) error) error {
		if err := record(ctx, elevationRecord{Event: "grant", Elevation: el}); err != nil {
			return err
		}
		return k.st.PutElevation(ctx, el)
	})
	if err != nil {
		return Elevation{}, err
	}
	k.pubMu.Lock()
	old := k.snap.Load()
	s := &snapshot{scores: old.scores, elev: maps.Clone(old.elev)}
	s.elev[agentID] = append(slices.Clone(s.elev[agentID]), el)
	k.snap.Store(s)
	k.pubMu.Unlock()
	return el, nil
}

// ExpireElevations ends the elevations past their time, each recorded as
// a "ring.elevation" end entry by the replica that ends it. An elevation
// past its time holds no ring whether or not it is ended yet.
func (k *Keeper) ExpireElevations(ctx context.Context) {
	now := k.clock()
	for _, list := range k.snap.Load().elev {
		for _, el := range list {
			if !now.Before(el.Until) {
				k.end(ctx, el, now, "expired")
			}
		}
	}
}

func (k *Keeper) end(ctx context.Context, el Elevation, now time.Time, why string) {
	ended, err := k.st.EndElevation(ctx, el.Ticket, now.UTC(), why)
	if err != nil {
		k.log.Error("elevation not ended", "ticket", el.Ticket, "error", err)
		return
	}
	k.pubMu.Lock()
	old := k.snap.Load()
	s := &snapshot{scores: old.scores, elev: maps.Clone(old.elev)}
	s.elev[el.Agent] = slices.DeleteFunc(slices.Clone(s.elev[el.Agent]), func(e Elevation) bool { return e.Ticket == el.Ticket })
	if len(s.elev[el.Agent]) == 0 {
		delete(s.elev, el.Agent)
	}
	k.snap.Store(s)
	k.pubMu.Unlock()
	if !ended {
		return // another replica ended it, and recorded it
	}
	el.EndedAt, el.Ended = now.UTC(), why
	if err := k.change(ctx, "ring.elevation", func(ctx context.Context, record func(context.Context, any) error) error {
		return record(ctx, elevationRecord{Event: "end", Elevation: el})
	}); err != nil {
		k.log.Error("elevation end not recorded", "ticket", el.Ticket, "error", err)
	}
}

// Report is what GET /v1/agents/{id}/trust answers.
type Report struct {
	Agent  string     `json:"agent"`
	Score  int        `json:"score"`
	Tier   Tier       `json:"tier"`
	Streak int        `json:"streak"`
	Rings  *RingState `json:"rings,omitempty"`
	// Events are the latest events that moved the score, newest first.
	Events []Event `json:"events"`
}

// Report returns the agent's score, tier, ring and latest events.
func (k *Keeper) Report(ctx context.Context, agentID string, limit int) (Report, error) {
	e := k.lookup(agentID)
	r := Report{Agent: agentID, Score: e.score, Tier: e.tier, Events: []Event{}}
	if k.rings.On() {
		rs := k.RingOf(agentID, k.clock())
		r.Rings = &rs
	}
	evs, err := k.st.TrustEvents(ctx, agentID, limit)
	if err != nil {
		return Report{}, fmt.Errorf("trust events of %s: %w", agentID, err)
	}
	if evs != nil {
		r.Events = evs
	}
	if len(evs) > 0 {
		// The stored score may be newer than this replica's snapshot.
		r.Score = evs[0].Score
		r.Tier = k.cfg.TierOf(r.Score)
	}
	return r, nil
}

// IsElevationTicket reports whether a ticket's tool is the elevation
// request's, and its policy digest the one only elevation tickets carry.
func IsElevationTicket(tool action.Tool, policyDigest string) bool {
	return policyDigest == ElevationDigest && tool.Server == ElevationServer && tool.Name == ElevationTool
}

// The action an elevation ticket is bound to: tool agentgov/elevate, and a
// policy digest no policy set has, so that no decision's ticket can pass
// for an elevation's.
const (
	ElevationServer = "agentgov"
	ElevationTool   = "elevate"
	ElevationDigest = "ring-elevation"
)

// ElevationAction is the action an elevation ticket binds: the agent, the
// ring, the ttl and the reason.
func ElevationAction(agent action.Agent, principal action.Principal, ring int, ttl time.Duration, reason string) action.Action {
	return action.Action{
		Agent: agent, Principal: principal, Point: action.PreToolCall,
		Tool: action.Tool{Server: ElevationServer, Name: ElevationTool},
		Args: map[string]any{"ring": int64(ring), "ttl": ttl.String(), "reason": strings.TrimSpace(reason)},
	}
}
