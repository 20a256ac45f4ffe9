package sre

import (
	"encoding/binary"
	"math"
	"testing"
	"time"

	"github.com/agentgov/agentgov/action"
)

// fakeClock is a clock tests move by hand.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time            { return c.t }
func (c *fakeClock) add(d time.Duration)       { c.t = c.t.Add(d) }
func newClock() *fakeClock                     { return &fakeClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }
func near(a, b float64) bool                   { return math.Abs(a-b) < 1e-9 }
func sloConfig(slos ...SLO) Config             { c := Config{SLOs: slos}; c.Fill(); return c }
func successSLO(id string, target float64) SLO { return SLO{ID: id, SLI: SLISuccess, Target: target} }

// outcome runs one allowed tool call through the monitor and reports its
// outcome.
func outcome(m *Monitor, now time.Time, tool string, ok bool) {
	id := nextID()
	a := action.Action{Agent: action.Agent{ID: "a1"}, Tool: action.Tool{Server: "srv", Name: tool}}
	if _, refusal := m.Admit(id, action.CallOf(&a), now); refusal != "" {
		return
	}
	m.Decided(id, action.CallOf(&a), action.Allow, now)
	st := "ok"
	if !ok {
		st = "error"
	}
	m.Outcome(id, &action.Outcome{Status: st, LatencyMS: 5}, now)
}

var counter uint64

// nextID is a fresh decision id.
func nextID() action.ID {
	var id action.ID
	counter++
	binary.BigEndian.PutUint64(id[8:], counter)
	id[0] = 0xff
	return id
}

// The SRE workbook's error budget: under a 99% target, 1% of events may be
// bad; one bad event in 1,000 spends a tenth of that, leaving 90%. (The
// code this replaces reported the budget exhausted.)
func TestOneBadEventInAThousandLeavesNinetyPercentOfTheBudget(t *testing.T) {
	if got := BudgetRemaining(999, 1, 0.99); !near(got, 0.9) {
		t.Fatalf("budget remaining = %v, want 0.9", got)
	}
	clk := newClock()
	m := New(sloConfig(successSLO("tools", 0.99)), Options{Clock: clk.now})
	for i := range 1000 {
		outcome(m, clk.now(), "read", i != 500)
		clk.add(time.Second)
	}
	st := m.SLOs()[0]
	if st.Good != 999 || st.Total != 1000 {
		t.Fatalf("good/total = %d/%d, want 999/1000", st.Good, st.Total)
	}
	if !near(st.ErrorBudgetRemaining, 0.9) {
		t.Fatalf("error_budget_remaining = %v, want 0.9", st.ErrorBudgetRemaining)
	}
	// Twenty bad in a thousand spends twice the budget: the remaining
	// budget goes below zero rather than stop at it.
	if got := BudgetRemaining(980, 20, 0.99); !near(got, -1) {
		t.Fatalf("overspent budget remaining = %v, want -1", got)
	}
	if BudgetRemaining(0, 0, 0.99) != 1 {
		t.Fatal("no events must leave the whole budget")
	}
}

func firing(st Status) map[string]bool {
	out := map[string]bool{}
	for _, a := range st.Alerts {
		out[a.LongWindow+"&"+a.ShortWindow] = a.Firing
	}
	return out
}

// steady sends n outcomes per minute for d, bad of them failing.
func steady(m *Monitor, clk *fakeClock, d time.Duration, n, bad int) {
	for end := clk.now().Add(d); clk.now().Before(end); clk.add(time.Minute) {
		for i := range n {
			outcome(m, clk.now().Add(time.Duration(i)*time.Second), "read", i >= bad)
		}
	}
}

// The alerts are those of the workbook: 14.4x over 1h and 5m, 6x over 6h
// and 30m (pages), 1x over 3d and 6h (a ticket).
func TestAlertWindowsAreTheWorkbooks(t *testing.T) {
	m := New(sloConfig(successSLO("s", 0.99)), Options{Clock: newClock().now})
	st := m.SLOs()[0]
	want := []AlertStatus{
		{Severity: "page", LongWindow: "1h", ShortWindow: "5m", Factor: 14.4},
		{Severity: "page", LongWindow: "6h", ShortWindow: "30m", Factor: 6},
		{Severity: "ticket", LongWindow: "3d", ShortWindow: "6h", Factor: 1},
	}
	if len(st.Alerts) != len(want) {
		t.Fatalf("alerts %+v", st.Alerts)
	}
	for i, a := range want {
		if st.Alerts[i] != a {
			t.Errorf("alert %d = %+v, want %+v", i, st.Alerts[i], a)
		}
	}
	for _, w := range []string{"5m", "30m", "1h", "6h", "3d"} {
		if _, ok := st.BurnRates[w]; !ok {
			t.Errorf("no burn rate over %s", w)
		}
	}
	if st.Window != "30d" {
		t.Errorf("window %q, want 30d", st.Window)
	}
}

