package anomaly

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentgov/agentgov/action"
)

var t0 = time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)

func detector(t testing.TB, c Config) *Detector {
	t.Helper()
	c.Fill()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	return New(c)
}

func call(agent, tool string) action.Call {
	return action.Call{Point: action.PreToolCall, Agent: agent, Tool: tool}
}

// steady makes agent call tool n times in each of minutes [from, to).
func steady(d *Detector, c action.Call, from, to, n int) {
	for m := from; m < to; m++ {
		for i := range n {
			r := d.Observe(c, t0.Add(time.Duration(m)*time.Minute+time.Duration(i)*time.Second))
			if r.Unknown {
				d.Learn(c)
			}
		}
	}
}

// An agent that makes 10 calls a minute for its warm-up, then bursts,
// passes the z-score threshold at the 23rd call of the burst's minute
// (10 + 4·√10), and the episode fires once in that minute.
func TestBurstPassesTheRateThresholdOnce(t *testing.T) {
	d := detector(t, Config{WarmupIntervals: 30, RateZ: 4, Responses: []Response{{When: "rate_z", Action: ActFlag}}})
	c := call("a1", "read_file")
	steady(d, c, 0, 30, 10)
	var first int
	fired := 0
	for i := 1; i <= 60; i++ {
		r := d.Observe(c, t0.Add(30*time.Minute+time.Duration(i)*500*time.Millisecond))
		if !r.Warm {
			t.Fatalf("call %d: not warm after 30 intervals", i)
		}
		if r.Over.Has(RateZ) && first == 0 {
			first = i
			if r.RateZ < 4 || r.Mean != 10 || r.Count != int64(i) {
				t.Fatalf("reading %+v", r)
			}
			if !r.Flag.Has(RateZ) || r.Ask != 0 || r.Isolate != 0 {
				t.Fatalf("responses: flag %b ask %b isolate %b", r.Flag, r.Ask, r.Isolate)
			}
			if !strings.Contains(r.Reason(RateZ, c), "23 calls by a1") {
				t.Fatalf("reason %q", r.Reason(RateZ, c))
			}
		}
		if r.Fired.Has(RateZ) {
			fired++
		}
	}
	if first != 23 {
		t.Fatalf("threshold passed at call %d of the burst, want 23", first)
	}
	if fired != 1 || d.Fired(RateZ) != 1 {
		t.Fatalf("fired %d times in the interval (counter %d), want once", fired, d.Fired(RateZ))
	}
	// The next minute is a new episode.
	var again bool
	for i := range 80 { // the last burst raised the baseline
		r := d.Observe(c, t0.Add(31*time.Minute+time.Duration(i)*500*time.Millisecond))
		again = again || r.Fired.Has(RateZ)
	}
	if !again {
		t.Fatal("a burst in the next interval did not fire")
	}
}

// During the warm-up no z-score is given, however many calls come.
func TestNoZScoreDuringWarmup(t *testing.T) {
	d := detector(t, Config{WarmupIntervals: 30})
	c := call("a1", "read_file")
	steady(d, c, 0, 29, 10)
	for i := range 500 {
		r := d.Observe(c, t0.Add(29*time.Minute+time.Duration(i)*time.Millisecond))
		if r.Warm || r.RateZ != 0 || r.Over != 0 {
			t.Fatalf("call %d in the 30th interval: %+v", i, r)
		}
	}
}

// Idle intervals count in the baseline: an agent back after an idle hour
// is compared with a lower mean, not with its busy minutes alone.
func TestIdleIntervalsLowerTheBaseline(t *testing.T) {
	d := detector(t, Config{WarmupIntervals: 5})
	c := call("a1", "read_file")
	steady(d, c, 0, 10, 10)
	r := d.Observe(c, t0.Add(70*time.Minute))
	if !(r.Mean > 0 && r.Mean < 10.0*10/60) {
		t.Fatalf("mean after 60 idle minutes %v, want about 10·10/70", r.Mean)
	}
}

