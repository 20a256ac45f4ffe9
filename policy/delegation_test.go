package policy

import (
	"testing"

	"github.com/agentgov/agentgov/action"
)

// Policies see the delegation chain an agent acts under, outermost first,
// so that a rule can ask who handed the agent its powers.
func TestConditionsReadTheDelegationChain(t *testing.T) {
	s := mustSet(t, `
version: agentgov/v1
name: delegation
default: allow
rules:
  - id: no-deep-chains
    when: 'size(agent.delegation) > 1'
    effect: deny
  - id: only-from-planner
    when: 'size(agent.delegation) == 1 && agent.delegation[0].agent != "planner"'
    effect: deny
  - id: short-lived
    when: 'agent.delegation.exists(d, d.expires_at > now + duration("1h"))'
    effect: require_approval
`)
	runCases(t, s, []evalCase{
		{"no delegation", `{"agent":{"id":"w"},"tool":{"name":"t"}}`, action.Allow, nil, false},
		{"delegated by the planner", `{"agent":{"id":"w","delegation":[{"id":"d1","agent":"planner","delegate":"w","expires_at":"2026-11-23T12:30:00Z","max_depth":0}]},"tool":{"name":"t"}}`, action.Allow, nil, false},
		{"delegated by another", `{"agent":{"id":"w","delegation":[{"id":"d1","agent":"rogue","delegate":"w","expires_at":"2026-11-23T12:30:00Z","max_depth":0}]},"tool":{"name":"t"}}`, action.Deny, []string{"only-from-planner"}, false},
		{"long-lived delegation", `{"agent":{"id":"w","delegation":[{"id":"d1","agent":"planner","delegate":"w","expires_at":"2026-11-24T12:30:00Z","max_depth":0}]},"tool":{"name":"t"}}`, action.RequireApproval, []string{"short-lived"}, false},
		{"depth two", `{"agent":{"id":"w","delegation":[{"id":"d1","agent":"planner","delegate":"m","expires_at":"2026-11-23T12:30:00Z","max_depth":1},{"id":"d2","agent":"m","delegate":"w","expires_at":"2026-11-23T12:20:00Z","max_depth":0}]},"tool":{"name":"t"}}`, action.Deny, []string{"no-deep-chains"}, false},
	})
}
