package policy

import "github.com/agentgov/agentgov/action"

var emptyList = []any{}

// delegationView is agent.delegation in CEL: the chain, outermost first,
// each link a map of agent, delegate, tools, points, destinations,
// expires_at (a timestamp) and max_depth.
func delegationView(chain []action.Delegation) []any {
	if len(chain) == 0 {
		return emptyList
	}
	out := make([]any, len(chain))
	for i, d := range chain {
		points := make([]string, len(d.Points))
		for j, p := range d.Points {
			points[j] = string(p)
		}
		out[i] = map[string]any{
			"id": d.ID, "agent": d.Agent, "delegate": d.Delegate,
			"tools": strs(d.Tools), "points": points, "destinations": strs(d.Destinations),
			"expires_at": d.ExpiresAt, "max_depth": int64(d.MaxDepth),
		}
	}
	return out
}

func strs(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
