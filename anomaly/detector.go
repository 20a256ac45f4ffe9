// Package anomaly finds what is unusual for one agent against its own
// history: a call rate far above its baseline (a z-score), a tool it has
// never been allowed to use, and a mix of tools (the Shannon entropy of
// its latest calls) outside its usual band. The engine asks it before the
// policy rules, which read its findings as `anomaly`, and acts on the
// responses configured for each kind.
//
// Everything is kept in memory, bounded per agent and in total: a restart
// forgets every baseline and every tool, and each agent warms up again.
// Observe costs one short lock and constant work, and allocates only for
// an agent or a tool seen for the first time.
package anomaly

import (
	"hash/maphash"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agentgov/agentgov/action"
)

// Reading is what the detector found for one call of an agent.
type Reading struct {
	// RateZ is the z-score of the calls counted in the current interval
	// (this one included) against the agent's baseline; 0 during warm-up.
	RateZ float64 `json:"rate_z"`
	// Count is the calls counted in the current interval; Mean and Std
	// the baseline they are compared with (Std floored at the Poisson
	// deviation of Mean, and at 1).
	Count int64   `json:"count"`
	Mean  float64 `json:"mean"`
	Std   float64 `json:"std"`
	// NewTool says the tool has never been allowed for the agent; false
	// during warm-up.
	NewTool bool `json:"new_tool"`
	// Entropy is the Shannon entropy, in bits, of the tools of the
	// agent's latest entropy_window tool calls (fewer while it has made
	// fewer).
	Entropy float64 `json:"entropy"`
	// Low and High are the agent's entropy band, once learned.
	Low  float64 `json:"entropy_low,omitempty"`
	High float64 `json:"entropy_high,omitempty"`
	// OutOfBand says the entropy of a full window is outside the band.
	OutOfBand bool `json:"entropy_out_of_band"`
	// Warm says the agent's history spans the warm-up.
	Warm bool `json:"warm"`

	// Over are the kinds found in this call; Fired those of them whose
	// episode starts with it: once per agent and interval for the rate
	// and the entropy, once per agent and tool for a new tool.
	Over  Kinds `json:"-"`
	Fired Kinds `json:"-"`
	// Ask, Flag and Isolate are the kinds whose responses apply: Ask and
	// Flag of Over (every call while the anomaly lasts), Isolate of Fired.
	Ask, Flag, Isolate Kinds `json:"-"`
	// Unknown says the tool has not been allowed for the agent yet, warm
	// or not: the engine tells Learn when it is.
	Unknown bool `json:"-"`
	// Threshold is the rate_z in force, for reasons.
	Threshold float64 `json:"-"`
}

// Counts reports whether calls at point p count toward an agent's rate
// and tools: the points where it acts (calls a tool, a model, another
// agent); the others read the agent's state without changing it.
func Counts(p action.Point) bool {
	return p == action.PreToolCall || p == action.PreModelCall || p == action.PreAgentMessage
}

// Detector keeps every agent's baselines. It is safe for concurrent use.
type Detector struct {
	cfg      Config
	interval int64 // nanoseconds
	memory   int64
	window   int
	resp     [3]struct{ ask, flag, isolate bool } // by kind bit index
	seed     maphash.Seed
	shards   []shard
	perShard int

	clog  []int64   // c·log2(c) in fixed point, for c up to the window
	log2n []float64 // log2(n) for n up to the window

	fired   [3]atomic.Uint64
	evicted atomic.Uint64
}

// clogScale is the fixed point of the window's Σ c·log2(c): integers add
// and subtract without the drift floats would gather over millions of
// calls.
const clogScale = 1 << 32

// entropyMinSamples is how many full windows an agent's entropy band is
// learned from before it is used.
const entropyMinSamples = 5

// minEntropyStd floors the band's standard deviation, in bits: an agent
// that always calls its tools in the same rotation has none, and one call
// out of turn must not put it out of band.
const minEntropyStd = 0.1

// Agents are kept in maxShards shards, each with its own lock and its own
// least-recently-seen order, once there are enough of them for the order
// of a shard to stand for that of all (max_agents of at least
// minShardedAgents).
const (
	maxShards        = 16
	minShardedAgents = 256
)

type shard struct {
	mu     sync.Mutex
	agents map[string]*agentState
	head   *agentState // most recently seen
	tail   *agentState // least recently seen: evicted first
}

type toolKey struct{ server, name string }

type toolSlot struct {
	key      toolKey
	learned  bool   // allowed at least once
	flagged  bool   // its new_tool episode fired
	inWindow uint16 // times it is in the entropy window
	lastSeen uint64 // the agent's tool-call count when last called
}

type agentState struct {
	id         string
	prev, next *agentState

	first, cur int64 // interval numbers: first seen, current
	count      int64 // calls in cur
	rate       stats
	fired      [3]int64 // per kind: the interval it last fired in, plus one

	tools  map[toolKey]uint16
	slots  []toolSlot
	window []uint16 // ring of slot numbers of the latest tool calls
	calls  uint64   // tool calls ever
	sum    int64    // Σ c·log2(c) over the window, fixed point
	ent    stats    // entropy of each full, fresh window
}

