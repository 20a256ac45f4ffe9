package sre

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentgov/agentgov/action"
)

func breakerConfig(bs ...Breaker) Config {
	c := Config{Breakers: bs}
	c.Fill()
	if err := c.Validate(); err != nil {
		panic(err)
	}
	return c
}

// call asks the monitor for a call to tool on server srv; if admitted, it
// is allowed and its outcome reported (when ok is not nil). It returns the
// refusal, if any.
func call(m *Monitor, now time.Time, a action.Action, ok *bool) (state, refusal string, id action.ID) {
	id = nextID()
	state, refusal = m.Admit(id, action.CallOf(&a), now)
	if refusal != "" {
		return state, refusal, id
	}
	m.Decided(id, action.CallOf(&a), action.Allow, now)
	if ok != nil {
		st := "ok"
		if !*ok {
			st = "error"
		}
		m.Outcome(id, &action.Outcome{Status: st}, now)
	}
	return state, "", id
}

var yes, no = true, false

func tool(server, name string) action.Action {
	return action.Action{Agent: action.Agent{ID: "a1"}, Tool: action.Tool{Server: server, Name: name}}
}

type auditSink struct {
	mu      sync.Mutex
	entries []Event
	inc     []string
}

func (s *auditSink) Append(_ context.Context, kind string, rec any) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch kind {
	case "reliability":
		s.entries = append(s.entries, rec.(Event))
	case "incident":
		s.inc = append(s.inc, rec.(map[string]any)["event"].(string))
	}
	return uint64(len(s.entries)), nil
}

func (s *auditSink) incidents() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.inc...)
}

func (s *auditSink) kinds() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, e := range s.entries {
		out = append(out, e.Kind)
	}
	return out
}

// drain runs the monitor's loop until what it queued is audited.
func drain(m *Monitor) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	m.Run(ctx)
}

// The whole life of a circuit: closed while failures stay under the ratio
// or the calls under min_calls; open once both are passed, refusing every
// call with a reason naming it; half-open after open_for, lending exactly
// half_open_probes; open again when a probe fails; closed when the probes
// succeed. Every change of state is audited.
func TestBreakerOpensHalfOpensAndCloses(t *testing.T) {
	clk := newClock()
	sink := &auditSink{}
	var notified []string
	m := New(breakerConfig(Breaker{ID: "gh", Match: Match{Servers: []string{"github"}}, MinCalls: 4, FailureRatio: 0.5,
		Window: Duration(time.Minute), OpenFor: Duration(30 * time.Second), HalfOpenProbes: 2}),
		Options{Clock: clk.now, Audit: sink, Notify: func(_ context.Context, e Event) { notified = append(notified, e.Kind) }})
	gh := tool("github", "create_issue")

	// Three failures: under min_calls, still closed.
	for range 3 {
		if _, r, _ := call(m, clk.now(), gh, &no); r != "" {
			t.Fatalf("refused while closed: %s", r)
		}
	}
	if st := m.Breakers()[0]; st.State != Closed || st.Calls != 3 || st.Failures != 3 || st.Key != "server:github" {
		t.Fatalf("after 3 failures: %+v", st)
	}
	call(m, clk.now(), gh, &no) // the fourth: 4 of 4 failed
	st := m.Breakers()[0]
	if st.State != Open || st.OpenedAt == nil || st.Trips != 1 {
		t.Fatalf("after 4 failures of 4: %+v", st)
	}
	state, refusal, _ := call(m, clk.now(), gh, nil)
	if state != "open" || !strings.Contains(refusal, "circuit breaker gh is open for server:github") {
		t.Fatalf("open circuit answered %q %q", state, refusal)
	}
	// Another server is not affected.
	if _, r, _ := call(m, clk.now(), tool("jira", "create_issue"), nil); r != "" {
		t.Fatalf("jira refused: %s", r)
	}

	// After open_for: two probes and no more.
	clk.add(31 * time.Second)
	if m.Breakers()[0].State != HalfOpen {
		t.Fatalf("not half-open after open_for: %+v", m.Breakers()[0])
	}
	s1, r1, p1 := call(m, clk.now(), gh, nil)
	_, r2, p2 := call(m, clk.now(), gh, nil)
	_, r3, _ := call(m, clk.now(), gh, nil)
	if s1 != "half_open" || r1 != "" || r2 != "" || !strings.Contains(r3, "half-open") {
		t.Fatalf("half-open lent %q %q %q", r1, r2, r3)
	}
	// A probe fails: open again.
	m.Outcome(p1, &action.Outcome{Status: "error"}, clk.now())
	if st := m.Breakers()[0]; st.State != Open || st.Trips != 2 {
		t.Fatalf("a failed probe left %+v", st)
	}
	m.Outcome(p2, &action.Outcome{Status: "ok"}, clk.now()) // too late to count
	if m.Breakers()[0].State != Open {
		t.Fatal("a probe of the last period closed the circuit")
	}

	// Next period: both probes succeed, and it closes.
	clk.add(31 * time.Second)
	_, r1, p1 = call(m, clk.now(), gh, nil)
	_, r2, p2 = call(m, clk.now(), gh, nil)
	if r1 != "" || r2 != "" {
		t.Fatalf("probes refused: %q %q", r1, r2)
	}
	m.Outcome(p1, &action.Outcome{Status: "ok"}, clk.now())
	if m.Breakers()[0].State != HalfOpen {
		t.Fatal("closed after one of two probes")
	}
	m.Outcome(p2, &action.Outcome{Status: "ok"}, clk.now())
	if st := m.Breakers()[0]; st.State != Closed || st.Calls != 0 {
		t.Fatalf("after the probes succeeded: %+v", st)
	}
	if _, r, _ := call(m, clk.now(), gh, &yes); r != "" {
		t.Fatalf("closed circuit refused: %s", r)
	}

	drain(m)
	want := "breaker_open breaker_half_open breaker_open breaker_half_open breaker_closed"
	if got := strings.Join(sink.kinds(), " "); got != want {
		t.Fatalf("audited %q, want %q", got, want)
	}
	if strings.Join(notified, " ") != want {
		t.Fatalf("notified %q", notified)
	}
}

