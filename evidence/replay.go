package evidence

import (
	"encoding/json"
	"slices"
	"strings"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/policy"
)

// Change is one decision that a policy set would decide otherwise.
type Change struct {
	ID    string        `json:"id"`
	Index uint64        `json:"index"`
	Agent string        `json:"agent"`
	Old   action.Effect `json:"old"`
	New   action.Effect `json:"new"`
	// Rules are the rules of the new set that decided (empty when a
	// document's default did).
	Rules []string `json:"rules"`
	// Masked says that the recorded action had values masked or redacted,
	// so the new set decided on the masked text, not what the agent sent.
	Masked bool `json:"masked,omitempty"`
}

// ReplayResult is what Replay found.
type ReplayResult struct {
	// Total counts the decisions re-decided.
	Total   int `json:"total"`
	Changed int `json:"changed"`
	// Skipped counts decisions that policy never decided (a kill switch,
	// session state or an invalid action came first), which no policy
	// set would change.
	Skipped int `json:"skipped"`
	// Masked counts the re-decided decisions whose recorded action had
	// masked or redacted values.
	Masked int `json:"masked"`
	// Unsigned counts the decisions read that are newer than their log's
	// latest signed checkpoint; the caller fills it in.
	Unsigned  int      `json:"unsigned"`
	Decisions []Change `json:"decisions"`
}

// Replay re-decides the policy stage of each decision under set, offline,
// and lists those whose effect would change. The old effect is what the
// policy rules said (the record's policy_effect), before rate limits,
// budgets and approvals, which are state of their moment and are not
// re-decided. Each decision is evaluated at the time it was made, with
// the anomaly reading it recorded; trust and budget state, not recorded,
// are those of an agent with no history.
// tier gives a model's catalogue tier (nil: none).
func Replay(ds []Decision, set *policy.Set, tier func(model string) string) ReplayResult {
	res := ReplayResult{Decisions: []Change{}}
	for i := range ds {
		d := &ds[i]
		if d.PolicyEffect == "" {
			res.Skipped++
			continue
		}
		res.Total++
		a := d.Action
		env := policy.Env{Now: d.Time}
		if an := d.Anomaly; an != nil {
			env.Anomaly = policy.Anomaly{RateZ: an.RateZ, NewTool: an.NewTool, Entropy: an.Entropy, EntropyOutOfBand: an.EntropyOutOfBand, Warm: an.Warm}
		}
		if tier != nil && a.Model != "" {
			env.ModelTier = tier(a.Model)
		}
		r := set.Evaluate(&a, env)
		m := masked(&d.Action)
		if m {
			res.Masked++
		}
		if r.Effect == d.PolicyEffect {
			continue
		}
		res.Changed++
		res.Decisions = append(res.Decisions, Change{
			ID: d.Decision.ID.String(), Index: d.Index, Agent: a.Agent.ID,
			Old: d.PolicyEffect, New: r.Effect, Rules: slices.Clone(r.Rules), Masked: m,
		})
		if res.Decisions[len(res.Decisions)-1].Rules == nil {
			res.Decisions[len(res.Decisions)-1].Rules = []string{}
		}
	}
	return res
}

// masked reports whether a recorded action carries the marks that masking
// (detected secrets and personal data) or a redact obligation left.
func masked(a *action.Action) bool {
	b, err := json.Marshal(a)
	if err != nil {
		return true
	}
	return strings.Contains(string(b), "[REDACTED")
}
