package govern

import (
	"context"
	"strings"
	"time"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/anomaly"
	"github.com/agentgov/agentgov/killswitch"
	"github.com/agentgov/agentgov/policy"
	"github.com/agentgov/agentgov/trust"
)

// AnomalyDetector compares each agent with its own history;
// *anomaly.Detector is one. Observe runs on the decision path, for every
// valid action, and must be cheap.
type AnomalyDetector interface {
	// Observe reads the agent of c and counts the call.
	Observe(c action.Call, now time.Time) anomaly.Reading
	// Learn is told that the agent was allowed to use the tool of c.
	Learn(c action.Call)
}

// WithAnomaly has every action's agent compared with its own history
// before the policy rules: rules read the findings as `anomaly`, the
// responses configured for each kind apply (flag, approval, isolate), and
// each episode lowers the agent's trust score when trust is kept.
func WithAnomaly(d AnomalyDetector) Option { return func(e *Engine) { e.anom = d } }

// anomalyView is what policies see of a reading.
func anomalyView(r *anomaly.Reading) policy.Anomaly {
	return policy.Anomaly{RateZ: r.RateZ, NewTool: r.NewTool, Entropy: r.Entropy, EntropyOutOfBand: r.OutOfBand, Warm: r.Warm}
}

// anomalyResponds applies the responses that change an allowed decision:
// approval turns it into require_approval naming the anomalies, flag
// marks it flagged. A policy's deny or approval stands as it is.
func anomalyResponds(a *action.Action, d *action.Decision, r *anomaly.Reading) {
	if d.Effect != action.Allow {
		return
	}
	if r.Flag != 0 {
		d.Flagged = true
	}
	if r.Ask == 0 {
		return
	}
	c := action.CallOf(a)
	rules := make([]string, 0, 3)
	reasons := make([]string, 0, 3)
	for _, k := range anomaly.AllKinds {
		if r.Ask.Has(k) {
			rules = append(rules, "anomaly."+k.String())
			reasons = append(reasons, r.Reason(k, c))
		}
	}
	d.Effect, d.Rules, d.Reasons = action.RequireApproval, rules, reasons
}

// anomalyIsolate engages the kill switch on the agent for the anomalies
// whose response is isolate, and denies the action. Without a kill switch,
// or if it cannot be engaged, the action is denied all the same.
func (e *Engine) anomalyIsolate(ctx context.Context, a *action.Action, d *action.Decision, r *anomaly.Reading) {
	c := action.CallOf(a)
	var why []string
	for _, k := range anomaly.AllKinds {
		if r.Isolate.Has(k) {
			why = append(why, r.Reason(k, c))
		}
	}
	reason := strings.Join(why, "; ")
	switch {
	case e.kill == nil:
		deny(d, reason+": the agent is to be isolated, but there is no kill switch")
	case e.engage(ctx, d, killswitch.Switch{Scope: killswitch.Agent, Target: a.Agent.ID, By: "anomaly",
		Reason: "isolated after decision " + d.ID.String() + ": " + reason}) != nil:
		deny(d, reason+": the agent is to be isolated, and the kill switch could not be engaged")
	default:
		deny(d, reason+": agent "+a.Agent.ID+" isolated by the kill switch")
	}
}

// anomalyAfter acts on a reading once its decision is final: the tool of
// an allowed call is learned, each episode that started lowers the
// agent's trust, and those whose response is flag are recorded as an
// "anomaly" audit entry and told as a notice (an alert of kind anomaly).
func (e *Engine) anomalyAfter(ctx context.Context, a *action.Action, d *action.Decision, r *anomaly.Reading) {
	c := action.CallOf(a)
	if r.Unknown && d.Effect == action.Allow {
		e.anom.Learn(c)
	}
	if r.Fired == 0 {
		return
	}
	for _, k := range anomaly.AllKinds {
		if !r.Fired.Has(k) {
			continue
		}
		reason := r.Reason(k, c)
		if e.trust != nil {
			e.trust.Observe(trust.Signal{Agent: c.Agent, Kind: trust.KindAnomaly, Anomaly: k.String(), Decision: d.ID.String(), Detail: reason})
		}
		if !r.Flag.Has(k) {
			continue
		}
		fields := anomalyFields(k, c, r)
		err := e.Change(ctx, "anomaly", func(ctx context.Context, record func(context.Context, any) error) error {
			rec := map[string]any{"agent": c.Agent, "decision": d.ID, "effect": d.Effect, "message": reason}
			for key, v := range fields {
				rec[key] = v
			}
			return record(ctx, rec)
		})
		if err != nil {
			e.emit(ctx, Notice{Kind: "store_failed", Decision: d.ID, Agent: c.Agent, Message: "anomaly could not be recorded: " + err.Error()})
			continue
		}
		e.emit(ctx, Notice{Kind: "anomaly", Decision: d.ID, Agent: c.Agent, Severity: action.SeverityMedium, Message: reason, Fields: fields})
	}
}

// anomalyFields are the particulars of an anomaly of kind k.
func anomalyFields(k anomaly.Kind, c action.Call, r *anomaly.Reading) map[string]any {
	f := map[string]any{"anomaly": k.String()}
	switch k {
	case anomaly.RateZ:
		f["rate_z"], f["count"], f["mean"], f["std"], f["threshold"] = r.RateZ, r.Count, r.Mean, r.Std, r.Threshold
	case anomaly.NewTool:
		f["tool"], f["server"] = c.Tool, c.Server
	case anomaly.Entropy:
		f["entropy"], f["entropy_low"], f["entropy_high"] = r.Entropy, r.Low, r.High
	}
	return f
}