// A blip (one bad minute in hours of good traffic) burns fast over 5m but
// not over 1h: no page. An outage (every call failing for ten minutes)
// pages on 1h & 5m; once it ends, the 5m window clears and the page stops,
// although the hour still holds the outage.
func TestBurnRateAlertsFireForAnOutageAndNotForABlip(t *testing.T) {
	clk := newClock()
	m := New(sloConfig(successSLO("s", 0.99)), Options{Clock: clk.now})
	steady(m, clk, 2*time.Hour, 10, 0)
	steady(m, clk, time.Minute, 10, 10) // the blip
	st := m.SLOs()[0]
	if st.BurnRates["5m"] <= 14.4 {
		t.Fatalf("the blip should burn fast over 5m: %v", st.BurnRates)
	}
	if f := firing(st); f["1h&5m"] || f["6h&30m"] || f["3d&6h"] {
		t.Fatalf("a one-minute blip fired %v (burn rates %v)", f, st.BurnRates)
	}
	if st.Paging() {
		t.Fatal("a blip pages")
	}

	steady(m, clk, 2*time.Hour, 10, 0)
	steady(m, clk, 10*time.Minute, 10, 10) // the outage
	st = m.SLOs()[0]
	if f := firing(st); !f["1h&5m"] {
		t.Fatalf("a ten-minute outage does not page on 1h&5m: %v (burn rates %v)", f, st.BurnRates)
	}
	if !st.Paging() {
		t.Fatal("Paging() false while a page alert fires")
	}
	steady(m, clk, 10*time.Minute, 10, 0) // recovered
	st = m.SLOs()[0]
	if st.BurnRates["1h"] <= 14.4 {
		t.Fatalf("the hour should still hold the outage: %v", st.BurnRates)
	}
	if f := firing(st); f["1h&5m"] {
		t.Fatalf("the page keeps firing once the outage is over: burn rates %v", st.BurnRates)
	}
}

// A slow, steady burn (3% bad, 3x the budget) over hours opens the ticket
// alert, and not the pages.
func TestSlowBurnOpensATicketNotAPage(t *testing.T) {
	clk := newClock()
	m := New(sloConfig(successSLO("s", 0.99)), Options{Clock: clk.now})
	// 100 calls a minute is too many for a quick test: 33 a minute, one bad.
	steady(m, clk, 7*time.Hour, 33, 1)
	st := m.SLOs()[0]
	f := firing(st)
	if !f["3d&6h"] || f["1h&5m"] || f["6h&30m"] {
		t.Fatalf("firing %v, burn rates %v: want the ticket only", f, st.BurnRates)
	}
}

// A latency SLI counts outcomes at or under the threshold as good; a
// policy-violation SLI counts denied decisions as bad; an SLO counts only
// what its match covers.
func TestLatencyAndPolicyViolationSLIs(t *testing.T) {
	clk := newClock()
	m := New(sloConfig(
		SLO{ID: "fast", SLI: SLILatency, Target: 0.9, LatencyMS: 100, Match: Match{Tools: []string{"srv/*"}}},
		SLO{ID: "clean", SLI: SLIPolicyViolation, Target: 0.99, Match: Match{Agents: []string{"a1"}}},
	), Options{Clock: clk.now})
	for i, ms := range []float64{10, 100, 101, 5000} {
		id := action.ID{byte(i + 1)}
		a := action.Action{Agent: action.Agent{ID: "a1"}, Tool: action.Tool{Server: "srv", Name: "t"}}
		m.Admit(id, action.CallOf(&a), clk.now())
		m.Decided(id, action.CallOf(&a), action.Allow, clk.now())
		m.Outcome(id, &action.Outcome{Status: "ok", LatencyMS: ms}, clk.now())
	}
	other := action.Action{Agent: action.Agent{ID: "a1"}, Tool: action.Tool{Server: "elsewhere", Name: "t"}}
	m.Decided(action.ID{9}, action.CallOf(&other), action.Allow, clk.now())
	m.Outcome(action.ID{9}, &action.Outcome{Status: "ok", LatencyMS: 99999}, clk.now())
	m.Decided(action.ID{10}, action.CallOf(&other), action.Deny, clk.now())
	stranger := action.Action{Agent: action.Agent{ID: "a2"}, Tool: action.Tool{Name: "t"}}
	m.Decided(action.ID{11}, action.CallOf(&stranger), action.Deny, clk.now())

	sts := m.SLOs()
	if sts[0].Good != 2 || sts[0].Total != 4 {
		t.Errorf("latency SLI %d/%d, want 2/4", sts[0].Good, sts[0].Total)
	}
	// a1's decisions: four allows above, one allow and one deny on another server.
	if sts[1].Good != 5 || sts[1].Total != 6 {
		t.Errorf("policy-violation SLI %d/%d, want 5/6", sts[1].Good, sts[1].Total)
	}
}