// A tool first used during the warm-up is learned silently; after it, a
// tool never allowed is new (firing once), and stays new until allowed.
func TestNewToolOnlyAfterWarmup(t *testing.T) {
	d := detector(t, Config{WarmupIntervals: 3, Responses: []Response{{When: "new_tool", Action: ActApproval}}})
	a := call("a1", "read_file")
	r := d.Observe(call("a1", "list_dir"), t0)
	if r.NewTool || !r.Unknown || r.Over != 0 {
		t.Fatalf("warm-up: %+v", r)
	}
	d.Learn(call("a1", "list_dir"))
	steady(d, a, 0, 3, 2)
	if r := d.Observe(call("a1", "list_dir"), t0.Add(3*time.Minute)); r.NewTool || r.Unknown || !r.Warm {
		t.Fatalf("a tool learned during the warm-up: %+v", r)
	}
	w := call("a1", "write_file")
	w.Server = "fs"
	r = d.Observe(w, t0.Add(3*time.Minute+time.Second))
	if !r.NewTool || !r.Fired.Has(NewTool) || !r.Ask.Has(NewTool) {
		t.Fatalf("first use after warm-up: %+v", r)
	}
	if got := r.Reason(NewTool, w); got != "anomaly new_tool: a1 has never been allowed to use tool fs/write_file" {
		t.Fatalf("reason %q", got)
	}
	r = d.Observe(w, t0.Add(3*time.Minute+2*time.Second))
	if !r.NewTool || r.Fired.Has(NewTool) || !r.Ask.Has(NewTool) {
		t.Fatalf("second attempt before it was allowed: new %v fired %b ask %b", r.NewTool, r.Fired, r.Ask)
	}
	d.Learn(w)
	if r = d.Observe(w, t0.Add(3*time.Minute+3*time.Second)); r.NewTool || r.Over != 0 {
		t.Fatalf("after it was allowed: %+v", r)
	}
	// Another agent's tools are its own.
	d.Observe(call("a2", "x"), t0)
	if r = d.Observe(call("a2", "write_file"), t0.Add(3*time.Minute)); r.NewTool != true {
		t.Fatalf("a2's first write_file after its warm-up: %+v", r)
	}
}

// An agent that rotates over five tools keeps its entropy (log2 5) in its
// band; hammering one tool, or spraying many, takes it out.
func TestEntropyOutOfBand(t *testing.T) {
	for _, tc := range []struct {
		name string
		tool func(i int) string
		low  bool
	}{
		{"one tool", func(int) string { return "t0" }, true},
		{"many tools", func(i int) string { return fmt.Sprintf("x%d", i%40) }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := detector(t, Config{WarmupIntervals: 2, EntropyWindow: 50, Responses: []Response{{When: "entropy", Action: ActIsolate}}})
			at := t0
			var r Reading
			for i := range 600 { // 12 windows over 10 minutes
				at = t0.Add(time.Duration(i) * time.Second)
				c := call("a1", fmt.Sprintf("t%d", i%5))
				if r = d.Observe(c, at); r.Unknown {
					d.Learn(c)
				}
				if r.Over.Has(Entropy) {
					t.Fatalf("call %d of the rotation out of band: %+v", i, r)
				}
			}
			if r.Entropy < 2.32 || r.Entropy > 2.33 || r.Low > r.Entropy || r.High < r.Entropy {
				t.Fatalf("rotation over five tools: %+v", r)
			}
			out := -1
			fired := 0
			for i := range 50 {
				at = at.Add(time.Millisecond)
				c := call("a1", tc.tool(i))
				r = d.Observe(c, at)
				d.Learn(c)
				if r.OutOfBand && out < 0 {
					out = i
					if tc.low != (r.Entropy < r.Low) || !r.Isolate.Has(Entropy) {
						t.Fatalf("%+v", r)
					}
				}
				if r.Fired.Has(Entropy) {
					fired++
				}
			}
			if out < 0 || fired != 1 {
				t.Fatalf("never out of band (%+v), or fired %d times", r, fired)
			}
		})
	}
}

// Only the points where an agent acts count; the others read.
func TestOnlyActingPointsCount(t *testing.T) {
	d := detector(t, Config{})
	c := action.Call{Point: action.PostToolCall, Agent: "a1", Tool: "read_file"}
	d.Observe(c, t0)
	if d.Agents() != 0 {
		t.Fatal("a post_tool_call created an agent")
	}
	d.Observe(call("a1", "read_file"), t0)
	r := d.Observe(c, t0)
	if r.Count != 1 || r.Entropy != 0 {
		t.Fatalf("after one call and one read: %+v", r)
	}
	m := action.Call{Point: action.PreModelCall, Agent: "a1", Model: "gpt-4o"}
	if r = d.Observe(m, t0); r.Count != 2 {
		t.Fatalf("a model call does not count: %+v", r)
	}
	if r = d.Observe(action.Call{Point: action.PreToolCall, Tool: "x"}, t0); r.Count != 0 || d.Agents() != 1 {
		t.Fatal("a call without an agent was counted")
	}
}