// A mix of successes and failures under the ratio keeps the circuit
// closed; failures that age out of the window are forgotten.
func TestBreakerCountsTheRatioOverItsWindow(t *testing.T) {
	clk := newClock()
	m := New(breakerConfig(Breaker{ID: "b", Match: Match{Tools: []string{"flaky"}}, MinCalls: 10, FailureRatio: 0.5, Window: Duration(time.Minute)}), Options{Clock: clk.now})
	a := tool("", "flaky")
	for i := range 20 {
		ok := i%3 != 0 // a third fail
		call(m, clk.now(), a, &ok)
	}
	if st := m.Breakers()[0]; st.State != Closed || st.Key != "tool:flaky" {
		t.Fatalf("a third failing opened it: %+v", st)
	}
	for range 3 {
		call(m, clk.now(), a, &no) // 10 of 23: still under half
	}
	if st := m.Breakers()[0]; st.State != Closed || st.Calls != 23 || st.Failures != 10 {
		t.Fatalf("under the ratio: %+v", st)
	}
	clk.add(2 * time.Minute) // all of that ages out
	call(m, clk.now(), a, &no)
	if st := m.Breakers()[0]; st.State != Closed || st.Calls != 1 {
		t.Fatalf("old failures still counted: %+v", st)
	}
}

// A probe lent to a call that a later stage then denied is given back: the
// circuit does not wait for an outcome that will never come.
func TestProbeOfADeniedCallIsGivenBack(t *testing.T) {
	clk := newClock()
	m := New(breakerConfig(Breaker{ID: "b", Match: Match{Models: []string{"gpt-*"}}, MinCalls: 1, OpenFor: Duration(time.Second)}), Options{Clock: clk.now})
	a := action.Action{Agent: action.Agent{ID: "a1"}, Point: action.PreModelCall, Model: "gpt-4o"}
	call(m, clk.now(), a, &no)
	if m.Breakers()[0].State != Open || m.Breakers()[0].Key != "model:gpt-4o" {
		t.Fatalf("%+v", m.Breakers())
	}
	clk.add(2 * time.Second)
	id := nextID()
	if _, r := m.Admit(id, action.CallOf(&a), clk.now()); r != "" {
		t.Fatal(r)
	}
	m.Decided(id, action.CallOf(&a), action.Deny, clk.now())
	if _, r, _ := call(m, clk.now(), a, &yes); r != "" {
		t.Fatalf("the probe slot was not given back: %s", r)
	}
	if m.Breakers()[0].State != Closed {
		t.Fatalf("%+v", m.Breakers())
	}
}