// New returns a detector for a filled, validated configuration.
func New(cfg Config) *Detector {
	d := &Detector{cfg: cfg, interval: int64(cfg.Interval), memory: int64(cfg.BaselineIntervals),
		window: cfg.EntropyWindow, seed: maphash.MakeSeed()}
	for _, r := range cfg.Responses {
		k, _ := KindNamed(r.When)
		p := &d.resp[bitIndex(k)]
		switch r.Action {
		case ActFlag:
			p.flag = true
		case ActApproval:
			p.ask = true
		case ActIsolate:
			p.isolate = true
		}
	}
	n := 1
	if cfg.MaxAgents >= minShardedAgents {
		n = maxShards
	}
	d.shards = make([]shard, n)
	d.perShard = cfg.MaxAgents / n
	for i := range d.shards {
		d.shards[i].agents = map[string]*agentState{}
	}
	d.clog = make([]int64, d.window+1)
	d.log2n = make([]float64, d.window+1)
	for c := 1; c <= d.window; c++ {
		d.clog[c] = int64(math.Round(float64(c) * math.Log2(float64(c)) * clogScale))
		d.log2n[c] = math.Log2(float64(c))
	}
	return d
}

// Config is the configuration in force.
func (d *Detector) Config() Config { return d.cfg }

func bitIndex(k Kind) int {
	switch k {
	case RateZ:
		return 0
	case NewTool:
		return 1
	}
	return 2
}

func (d *Detector) shardOf(agent string) *shard {
	if len(d.shards) == 1 {
		return &d.shards[0]
	}
	return &d.shards[maphash.String(d.seed, agent)%uint64(len(d.shards))]
}

// Observe reads the agent of c at now and, at a point where it acts,
// counts the call. A call without an agent reads nothing.
func (d *Detector) Observe(c action.Call, now time.Time) Reading {
	r := Reading{Threshold: d.cfg.RateZ}
	if c.Agent == "" {
		return r
	}
	counts := Counts(c.Point)
	tool := counts && c.Point == action.PreToolCall && c.Tool != ""
	iv := now.UnixNano() / d.interval
	sh := d.shardOf(c.Agent)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	st := sh.agents[c.Agent]
	if st == nil {
		if !counts {
			return r // nothing known, and nothing to learn
		}
		st = d.admit(sh, c.Agent, iv)
	} else {
		sh.touch(st)
	}
	d.advance(st, iv)
	if counts {
		st.count++
	}
	r.Warm = st.cur-st.first >= int64(d.cfg.WarmupIntervals)

	// The rate: this interval's calls so far against the baseline.
	r.Count, r.Mean = st.count, st.rate.mean
	r.Std = math.Sqrt(max(st.rate.vari, st.rate.mean, 1))
	if r.Warm {
		r.RateZ = (float64(st.count) - r.Mean) / r.Std
		if r.RateZ >= d.cfg.RateZ {
			r.Over |= Kinds(RateZ)
		}
	}

	// The tool and the entropy.
	if tool {
		slot := d.callTool(st, toolKey{c.Server, c.Tool})
		s := &st.slots[slot]
		r.Unknown = !s.learned
		if r.Unknown && r.Warm {
			r.NewTool = true
			r.Over |= Kinds(NewTool)
			if !s.flagged {
				s.flagged = true
				r.Fired |= Kinds(NewTool)
			}
		}
	}
	n := min(st.calls, uint64(d.window))
	r.Entropy = d.entropy(st)
	if st.ent.n > 0 {
		r.Low, r.High = d.band(st)
		if r.Warm && st.ent.n >= entropyMinSamples && n == uint64(d.window) && (r.Entropy < r.Low || r.Entropy > r.High) {
			r.OutOfBand = true
			r.Over |= Kinds(Entropy)
		}
	}
	if tool && st.calls%uint64(d.window) == 0 {
		// A fresh full window: one sample of the band, taken after it
		// was read, so that a window does not judge itself.
		st.ent.add(r.Entropy, d.memory)
	}

	// Episodes: the rate and the entropy fire once per interval.
	for _, k := range [...]Kind{RateZ, Entropy} {
		i := bitIndex(k)
		if r.Over.Has(k) && st.fired[i] != st.cur+1 {
			st.fired[i] = st.cur + 1
			r.Fired |= Kinds(k)
		}
	}
	for _, k := range AllKinds {
		p := d.resp[bitIndex(k)]
		if r.Over.Has(k) {
			if p.ask {
				r.Ask |= Kinds(k)
			}
			if p.flag {
				r.Flag |= Kinds(k)
			}
		}
		if r.Fired.Has(k) {
			d.fired[bitIndex(k)].Add(1)
			if p.isolate {
				r.Isolate |= Kinds(k)
			}
		}
	}
	return r
}

// entropy is that of the agent's window, in bits.
func (d *Detector) entropy(st *agentState) float64 {
	n := min(st.calls, uint64(d.window))
	if n == 0 {
		return 0
	}
	// Rounded to a nanobit, so that the fixed point's last bits do not
	// show as a tiny entropy where there is none.
	return max(0, math.Round((d.log2n[n]-float64(st.sum)/clogScale/float64(n))*1e9)/1e9)
}