// Memory is bounded: past max_agents the least recently seen agent is
// forgotten (and warms up again); past max_tools_per_agent the least
// recently used tool outside the window, never allowed ones first.
func TestMemoryIsBounded(t *testing.T) {
	d := detector(t, Config{MaxAgents: 2, WarmupIntervals: 1, EntropyWindow: 4, MaxToolsPerAgent: 6})
	d.Observe(call("a1", "t"), t0)
	d.Observe(call("a2", "t"), t0)
	d.Observe(call("a1", "t"), t0.Add(time.Second)) // a2 is now the least recently seen
	d.Observe(call("a3", "t"), t0.Add(2*time.Second))
	if d.Agents() != 2 || d.Evicted() != 1 {
		t.Fatalf("agents %d evicted %d", d.Agents(), d.Evicted())
	}
	if r := d.Observe(call("a1", "t"), t0.Add(time.Minute)); !r.Warm {
		t.Fatal("a1 was forgotten instead of a2")
	}
	if r := d.Observe(call("a2", "t"), t0.Add(time.Minute)); r.Warm {
		t.Fatal("a2 came back remembered")
	}

	// Room for the window and four more: the two learned tools stay.
	d = detector(t, Config{MaxAgents: 1, WarmupIntervals: 1, EntropyWindow: 4, MaxToolsPerAgent: 8})
	at := t0
	use := func(tool string, learn bool) Reading {
		at = at.Add(time.Second)
		c := call("a1", tool)
		r := d.Observe(c, at)
		if learn {
			d.Learn(c)
		}
		return r
	}
	for _, tool := range []string{"keep1", "keep2"} {
		use(tool, true)
	}
	at = at.Add(time.Minute)
	for i := range 40 { // made-up names, all denied
		use(fmt.Sprintf("junk%d", i), false)
	}
	st := d.shards[0].agents["a1"]
	if len(st.slots) != 8 || len(st.tools) != 8 {
		t.Fatalf("table holds %d slots, %d tools", len(st.slots), len(st.tools))
	}
	if r := use("keep1", false); r.NewTool {
		t.Fatal("junk names pushed out a tool the agent was allowed")
	}
}

func TestConfigErrorsNameTheKey(t *testing.T) {
	for _, tc := range []struct {
		c   Config
		key string
	}{
		{Config{Interval: time.Millisecond}, "interval"},
		{Config{WarmupIntervals: -1}, "warmup_intervals"},
		{Config{BaselineIntervals: 1}, "baseline_intervals"},
		{Config{RateZ: 0.5}, "rate_z"},
		{Config{EntropyWindow: 2}, "entropy_window"},
		{Config{EntropyBand: 0.1}, "entropy_band"},
		{Config{MaxAgents: -4}, "max_agents"},
		{Config{EntropyWindow: 50, MaxToolsPerAgent: 50}, "max_tools_per_agent"},
		{Config{Responses: []Response{{When: "rate", Action: "flag"}}}, "responses[0].when"},
		{Config{Responses: []Response{{When: "rate_z", Action: "kill"}}}, "responses[0].action"},
		{Config{Responses: []Response{{When: "rate_z", Action: "flag"}, {When: "rate_z", Action: "flag"}}}, "responses[1]"},
		{Config{Disabled: true, Responses: []Response{{When: "rate_z", Action: "flag"}}}, "responses"},
	} {
		tc.c.Fill()
		var ke *KeyError
		if err := tc.c.Validate(); !errors.As(err, &ke) || ke.Key != tc.key {
			t.Errorf("%+v: got %v, want an error at %s", tc.c, err, tc.key)
		}
	}
}

// Observe costs no allocation once the agent and its tools are known.
func TestObserveDoesNotAllocate(t *testing.T) {
	d := detector(t, Config{WarmupIntervals: 1})
	c := call("a1", "read_file")
	at := t0
	d.Observe(c, at)
	d.Learn(c)
	if n := testing.AllocsPerRun(1000, func() {
		at = at.Add(time.Millisecond)
		d.Observe(c, at)
	}); n != 0 {
		t.Fatalf("%v allocations per call", n)
	}
}