// An outcome for a decision the monitor never saw allowed (another
// replica's, a forged id, a second report) counts for nothing.
func TestOutcomeOfAnUnknownDecisionCountsForNothing(t *testing.T) {
	clk := newClock()
	m := New(sloConfig(successSLO("s", 0.99)), Options{Clock: clk.now})
	m.Outcome(action.ID{1}, &action.Outcome{Status: "error"}, clk.now())
	a := action.Action{Agent: action.Agent{ID: "a1"}, Tool: action.Tool{Name: "t"}}
	m.Decided(action.ID{2}, action.CallOf(&a), action.Allow, clk.now())
	m.Outcome(action.ID{2}, &action.Outcome{Status: "ok"}, clk.now())
	m.Outcome(action.ID{2}, &action.Outcome{Status: "error"}, clk.now())
	if st := m.SLOs()[0]; st.Good != 1 || st.Total != 1 {
		t.Fatalf("good/total %d/%d, want 1/1", st.Good, st.Total)
	}
}

func TestConfigValidation(t *testing.T) {
	for _, c := range []struct {
		cfg Config
		key string
	}{
		{Config{SLOs: []SLO{{ID: "x", SLI: "uptime", Target: 0.9}}}, "slos[0].sli"},
		{Config{SLOs: []SLO{{ID: "x", SLI: SLISuccess, Target: 99}}}, "slos[0].target"},
		{Config{SLOs: []SLO{{ID: "x", SLI: SLISuccess, Target: 1}}}, "slos[0].target"},
		{Config{SLOs: []SLO{{ID: "x", SLI: SLILatency, Target: 0.9}}}, "slos[0].latency_ms"},
		{Config{SLOs: []SLO{{ID: "x", SLI: SLISuccess, Target: 0.9, Window: Duration(400 * 24 * time.Hour)}}}, "slos[0].window"},
		{Config{SLOs: []SLO{{ID: "x", SLI: SLISuccess, Target: 0.9}, {ID: "x", SLI: SLISuccess, Target: 0.9}}}, "slos[1].id"},
		{Config{SLOs: []SLO{{ID: "bad id!", SLI: SLISuccess, Target: 0.9}}}, "slos[0].id"},
		{Config{Breakers: []Breaker{{ID: "b"}}}, "breakers[0].match"},
		{Config{Breakers: []Breaker{{ID: "b", Match: Match{Tools: []string{"*"}}, FailureRatio: 2}}}, "breakers[0].failure_ratio"},
		{Config{Breakers: []Breaker{{ID: "b", Match: Match{Tools: []string{"*"}}, MinCalls: -1}}}, "breakers[0].min_calls"},
		{Config{Breakers: []Breaker{{ID: "b", Match: Match{Tools: []string{""}}}}}, "breakers[0].match.tools[0]"},
	} {
		c.cfg.Fill()
		err := c.cfg.Validate()
		ke, ok := err.(*KeyError)
		if !ok || ke.Key != c.key {
			t.Errorf("%+v: error %v, want one naming %s", c.cfg, err, c.key)
		}
	}
	good := Config{SLOs: []SLO{{ID: "x", SLI: SLISuccess, Target: 0.999}}, Breakers: []Breaker{{ID: "b", Match: Match{Servers: []string{"github"}}}}}
	good.Fill()
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	if good.SLOs[0].Window != DefaultSLOWindow || good.Breakers[0].HalfOpenProbes != 1 || good.Breakers[0].MinCalls != 10 {
		t.Fatalf("defaults not filled: %+v", good)
	}
}

func TestDurations(t *testing.T) {
	for in, want := range map[string]time.Duration{"30d": 720 * time.Hour, "5m": 5 * time.Minute, "1h30m": 90 * time.Minute} {
		d, err := ParseDuration(in)
		if err != nil || time.Duration(d) != want {
			t.Errorf("%s: %v %v", in, d, err)
		}
	}
	for _, in := range []string{"", "d", "1.5d", "-1d", "soon"} {
		if _, err := ParseDuration(in); err == nil {
			t.Errorf("%q parsed", in)
		}
	}
	if s := Duration(72 * time.Hour).String(); s != "3d" {
		t.Errorf("3d written %q", s)
	}
}
