package govern

import (
	"context"

	"github.com/agentgov/agentgov/action"
)

// Tracer starts a trace span for each decision the engine's stages make,
// joined to the caller's W3C traceparent when it sent one; the telemetry
// package's OpenTelemetry tracer is one. The engine knows nothing of
// OpenTelemetry.
type Tracer interface {
	StartDecision(ctx context.Context, traceparent string) DecisionSpan
}

// DecisionSpan ends a decision's span with what was decided; t, when not
// nil, has the time of each stage that was timed.
type DecisionSpan interface {
	End(entry string, a *action.Action, d *action.Decision, t *StageTimes)
}

// WithTracer traces every decision made through the engine's stages.
func WithTracer(t Tracer) Option { return func(e *Engine) { e.tracer = t } }

// startSpan starts the span of a decision, if the engine traces.
func (e *Engine) startSpan(ctx context.Context) DecisionSpan {
	if e.tracer == nil {
		return nil
	}
	tp := ""
	if t := traceFrom(ctx); t != nil {
		tp = t.TraceParent
	}
	return e.tracer.StartDecision(ctx, tp)
}
