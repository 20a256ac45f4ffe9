package sre

import (
	"context"
	"log/slog"
	"slices"
	"sync/atomic"
	"time"

	"github.com/agentgov/agentgov/action"
)

// Auditor appends to the audit log; *audit.Log is one.
type Auditor interface {
	Append(ctx context.Context, kind string, record any) (uint64, error)
}

// Event is a change an operator should hear about: a circuit that opened
// or closed, an SLO that began or stopped paging.
type Event struct {
	// Kind is "breaker_open", "breaker_half_open", "breaker_closed",
	// "slo_burn" (a page alert began firing) or "slo_recovered".
	Kind    string         `json:"kind"`
	At      time.Time      `json:"at"`
	Subject string         `json:"subject"` // the breaker's "ID KEY", or the SLO's id
	Message string         `json:"message"`
	Fields  map[string]any `json:"fields,omitempty"`
}

// Options are the monitor's collaborators; every one is optional.
type Options struct {
	Clock func() time.Time
	// Audit receives every change of a circuit's state and of an SLO's
	// paging.
	Audit Auditor
	// Notify is told of every Event, after it is audited.
	Notify func(context.Context, Event)
	// Incidents, when set, are opened by circuits that open and SLOs that
	// page.
	Incidents *Incidents
	Logger    *slog.Logger
	// EvaluateEvery is how often Run checks the SLOs' page alerts;
	// EvaluateEvery (the constant) when 0.
	EvaluateEvery time.Duration
}

// Monitor keeps the SLIs, SLOs and circuit breakers of a configuration.
// The engine tells it of every decision and outcome (it implements
// govern.Reliability); the server shows its state; Run writes the changes
// it sees to the audit log.
type Monitor struct {
	cfg      Config
	clock    func() time.Time
	audit    Auditor
	notify   func(context.Context, Event)
	inc      *Incidents
	log      *slog.Logger
	every    time.Duration // how often Run evaluates the SLOs
	slos     []*slo
	outcome  []*slo // the SLOs counted on outcomes (success, latency)
	decision []*slo // the SLOs counted on decisions (policy_violation)
	breakers []*breakerSet

	pending pendingTable
	lent    atomic.Int64 // probes lent and not yet settled or given back

	events chan transition
	lost   atomic.Uint64 // transitions not audited: the queue was full
}

// pending is what an allowed call's outcome will count for: a bit per
// outcome SLO, and its holds on circuits. A value, not a pointer, so that
// awaiting an outcome allocates nothing for the usual few circuits.
type pending struct {
	slos   uint64 // bit i: m.outcome[i]
	n      uint8  // leases used in inline
	inline [inlineLeases]lease
	more   []lease
}

const inlineLeases = 2

func (p *pending) add(l lease) {
	if int(p.n) < inlineLeases {
		p.inline[p.n] = l
		p.n++
		return
	}
	p.more = append(p.more, l)
}

func (p *pending) len() int { return int(p.n) + len(p.more) }

func (p *pending) at(i int) *lease {
	if i < inlineLeases {
		return &p.inline[i]
	}
	return &p.more[i-inlineLeases]
}

// lease is a call's hold on a circuit: probe is the half-open period that
// lent it a probe, or 0.
type lease struct {
	c     *circuit
	probe uint64
}

// New builds the monitor of cfg, which must be filled and valid.
func New(cfg Config, opt Options) *Monitor {
	m := &Monitor{
		cfg: cfg, clock: opt.Clock, audit: opt.Audit, notify: opt.Notify, inc: opt.Incidents, log: opt.Logger,
		events: make(chan transition, 4096), every: opt.EvaluateEvery,
	}
	if m.every <= 0 {
		m.every = EvaluateEvery
	}
	if m.clock == nil {
		m.clock = time.Now
	}
	if m.log == nil {
		m.log = slog.Default()
	}
	for _, c := range cfg.SLOs {
		s := newSLO(c)
		m.slos = append(m.slos, s)
		if c.SLI == SLIPolicyViolation {
			m.decision = append(m.decision, s)
		} else {
			m.outcome = append(m.outcome, s)
		}
	}
	for i := range cfg.Breakers {
		m.breakers = append(m.breakers, &breakerSet{rule: &m.cfg.Breakers[i], match: compile(m.cfg.Breakers[i].Match), m: map[circuitKey]*circuit{}})
	}
	return m
}

// Enabled reports whether cfg configures anything to monitor.
func (c *Config) Enabled() bool { return len(c.SLOs)+len(c.Breakers) > 0 }

// guarded says whether c is a call to an upstream that breakers guard and
// outcomes settle: a tool or model call about to be made.
func guarded(c *action.Call) bool {
	return c.Point == action.PreToolCall || c.Point == action.PreModelCall
}

func stateRank(s State) int {
	switch s {
	case Open:
		return 2
	case HalfOpen:
		return 1
	}
	return 0
}

