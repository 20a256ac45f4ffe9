package policy

import (
	"strings"
	"testing"

	"github.com/agentgov/agentgov/action"
)

const anomalyPolicy = `
version: agentgov/v1
name: anomalies
default: allow
rules:
  - id: new-tools-need-approval
    when: anomaly.new_tool
    effect: require_approval
  - id: bursts
    when: anomaly.rate_z > 6.5
    effect: deny
  - id: odd-mix
    when: anomaly.entropy_out_of_band && anomaly.entropy < 0.5
    effect: deny
  - id: cold
    match: {tools: ["payments/*"]}
    when: '!anomaly.warm'
    effect: deny
`

// Rules read what the detector found for the agent from the Env.
func TestAnomalyVariable(t *testing.T) {
	s := mustSet(t, anomalyPolicy)
	a := decode(t, `{"agent":{"id":"a1"},"tool":{"name":"read_file"}}`)
	pay := decode(t, `{"agent":{"id":"a1"},"tool":{"server":"payments","name":"send"}}`)
	warm := Anomaly{Warm: true, RateZ: 1.2, Entropy: 2.3}
	for _, tc := range []struct {
		name   string
		a      *action.Action
		an     Anomaly
		effect action.Effect
		rule   string
	}{
		{"nothing found", &a, warm, action.Allow, ""},
		{"new tool", &a, Anomaly{Warm: true, NewTool: true}, action.RequireApproval, "new-tools-need-approval"},
		{"a burst under the rule's bar", &a, Anomaly{Warm: true, RateZ: 6.5}, action.Allow, ""},
		{"a burst over it", &a, Anomaly{Warm: true, RateZ: 6.6}, action.Deny, "bursts"},
		{"entropy out of band, low", &a, Anomaly{Warm: true, Entropy: 0.1, EntropyOutOfBand: true}, action.Deny, "odd-mix"},
		{"entropy out of band, high", &a, Anomaly{Warm: true, Entropy: 4, EntropyOutOfBand: true}, action.Allow, ""},
		{"an agent still warming up", &pay, Anomaly{}, action.Deny, "cold"},
		{"a warm one", &pay, warm, action.Allow, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := env
			e.Anomaly = tc.an
			r := s.Evaluate(tc.a, e)
			if r.Effect != tc.effect || strings.Join(r.Rules, ",") != tc.rule {
				t.Fatalf("effect %s rules %v, want %s %s (reasons %v)", r.Effect, r.Rules, tc.effect, tc.rule, r.Reasons)
			}
		})
	}
}

// A field the detector does not give is a load error, not a rule that
// never fires.
func TestAnomalyUnknownFieldIsALoadError(t *testing.T) {
	d, err := Parse("a.yaml", []byte(`
version: agentgov/v1
name: typo
rules:
  - id: r
    when: anomaly.new_tools
    effect: deny
`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Compile([]*Document{d}); err == nil || !strings.Contains(err.Error(), "new_tools") {
		t.Fatalf("err %v", err)
	}
}
