package policy

import (
	"slices"

	"github.com/agentgov/agentgov/action"
)

// Covers reports whether the scope governs the action. An empty field
// matches every action; a listed one must contain the action's value.
func (s *Scope) Covers(a *action.Action) bool {
	if len(s.AgentTypes) > 0 && !slices.Contains(s.AgentTypes, a.Agent.Type) {
		return false
	}
	if len(s.Environments) > 0 && !slices.Contains(s.Environments, a.Agent.Labels["env"]) {
		return false
	}
	if len(s.Agents) > 0 && !anyGlob(s.Agents, a.Agent.ID) {
		return false
	}
	if len(s.Users) > 0 && !slices.Contains(s.Users, a.Principal.User) {
		return false
	}
	if len(s.Teams) > 0 && !slices.Contains(s.Teams, a.Principal.Team) {
		return false
	}
	if len(s.Orgs) > 0 && !slices.Contains(s.Orgs, a.Principal.Org) {
		return false
	}
	return true
}

// matches checks every match field. Rules reached through the exact
// tool-name index skip the tool check (checkTools false): the index lookup
// already was that check.
func (m *compiledMatch) matches(a *action.Action) bool { return m.matchesFrom(a, true) }

func (m *compiledMatch) matchesFrom(a *action.Action, checkTools bool) bool {
	if m.points != 0 {
		i := a.PointOrDefault().Index()
		if i < 0 || m.points&(1<<i) == 0 {
			return false
		}
	}
	if checkTools && len(m.tools) > 0 {
		ok := false
		for _, t := range m.tools {
			if t.matches(a.Tool.Server, a.Tool.Name) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	if len(m.agents) > 0 && !anyGlob(m.agents, a.Agent.ID) {
		return false
	}
	if len(m.agentTypes) > 0 && !slices.Contains(m.agentTypes, a.Agent.Type) {
		return false
	}
	// An action without a destination never matches a destinations list,
	// not even "*" (DESIGN §3).
	if len(m.destinations) > 0 && (a.Destination == "" || !anyGlob(m.destinations, a.Destination)) {
		return false
	}
	if len(m.models) > 0 && (a.Model == "" || !anyGlob(m.models, a.Model)) {
		return false
	}
	return true
}