func BenchmarkObserve(b *testing.B) {
	for _, agents := range []int{1, 1000} {
		b.Run(fmt.Sprintf("agents=%d", agents), func(b *testing.B) {
			d := detector(b, Config{})
			calls := make([]action.Call, agents)
			for i := range calls {
				calls[i] = call(fmt.Sprintf("agent-%d", i), fmt.Sprintf("tool_%d", i%7))
			}
			at := t0
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				at = at.Add(time.Millisecond)
				d.Observe(calls[i%agents], at)
				i++
			}
		})
	}
}

// The entropy kept incrementally is that of the window computed from
// scratch, after any sequence of calls, evictions of tools included.
func TestEntropyMatchesTheWindow(t *testing.T) {
	d := detector(t, Config{MaxAgents: 1, WarmupIntervals: 1, EntropyWindow: 16, MaxToolsPerAgent: 20})
	rnd := uint64(7)
	at := t0
	for i := range 5000 {
		rnd = rnd*6364136223846793005 + 1442695040888963407
		tool := fmt.Sprintf("t%d", (rnd>>33)%uint64(3+i%30))
		at = at.Add(time.Millisecond)
		r := d.Observe(call("a1", tool), at)
		st := d.shards[0].agents["a1"]
		n := min(int(st.calls), 16)
		counts := map[uint16]int{}
		for j := range n {
			counts[st.window[j]]++
		}
		want := 0.0
		for _, c := range counts {
			p := float64(c) / float64(n)
			want -= p * math.Log2(p)
		}
		if math.Abs(r.Entropy-want) > 1e-6 {
			t.Fatalf("call %d: entropy %v, window's %v", i, r.Entropy, want)
		}
		for slot, c := range counts {
			if int(st.slots[slot].inWindow) != c {
				t.Fatalf("call %d: slot %d counts %d in the window, holds %d", i, slot, st.slots[slot].inWindow, c)
			}
		}
	}
}

// Many goroutines observing overlapping agents, past max_agents, keep
// the bound and the lists whole (run with -race).
func TestConcurrentObserversKeepTheBounds(t *testing.T) {
	d := detector(t, Config{MaxAgents: 300, WarmupIntervals: 1}) // sharded
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				c := call(fmt.Sprintf("agent-%d", (g*977+i*31)%1000), fmt.Sprintf("tool-%d", i%9))
				r := d.Observe(c, t0.Add(time.Duration(i)*time.Millisecond))
				if r.Unknown {
					d.Learn(c)
				}
			}
		}()
	}
	wg.Wait()
	if n := d.Agents(); n > 300 || n == 0 || d.Evicted() == 0 {
		t.Fatalf("%d agents remembered, %d evicted", n, d.Evicted())
	}
	for i := range d.shards {
		sh := &d.shards[i]
		n := 0
		for st := sh.head; st != nil; st = st.next {
			if sh.agents[st.id] != st {
				t.Fatalf("shard %d lists %s, which its map does not hold", i, st.id)
			}
			n++
		}
		if n != len(sh.agents) {
			t.Fatalf("shard %d lists %d agents, holds %d", i, n, len(sh.agents))
		}
	}
}

// Baseline shows what is remembered of an agent without changing it.
func TestBaselineReadsWithoutChanging(t *testing.T) {
	d := detector(t, Config{WarmupIntervals: 3})
	c := call("a1", "read_file")
	steady(d, c, 0, 3, 10)
	d.Observe(call("a1", "junk"), t0.Add(3*time.Minute))
	b, ok := d.Baseline("a1", t0.Add(4*time.Minute))
	if !ok || !b.Warm || b.Intervals != 4 || b.Count != 0 || b.ToolsAllowed != 1 || b.ToolsRemembered != 2 || b.Mean <= 0 {
		t.Fatalf("%+v %v", b, ok)
	}
	if r := d.Observe(c, t0.Add(3*time.Minute+time.Second)); r.Count != 2 {
		t.Fatalf("reading the baseline moved the agent's interval: %+v", r)
	}
	if _, ok := d.Baseline("nobody", t0); ok {
		t.Fatal("an agent never seen has a baseline")
	}
}
