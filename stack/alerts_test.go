package stack

import (
	"strings"
	"testing"

	"github.com/agentgov/agentgov/govern"
)

// Every source DESIGN §10 names raises an alert of its kind, with a dedupe
// key that tells one occurrence from another.
func TestNoticesRaiseTheAlertsOfTheirKind(t *testing.T) {
	for _, c := range []struct {
		n         govern.Notice
		kind, key string
	}{
		{govern.Notice{Kind: "kill", Fields: map[string]any{"switch": "ks-1"}}, "kill", "kill:ks-1"},
		{govern.Notice{Kind: "budget_soft", Fields: map[string]any{"budget": "b"}}, "budget_soft", "budget_soft:b"},
		{govern.Notice{Kind: "budget_hard", Fields: map[string]any{"budget": "b"}}, "budget_hard", "budget_hard:b"},
		{govern.Notice{Kind: "breaker_open", Fields: map[string]any{"breaker": "up", "key": "fs"}}, "breaker_open", "breaker_open:up fs"},
		{govern.Notice{Kind: "slo_burn", Fields: map[string]any{"slo": "s"}}, "slo_burn", "slo_burn:s"},
		{govern.Notice{Kind: "trust_drop", Agent: "a1", Fields: map[string]any{"to_tier": "probationary"}}, "trust_drop", "trust_drop:a1 probationary"},
		{govern.Notice{Kind: "drift", Fields: map[string]any{"server": "fs", "tool": "echo", "fingerprint": "f1"}}, "drift", "drift:fs echo f1"},
		{govern.Notice{Kind: "quarantine", Fields: map[string]any{"server": "fs", "tool": "echo", "fingerprint": "f1"}}, "quarantine", "quarantine:fs echo f1"},
	} {
		a, ok := alertOf(c.n)
		if !ok || a.Kind != c.kind || a.DedupeKey != c.key || a.Severity == "" {
			t.Errorf("%s: alert %+v (raised %v), want kind %s key %q", c.n.Kind, a, ok, c.kind, c.key)
		}
	}
	if a, ok := alertOf(govern.Notice{Kind: "trust_drop", Agent: "a1"}); !ok || !strings.Contains(a.Details["agent"].(string), "a1") {
		t.Errorf("a trust drop's alert does not name the agent: %+v", a)
	}
	if _, ok := alertOf(govern.Notice{Kind: "policy_load"}); ok {
		t.Error("a policy load raised an alert")
	}
}
