package sre

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/agentgov/agentgov/action"
)

func kindsOf(inc Incident) string {
	var ks []string
	for _, e := range inc.Timeline {
		ks = append(ks, e.Kind)
	}
	return strings.Join(ks, " ")
}

// A circuit that opens opens an incident whose timeline holds the failed
// calls that tripped it (their decisions), the calls refused while open,
// and the circuit's later changes; it stays open, through a second trip,
// until an admin closes it, in the audit log; the next trip opens another.
func TestBreakerTripOpensAnIncidentWithItsDecisions(t *testing.T) {
	clk := newClock()
	sink := &auditSink{}
	incs := NewIncidents(clk.now, sink, nil)
	m := New(breakerConfig(Breaker{ID: "gh", Match: Match{Servers: []string{"github"}}, MinCalls: 2, OpenFor: Duration(10 * time.Second)}),
		Options{Clock: clk.now, Audit: sink, Incidents: incs})
	gh := tool("github", "create_issue")
	var failedIDs []string
	for range 2 {
		id := nextID()
		a := gh
		m.Admit(id, action.CallOf(&a), clk.now())
		m.Decided(id, action.CallOf(&a), action.Allow, clk.now())
		m.Outcome(id, &action.Outcome{Status: "error", Error: "502 bad gateway"}, clk.now())
		failedIDs = append(failedIDs, id.String())
	}
	drain(m) // the monitor's loop opens the incident
	_, _, refused := call(m, clk.now(), gh, nil)
	list := incs.List("open")
	if len(list) != 1 {
		t.Fatalf("open incidents %+v", list)
	}
	inc := list[0]
	if inc.Kind != "breaker" || inc.Subject != "gh server:github" || inc.Severity != "high" || !strings.HasPrefix(inc.ID, "inc_") {
		t.Fatalf("incident %+v", inc)
	}
	if got := kindsOf(inc); got != "opened: breaker_open outcome outcome decision" {
		t.Fatalf("timeline %q", got)
	}
	if inc.Timeline[1].Decision != failedIDs[0] || inc.Timeline[2].Decision != failedIDs[1] || !strings.Contains(inc.Timeline[2].Message, "502 bad gateway") {
		t.Fatalf("failures in the timeline: %+v", inc.Timeline)
	}
	if inc.Timeline[3].Decision != refused.String() {
		t.Fatalf("the refused decision: %+v", inc.Timeline[3])
	}

	// Half-open, a failed probe, open again: the same incident.
	clk.add(11 * time.Second)
	call(m, clk.now(), gh, &no)
	drain(m)
	if list := incs.List(""); len(list) != 1 {
		t.Fatalf("a second trip opened another incident: %d", len(list))
	}
	inc, _ = incs.Get(inc.ID)
	if got := kindsOf(inc); !strings.HasSuffix(got, "breaker_half_open breaker_open outcome") {
		t.Fatalf("timeline %q", got)
	}

	closed, err := incs.Close(context.Background(), inc.ID, "ops", "upstream fixed")
	if err != nil || closed.Status != "closed" || closed.ClosedBy != "ops" || closed.ClosedAt == nil {
		t.Fatalf("close: %+v %v", closed, err)
	}
	if _, err := incs.Close(context.Background(), inc.ID, "ops", ""); !errors.Is(err, ErrIncidentClosed) {
		t.Fatalf("closing twice: %v", err)
	}
	if _, err := incs.Close(context.Background(), "inc_nope", "ops", ""); !errors.Is(err, ErrNoIncident) {
		t.Fatalf("closing an unknown incident: %v", err)
	}
	var audited []string
	for _, e := range sink.incidents() {
		audited = append(audited, e)
	}
	if strings.Join(audited, " ") != "opened closed" {
		t.Fatalf("audited %v", audited)
	}

	clk.add(11 * time.Second)
	call(m, clk.now(), gh, &no) // the probe fails again
	drain(m)
	if open := incs.List("open"); len(open) != 1 || open[0].ID == inc.ID {
		t.Fatalf("a trip after closing: %+v", open)
	}
}

// An SLO that starts paging opens a critical incident listing its last bad
// decisions; recovering adds to its timeline.
func TestSLOPageOpensAnIncident(t *testing.T) {
	clk := newClock()
	incs := NewIncidents(clk.now, nil, nil)
	m := New(sloConfig(successSLO("s", 0.99)), Options{Clock: clk.now, Incidents: incs})
	steady(m, clk, time.Hour, 10, 0)
	m.Evaluate(context.Background())
	if len(incs.List("")) != 0 {
		t.Fatal("an incident without a page")
	}
	steady(m, clk, 10*time.Minute, 10, 10)
	m.Evaluate(context.Background())
	open := incs.List("open")
	if len(open) != 1 || open[0].Kind != "slo" || open[0].Severity != "critical" || open[0].Subject != "s" {
		t.Fatalf("incidents %+v", open)
	}
	if got := kindsOf(open[0]); got != "opened: slo_burn"+strings.Repeat(" decision", recentFailures) {
		t.Fatalf("timeline %q", got)
	}
	steady(m, clk, 40*time.Minute, 10, 0) // past the 30m short window of the 6h page
	m.Evaluate(context.Background())
	inc, _ := incs.Get(open[0].ID)
	if inc.Status != "open" || !strings.HasSuffix(kindsOf(inc), "slo_recovered") {
		t.Fatalf("after recovery: %s %q", inc.Status, kindsOf(inc))
	}
}

// A timeline and the list stay bounded whatever happens.
func TestIncidentsAreBounded(t *testing.T) {
	clk := newClock()
	incs := NewIncidents(clk.now, nil, nil)
	ev := Entry{At: clk.now(), Kind: "x", Message: "m"}
	incs.Raise(context.Background(), "kill", "ks_1", "t", "critical", true, ev)
	for range MaxTimeline + 50 {
		incs.Relate("kill", "ks_1", Entry{Kind: "decision"})
	}
	inc := incs.List("")[0]
	if len(inc.Timeline) != MaxTimeline || inc.Dropped != 51 || inc.Timeline[0].Kind != "opened: x" {
		t.Fatalf("timeline %d dropped %d first %q", len(inc.Timeline), inc.Dropped, inc.Timeline[0].Kind)
	}
	for i := range MaxIncidents + 10 {
		id := string(rune('a'+i%26)) + time.Duration(i).String()
		incs.Raise(context.Background(), "kill", id, "t", "critical", true, ev)
		incs.Close(context.Background(), incs.List("open")[0].ID, "ops", "")
	}
	if n := len(incs.List("")); n > MaxIncidents {
		t.Fatalf("%d incidents kept", n)
	}
}
