package sre

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/agentgov/agentgov/action"
)

// State is a circuit's state.
type State string

// The states of a circuit.
const (
	Closed   State = "closed"
	Open     State = "open"
	HalfOpen State = "half_open"
)

const (
	stClosed int32 = iota
	stOpen
	stHalfOpen
)

var stateNames = [...]State{Closed, Open, HalfOpen}

// breakerBuckets is how many buckets a circuit's window is counted in.
const breakerBuckets = 10

// MaxCircuits bounds the circuits of one breaker rule: an agent naming
// tool after tool cannot grow memory without bound. Past it, a new tool,
// server or model has no circuit (calls pass; the breaker is a guard for
// upstreams, not a policy).
const MaxCircuits = 10000

// circuitKey names what a circuit guards without building a string on the
// decision path: kind 't' a tool (a, b = server, name), 's' a server, 'm' a
// model.
type circuitKey struct {
	kind byte
	a, b string
}

func (k circuitKey) String() string {
	switch k.kind {
	case 't':
		if k.a == "" {
			return "tool:" + k.b
		}
		return "tool:" + k.a + "/" + k.b
	case 's':
		return "server:" + k.a
	}
	return "model:" + k.a
}

// circuit is one breaker for one key.
type circuit struct {
	rule *Breaker
	k    circuitKey
	key  string

	state atomic.Int32 // read without the lock on the decision path

	mu       sync.Mutex
	window   *ring
	openedAt time.Time
	// gen counts half-open periods: an outcome counts as a probe only for
	// the period that let it through.
	gen      uint64
	probes   int       // calls let through in this half-open period
	probeOK  int       // of which succeeded
	lastLent time.Time // when the last probe was let through
	trips    uint64
	// failed are the last failed calls, for the timeline of the incident
	// their circuit opens.
	failed  [recentFailures]Entry
	nFailed int
}

const recentFailures = 8

func newCircuit(rule *Breaker, k circuitKey) *circuit {
	return &circuit{rule: rule, k: k, key: k.String(), window: newRing(time.Duration(rule.Window)/breakerBuckets, breakerBuckets)}
}

// transition is a change of a circuit's state, for the audit log, the
// incidents and the alerts.
type transition struct {
	c        *circuit
	from, to State
	at       time.Time
	calls    uint64
	failures uint64
	// recent are the last failed calls, oldest first, when it opens.
	recent []Entry
}