// Admit is asked before policy: it refuses a call to an upstream whose
// circuit is open (or half-open with its probes out), naming the circuit,
// and otherwise returns the worst state of the circuits that guard it, for
// policies (`breaker.state`).
func (m *Monitor) Admit(id action.ID, call action.Call, now time.Time) (string, string) {
	if len(m.breakers) == 0 || !guarded(&call) {
		return string(Closed), ""
	}
	worst := Closed
	var probes pending
	for _, b := range m.breakers {
		k, ok := b.match.key(&call)
		if !ok {
			continue
		}
		c := b.circuit(k)
		if c == nil {
			continue
		}
		st, refusal, probe, tr := c.admit(now)
		if tr != nil {
			m.queue(*tr)
		}
		if refusal != "" {
			m.giveBack(&probes)
			if m.inc != nil {
				m.inc.Relate("breaker", c.rule.ID+" "+c.key, Entry{At: now, Kind: "decision", Decision: id.String(), Message: "refused: the circuit is " + string(st)})
			}
			return string(st), refusal
		}
		if probe != 0 {
			probes.add(lease{c, probe})
			m.lent.Add(1)
		}
		if stateRank(st) > stateRank(worst) {
			worst = st
		}
	}
	if probes.n > 0 {
		m.put(id, probes)
	}
	return string(worst), ""
}

// Decided is told of every decision once it is final: it counts the
// decision SLIs, and remembers what an allowed call's outcome will count
// for. A probe lent to a call that was then not allowed is given back.
func (m *Monitor) Decided(id action.ID, call action.Call, effect action.Effect, now time.Time) {
	for _, s := range m.decision {
		if s.match.covers(&call) {
			s.record(now, id, effect != action.Deny)
		}
	}
	allowed := effect == action.Allow || effect == action.Audit
	if !allowed || !guarded(&call) {
		if m.lent.Load() > 0 {
			if p, ok := m.pending.take(id); ok {
				m.giveBack(&p)
			}
		}
		return
	}
	var p pending
	any := false
	for i, s := range m.outcome {
		if s.match.covers(&call) {
			p.slos |= 1 << i
			any = true
		}
	}
	for _, b := range m.breakers {
		k, ok := b.match.key(&call)
		if !ok {
			continue
		}
		if c := b.circuit(k); c != nil {
			p.add(lease{c: c})
			any = true
		}
	}
	if !any {
		return
	}
	if m.lent.Load() > 0 {
		if prev, ok := m.pending.take(id); ok {
			// Admit lent this call probes: keep them with the leases.
			for i := range prev.len() {
				for j := range p.len() {
					if l, q := prev.at(i), p.at(j); q.c == l.c {
						q.probe = l.probe
					}
				}
			}
		}
	}
	m.put(id, p)
}

// put remembers p under id; a probe of the call it forgot is given back.
func (m *Monitor) put(id action.ID, p pending) {
	if old, ok := m.pending.put(id, p); ok {
		m.giveBack(&old)
	}
}

// giveBack returns the probes p was lent.
func (m *Monitor) giveBack(p *pending) {
	for i := range p.len() {
		if l := p.at(i); l.probe != 0 {
			l.c.unlend(l.probe)
			m.lent.Add(-1)
		}
	}
}

// Outcome counts what happened to an allowed call: its SLIs, and its
// circuits, which may open or close.
func (m *Monitor) Outcome(id action.ID, o *action.Outcome, now time.Time) {
	p, ok := m.pending.take(id)
	if !ok {
		return
	}
	failed := o.Status != "ok"
	for i, s := range m.outcome {
		if p.slos&(1<<i) == 0 {
			continue
		}
		good := !failed
		if s.cfg.SLI == SLILatency {
			good = o.LatencyMS <= s.cfg.LatencyMS
		}
		s.record(now, id, good)
	}
	for i := range p.len() {
		l := p.at(i)
		if l.probe != 0 {
			m.lent.Add(-1)
		}
		if tr := l.c.outcome(now, id, o, l.probe); tr != nil {
			m.queue(*tr)
		}
	}
}

// queue hands a transition to Run; the decision path never waits for it.
func (m *Monitor) queue(tr transition) {
	select {
	case m.events <- tr:
	default:
		m.lost.Add(1)
	}
}

// SLOs is every SLO's state now.
func (m *Monitor) SLOs() []Status {
	now := m.clock()
	out := make([]Status, 0, len(m.slos))
	for _, s := range m.slos {
		out = append(out, s.status(now))
	}
	return out
}

// Breakers is every circuit's state now, by breaker and key.
func (m *Monitor) Breakers() []BreakerStatus {
	now := m.clock()
	var out []BreakerStatus
	for _, b := range m.breakers {
		b.mu.RLock()
		cs := make([]*circuit, 0, len(b.m))
		for _, c := range b.m {
			cs = append(cs, c)
		}
		b.mu.RUnlock()
		slices.SortFunc(cs, func(x, y *circuit) int {
			switch {
			case x.key < y.key:
				return -1
			case x.key > y.key:
				return 1
			}
			return 0
		})
		for _, c := range cs {
			out = append(out, c.status(now))
		}
	}
	return out
}

// Config is the configuration the monitor keeps.
func (m *Monitor) Config() Config { return m.cfg }
