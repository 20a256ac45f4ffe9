package govern

import (
	"context"
	"time"

	"github.com/agentgov/agentgov/action"
)

// Reliability keeps the SLIs and circuit breakers fed by decisions and
// outcomes; *sre.Monitor is one. Its methods run on the decision path and
// must be cheap.
type Reliability interface {
	// Admit is asked before policy, for every valid action: a non-empty
	// refusal (an open circuit) denies it. state is what policies see as
	// breaker.state.
	Admit(id action.ID, c action.Call, now time.Time) (state, refusal string)
	// Decided is told every decision once it is final (recorded, or
	// withdrawn because it could not be).
	Decided(id action.ID, c action.Call, effect action.Effect, now time.Time)
	// Outcome is told every outcome recorded.
	Outcome(id action.ID, o *action.Outcome, now time.Time)
}

// WithReliability has every decision and outcome counted by r, and every
// action refused while a circuit that guards it is open.
func WithReliability(r Reliability) Option { return func(e *Engine) { e.rel = r } }

// reliabilityOutcome tells the breakers and SLIs of an outcome recorded.
func (e *Engine) reliabilityOutcome(_ context.Context, id action.ID, o *action.Outcome) {
	if e.rel != nil {
		e.rel.Outcome(id, o, e.clock())
	}
}