// band is the agent's entropy band, once it has a sample.
func (d *Detector) band(st *agentState) (low, high float64) {
	half := d.cfg.EntropyBand * max(math.Sqrt(st.ent.vari), minEntropyStd)
	return max(0, st.ent.mean-half), st.ent.mean + half
}

// Learn records that the agent of c was allowed to use its tool: it is
// no longer new. Call it for an allowed call whose reading was Unknown.
func (d *Detector) Learn(c action.Call) {
	if c.Agent == "" || c.Tool == "" {
		return
	}
	sh := d.shardOf(c.Agent)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	st := sh.agents[c.Agent]
	if st == nil {
		return
	}
	if i, ok := st.tools[toolKey{c.Server, c.Tool}]; ok {
		st.slots[i].learned = true
		st.slots[i].flagged = false
	}
}

// admit adds an agent seen for the first time, forgetting the least
// recently seen one when the shard is full.
func (d *Detector) admit(sh *shard, agent string, iv int64) *agentState {
	if len(sh.agents) >= d.perShard && sh.tail != nil {
		old := sh.tail
		sh.unlink(old)
		delete(sh.agents, old.id)
		d.evicted.Add(1)
	}
	st := &agentState{id: strings.Clone(agent), first: iv, cur: iv,
		tools: map[toolKey]uint16{}, window: make([]uint16, d.window)}
	sh.agents[st.id] = st
	sh.pushFront(st)
	return st
}

// advance closes the intervals between the agent's current one and iv:
// the current one's count and a zero for each idle one join the baseline.
// A clock that steps back counts into the current interval.
func (d *Detector) advance(st *agentState, iv int64) {
	if iv <= st.cur {
		return
	}
	st.rate.add(float64(st.count), d.memory)
	st.rate.addZeros(iv-st.cur-1, d.memory)
	st.cur, st.count = iv, 0
}

// callTool counts a call of tool in the agent's table and entropy window,
// and returns its slot.
func (d *Detector) callTool(st *agentState, k toolKey) uint16 {
	slot, ok := st.tools[k]
	if !ok {
		slot = d.newSlot(st, k)
	}
	st.calls++
	pos := int((st.calls - 1) % uint64(d.window))
	if st.calls > uint64(d.window) {
		out := &st.slots[st.window[pos]]
		st.sum += d.clog[out.inWindow-1] - d.clog[out.inWindow]
		out.inWindow--
	}
	s := &st.slots[slot]
	st.sum += d.clog[s.inWindow+1] - d.clog[s.inWindow]
	s.inWindow++
	s.lastSeen = st.calls
	st.window[pos] = slot
	return slot
}

// newSlot gives tool a slot: a free one while the table has room, else
// that of the least recently used tool outside the window, preferring
// tools never allowed (so that calls of made-up names cannot push out
// the tools the agent really uses). The table holds more tools than the
// window, so there is always one.
func (d *Detector) newSlot(st *agentState, k toolKey) uint16 {
	k = toolKey{strings.Clone(k.server), strings.Clone(k.name)}
	if len(st.slots) < d.cfg.MaxToolsPerAgent {
		st.slots = append(st.slots, toolSlot{key: k})
		i := uint16(len(st.slots) - 1)
		st.tools[k] = i
		return i
	}
	best := -1
	for i := range st.slots {
		s := &st.slots[i]
		if s.inWindow > 0 {
			continue
		}
		if best < 0 {
			best = i
			continue
		}
		b := &st.slots[best]
		if (b.learned && !s.learned) || (b.learned == s.learned && s.lastSeen < b.lastSeen) {
			best = i
		}
	}
	delete(st.tools, st.slots[best].key)
	st.slots[best] = toolSlot{key: k}
	st.tools[k] = uint16(best)
	return uint16(best)
}

func (sh *shard) pushFront(st *agentState) {
	st.prev, st.next = nil, sh.head
	if sh.head != nil {
		sh.head.prev = st
	}
	sh.head = st
	if sh.tail == nil {
		sh.tail = st
	}
}

func (sh *shard) unlink(st *agentState) {
	if st.prev != nil {
		st.prev.next = st.next
	} else {
		sh.head = st.next
	}
	if st.next != nil {
		st.next.prev = st.prev
	} else {
		sh.tail = st.prev
	}
	st.prev, st.next = nil, nil
}

func (sh *shard) touch(st *agentState) {
	if sh.head != st {
		sh.unlink(st)
		sh.pushFront(st)
	}
}

// Agents is how many agents are remembered.
func (d *Detector) Agents() int {
	n := 0
	for i := range d.shards {
		sh := &d.shards[i]
		sh.mu.Lock()
		n += len(sh.agents)
		sh.mu.Unlock()
	}
	return n
}

// Fired is how many episodes of kind k have started.
func (d *Detector) Fired(k Kind) uint64 { return d.fired[bitIndex(k)].Load() }

// Evicted is how many agents were forgotten to make room for others.
func (d *Detector) Evicted() uint64 { return d.evicted.Load() }