// admit says whether a call may go to the circuit's upstream now. A
// half-open circuit lends its probes; probe is the period's generation
// (0 when the call is not a probe).
func (c *circuit) admit(now time.Time) (st State, refusal string, probe uint64, tr *transition) {
	if c.state.Load() == stClosed {
		return Closed, "", 0, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	openFor := time.Duration(c.rule.OpenFor)
	switch c.state.Load() {
	case stClosed:
		return Closed, "", 0, nil
	case stOpen:
		if now.Before(c.openedAt.Add(openFor)) {
			return Open, fmt.Sprintf("circuit breaker %s is open for %s since %s: its upstream failed too often; calls fail fast until %s",
				c.rule.ID, c.key, c.openedAt.UTC().Format(time.RFC3339), c.openedAt.Add(openFor).UTC().Format(time.RFC3339)), 0, nil
		}
		c.state.Store(stHalfOpen)
		c.gen++
		c.probes, c.probeOK = 0, 0
		tr = &transition{c: c, from: Open, to: HalfOpen, at: now}
	}
	// Half-open. A probe whose outcome never comes (the agent went away)
	// would hold its slot for ever: after another open_for, the slots are
	// lent again.
	if c.probes >= c.rule.HalfOpenProbes && now.Sub(c.lastLent) >= openFor {
		c.probes, c.probeOK = 0, 0
		c.gen++
	}
	if c.probes >= c.rule.HalfOpenProbes {
		return HalfOpen, fmt.Sprintf("circuit breaker %s is half-open for %s: its %d probe call(s) are in flight; other calls fail fast until they succeed",
			c.rule.ID, c.key, c.rule.HalfOpenProbes), 0, tr
	}
	c.probes++
	c.lastLent = now
	return HalfOpen, "", c.gen, tr
}

// unlend gives back a probe slot lent to a call that was then not made
// (a later stage denied it).
func (c *circuit) unlend(gen uint64) {
	c.mu.Lock()
	if c.state.Load() == stHalfOpen && c.gen == gen && c.probes > 0 {
		c.probes--
	}
	c.mu.Unlock()
}

// outcome counts one call's result; probe is as admit returned it.
func (c *circuit) outcome(now time.Time, id action.ID, o *action.Outcome, probe uint64) *transition {
	failed := o.Status != "ok"
	c.mu.Lock()
	defer c.mu.Unlock()
	if failed {
		msg := "failed"
		if o.Error != "" {
			msg += ": " + truncate(o.Error, 200)
		}
		c.failed[c.nFailed%recentFailures] = Entry{At: now, Kind: "outcome", Decision: id.String(), Message: msg}
		c.nFailed++
	}
	switch c.state.Load() {
	case stClosed:
		if failed {
			c.window.add(now, 0, 1)
		} else {
			c.window.add(now, 1, 0)
		}
		in := c.window.sum(now, time.Duration(c.rule.Window))
		if in.total() >= uint64(c.rule.MinCalls) && float64(in.bad) >= c.rule.FailureRatio*float64(in.total()) {
			c.state.Store(stOpen)
			c.openedAt = now
			c.trips++
			return &transition{c: c, from: Closed, to: Open, at: now, calls: in.total(), failures: in.bad, recent: c.recent()}
		}
	case stHalfOpen:
		if probe == 0 || probe != c.gen {
			return nil // a call let through before the circuit opened
		}
		if failed {
			c.state.Store(stOpen)
			c.openedAt = now
			c.trips++
			r := c.recent()
			return &transition{c: c, from: HalfOpen, to: Open, at: now, calls: uint64(c.probeOK + 1), failures: 1, recent: r[len(r)-1:]}
		}
		c.probeOK++
		if c.probeOK >= c.rule.HalfOpenProbes {
			c.state.Store(stClosed)
			c.window.reset()
			return &transition{c: c, from: HalfOpen, to: Closed, at: now, calls: uint64(c.probeOK)}
		}
	}
	// Open: the result of a call let through before it opened changes
	// nothing.
	return nil
}

// recent is the last failed calls, oldest first. c.mu is held.
func (c *circuit) recent() []Entry {
	out := make([]Entry, 0, recentFailures)
	for i := c.nFailed - recentFailures; i < c.nFailed; i++ {
		if i >= 0 {
			out = append(out, c.failed[i%recentFailures])
		}
	}
	return out
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// BreakerStatus is one circuit as GET /v1/breakers shows it.
type BreakerStatus struct {
	ID       string     `json:"id"`
	Key      string     `json:"key"`
	State    State      `json:"state"`
	Calls    uint64     `json:"calls"`
	Failures uint64     `json:"failures"`
	OpenedAt *time.Time `json:"opened_at,omitempty"`
	Trips    uint64     `json:"trips"`
}

func (c *circuit) status(now time.Time) BreakerStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := stateNames[c.state.Load()]
	if st == Open && !now.Before(c.openedAt.Add(time.Duration(c.rule.OpenFor))) {
		st = HalfOpen // the next call will be a probe
	}
	in := c.window.sum(now, time.Duration(c.rule.Window))
	out := BreakerStatus{ID: c.rule.ID, Key: c.key, State: st, Calls: in.total(), Failures: in.bad, Trips: c.trips}
	if st != Closed {
		t := c.openedAt.UTC()
		out.OpenedAt = &t
	}
	return out
}

// breakerSet is one breaker rule's circuits.
type breakerSet struct {
	rule  *Breaker
	match matcher
	// last is the circuit used last: calls to one upstream in a row find
	// it without hashing their key.
	last atomic.Pointer[circuit]
	mu   sync.RWMutex
	m    map[circuitKey]*circuit
}

// circuit returns the circuit for k, made on first use.
func (b *breakerSet) circuit(k circuitKey) *circuit {
	if c := b.last.Load(); c != nil && c.k == k {
		return c
	}
	c := b.lookup(k)
	if c != nil {
		b.last.Store(c)
	}
	return c
}

func (b *breakerSet) lookup(k circuitKey) *circuit {
	b.mu.RLock()
	c := b.m[k]
	b.mu.RUnlock()
	if c != nil {
		return c
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if c = b.m[k]; c == nil {
		if len(b.m) >= MaxCircuits {
			return nil
		}
		c = newCircuit(b.rule, k)
		b.m[k] = c
	}
	return c
}
