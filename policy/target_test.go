package policy

import (
	"strings"
	"testing"
)

// A policy reads the agent a message goes to as `target`, so that one
// target can ask more of its callers than another.
func TestTargetInConditions(t *testing.T) {
	s := mustSet(t, `
version: agentgov/v1
name: a2a
default: allow
rules:
  - id: payments-need-trusted-targets
    match: {points: [pre_agent_message]}
    when: 'target.labels.domain == "payments" && !(target.trust in ["trusted", "verified"])'
    effect: deny
  - id: no-secrets-back
    match: {points: [post_agent_message]}
    when: 'target.id == "billing" && content.contains("sk_live_")'
    effect: deny
`)
	runCases(t, s, []evalCase{
		{name: "untrusted payments target", effect: "deny", rules: []string{"payments-need-trusted-targets"},
			action: `{"agent":{"id":"a"},"point":"pre_agent_message","target":{"id":"billing","trust":"standard","labels":{"domain":"payments"}},"content":"pay"}`},
		{name: "trusted payments target", effect: "allow",
			action: `{"agent":{"id":"a"},"point":"pre_agent_message","target":{"id":"billing","trust":"trusted","labels":{"domain":"payments"}},"content":"pay"}`},
		{name: "reply with a secret", effect: "deny", rules: []string{"no-secrets-back"},
			action: `{"agent":{"id":"a"},"point":"post_agent_message","target":{"id":"billing"},"content":"key sk_live_123"}`},
		{name: "no labels reads as empty", effect: "allow",
			action: `{"agent":{"id":"a"},"point":"pre_agent_message","target":{"id":"other"},"content":"hi"}`},
	})
}

// A typo in a field of target is a load error, not a rule that never fires.
func TestTargetFieldsChecked(t *testing.T) {
	d, err := Parse("t.yaml", []byte(`
version: agentgov/v1
name: typo
rules:
  - id: r
    when: 'target.idd == "x"'
    effect: deny
`))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Compile([]*Document{d})
	if err == nil || !strings.Contains(err.Error(), "idd") {
		t.Fatalf("compile = %v, want an error naming target.idd", err)
	}
}
