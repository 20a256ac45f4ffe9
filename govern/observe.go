package govern

import (
	"context"
	"time"

	"github.com/agentgov/agentgov/action"
)

// Observer is told of every decision and outcome, for metrics. Its methods
// run on the decision path, after the decision is made: they must be
// cheap, and must not keep the pointers they are given.
type Observer interface {
	// Decided is called once per decision. entry is where it was asked
	// for: "api", "mcp_gateway", "a2a_gateway", "model_proxy" or "library".
	Decided(entry string, a *action.Action, d *action.Decision, t *StageTimes)
	// OutcomeRecorded is called once per outcome recorded.
	OutcomeRecorded(o *action.Outcome)
}

// WithObserver reports every decision and outcome to o.
func WithObserver(o Observer) Option { return func(e *Engine) { e.obs = o } }

// Stage is a stage of the decision pipeline, as StageTimes times it.
type Stage int

// The stages, in pipeline order.
const (
	StageKill        Stage = iota // kill switches
	StageSession                  // session state
	StageBudgetState              // the budget state policies read
	StagePolicy                   // policy rules and rate limits
	StageBudget                   // budget reservation
	StageApproval                 // opening or redeeming a ticket
	StageAudit                    // the durable audit append
	NumStages
)

var stageNames = [NumStages]string{"kill_switch", "session", "budget_state", "policy", "budget", "approval", "audit"}

func (s Stage) String() string { return stageNames[s] }

// StageTimes is how long one decision took, and each of its stages. Ran
// says which stages were timed: a stage that did not run has no time, not
// a zero one. Reading the clock costs about as much as the stages that
// work in memory, so stages are timed on one decision in StageSample;
// Total is timed on every one.
type StageTimes struct {
	Total time.Duration
	Stage [NumStages]time.Duration
	Ran   [NumStages]bool
}

// StageSample is how many decisions there are for each one whose stages
// are timed.
const StageSample = 16

// stopwatch times a decision, and the stages of a sample of decisions,
// when there is an observer to tell; otherwise it reads no clock.
type stopwatch struct {
	on     bool // time the whole decision
	stages bool // and each stage of it
	start  time.Time
	last   time.Time
	t      StageTimes
}

func (e *Engine) stopwatch() stopwatch {
	if e.obs == nil {
		return stopwatch{}
	}
	now := time.Now()
	return stopwatch{on: true, stages: (e.sampled.Add(1)-1)%StageSample == 0, start: now, last: now}
}

// lap ends stage s: the time since the last lap is its.
func (w *stopwatch) lap(s Stage) {
	if !w.stages {
		return
	}
	now := time.Now()
	w.t.Stage[s] += now.Sub(w.last)
	w.t.Ran[s] = true
	w.last = now
}

func (w *stopwatch) done() *StageTimes {
	if w.stages {
		w.t.Total = w.last.Sub(w.start) // the last lap read the clock
	} else {
		w.t.Total = time.Since(w.start)
	}
	return &w.t
}

// entryOf names where a decision was asked for: the enforcement point that
// marked the context, else the HTTP API (the server marks nothing) or, for
// an engine without an audit log, the library.
func (e *Engine) entryOf(ctx context.Context) string {
	switch en := action.EnforcerOf(ctx); en {
	case "mcp_gateway", "a2a_gateway", "model_proxy":
		return en
	case "":
		if e.audit == nil {
			return "library"
		}
		return "api"
	}
	return "other"
}