// A probe whose outcome never comes holds its slot for open_for, then the
// circuit lends it again.
func TestLostProbeIsLentAgain(t *testing.T) {
	clk := newClock()
	m := New(breakerConfig(Breaker{ID: "b", Match: Match{Tools: []string{"*"}}, MinCalls: 1, OpenFor: Duration(10 * time.Second)}), Options{Clock: clk.now})
	a := tool("s", "t")
	call(m, clk.now(), a, &no)
	clk.add(11 * time.Second)
	if _, r, _ := call(m, clk.now(), a, nil); r != "" { // lost
		t.Fatal(r)
	}
	if _, r, _ := call(m, clk.now(), a, nil); r == "" {
		t.Fatal("a second probe lent")
	}
	clk.add(11 * time.Second)
	if _, r, _ := call(m, clk.now(), a, &yes); r != "" {
		t.Fatalf("the lost probe's slot was never lent again: %s", r)
	}
	if m.Breakers()[0].State != Closed {
		t.Fatal("not closed")
	}
}

// Only calls about to be made are gated: a post_tool_call decision (the
// result of a call already made) passes an open circuit.
func TestOnlyCallsAboutToBeMadeAreGated(t *testing.T) {
	clk := newClock()
	m := New(breakerConfig(Breaker{ID: "b", Match: Match{Tools: []string{"*"}}, MinCalls: 1}), Options{Clock: clk.now})
	a := tool("s", "t")
	call(m, clk.now(), a, &no)
	post := a
	post.Point = action.PostToolCall
	if _, r := m.Admit(nextID(), action.CallOf(&post), clk.now()); r != "" {
		t.Fatalf("post_tool_call refused: %s", r)
	}
}

// An agent naming tool after tool cannot make circuits without bound.
func TestCircuitsAreBounded(t *testing.T) {
	clk := newClock()
	m := New(breakerConfig(Breaker{ID: "b", Match: Match{Tools: []string{"*"}}}), Options{Clock: clk.now})
	for i := range MaxCircuits + 50 {
		a := tool("s", "t"+strings.Repeat("x", i%7)+string(rune('a'+i%26))+time.Duration(i).String())
		call(m, clk.now(), a, &yes)
	}
	if n := len(m.Breakers()); n != MaxCircuits {
		t.Fatalf("%d circuits", n)
	}
}

// Concurrent calls, outcomes and reads race on nothing (run with -race).
func TestMonitorIsSafeForConcurrentUse(t *testing.T) {
	clk := newClock()
	cfg := Config{SLOs: []SLO{{ID: "s", SLI: SLISuccess, Target: 0.9}}, Breakers: []Breaker{{ID: "b", Match: Match{Tools: []string{"*"}}, MinCalls: 5, OpenFor: Duration(time.Second)}}}
	cfg.Fill()
	m := New(cfg, Options{Clock: clk.now})
	now := clk.now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				mu.Lock()
				id := nextID()
				mu.Unlock()
				a := tool("s", "t")
				if _, r := m.Admit(id, action.CallOf(&a), now.Add(time.Duration(i)*10*time.Millisecond)); r != "" {
					continue
				}
				m.Decided(id, action.CallOf(&a), action.Allow, now)
				st := "ok"
				if (i+g)%2 == 0 {
					st = "error"
				}
				m.Outcome(id, &action.Outcome{Status: st}, now.Add(time.Duration(i)*10*time.Millisecond))
				if i%100 == 0 {
					m.SLOs()
					m.Breakers()
				}
			}
		}()
	}
	wg.Wait()
	drain(m)
}
