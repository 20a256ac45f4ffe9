package evidence

import (
	"context"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/audit"
)

// Penalties are what a denial costs an episode, by the severity of the
// decision; a denial with none (a default deny, a rate limit) costs Low.
type Penalties struct {
	Low, Medium, High, Critical float64
}

func (p Penalties) of(s action.Severity) float64 {
	switch s {
	case action.SeverityMedium:
		return p.Medium
	case action.SeverityHigh:
		return p.High
	case action.SeverityCritical:
		return p.Critical
	}
	return p.Low
}

// Violation is one denied decision of an episode and its penalty.
type Violation struct {
	Decision string          `json:"decision"`
	Rule     string          `json:"rule,omitempty"`
	Severity action.Severity `json:"severity,omitempty"`
	Penalty  float64         `json:"penalty"`
}

// Reward is the reinforcement-learning reward of one session: the sum of
// the penalties of its denied decisions.
type Reward struct {
	Session    string      `json:"session"`
	Reward     float64     `json:"reward"`
	Decisions  int         `json:"decisions"`
	Violations []Violation `json:"violations"`
}

// SessionReward scores the session from its audited decisions. A session
// with no decision in the log scores 0 with Decisions 0, so that a caller
// can tell an unknown episode from a clean one.
// Session ids are an agent's own, so the agent is named too.
func SessionReward(ctx context.Context, src Entries, agent, session string, p Penalties) (Reward, error) {
	r := Reward{Session: session, Violations: []Violation{}}
	err := Walk(ctx, src, func(e audit.Entry) error {
		if e.Kind != "decision" {
			return nil
		}
		d, err := ParseDecision(e)
		if err != nil {
			return err
		}
		if d.Action.Session != session || d.Action.Agent.ID != agent {
			return nil
		}
		r.Decisions++
		if d.Decision.Effect != action.Deny {
			return nil
		}
		v := Violation{Decision: d.Decision.ID.String(), Severity: d.Decision.Severity, Penalty: p.of(d.Decision.Severity)}
		if len(d.Decision.Rules) > 0 {
			v.Rule = d.Decision.Rules[0]
		}
		r.Violations = append(r.Violations, v)
		r.Reward += v.Penalty
		return nil
	})
	return r, err
}
