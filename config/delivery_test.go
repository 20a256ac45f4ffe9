package config

import (
	"strings"
	"testing"
)

func TestDeliveryKeysAreValidatedNamingTheKey(t *testing.T) {
	for _, c := range []struct{ yaml, key string }{
		{"canary: {agents: [a]}", "canary.policies"},
		{"canary: {policies: p, share: 1.5, rollback: {deny_ratio: 0.5}}", "canary.share"},
		{"canary: {policies: p, rollback: {deny_ratio: 0.5}}", "canary: give agents or a share"},
		{"canary: {policies: p, agents: [a]}", "canary.rollback: give slo"},
		{"canary: {policies: p, agents: [a], rollback: {deny_ratio: 2}}", "canary.rollback.deny_ratio"},
		{"reward: {penalties: {high: 5}}", "reward.penalties.high"},
		{"policy_trust: {keys: [k.pub]}\nmcp: {trust_on_first_use: true}", "mcp.trust_on_first_use"},
	} {
		_, err := Parse("agentgov.yaml", []byte(c.yaml))
		if err == nil || !strings.Contains(err.Error(), c.key) {
			t.Errorf("%s: got %v, want an error naming %s", c.yaml, err, c.key)
		}
	}
	cfg, err := Parse("agentgov.yaml", []byte("canary: {policies: p, share: 0.1, rollback: {deny_ratio: 0.5}}\nreward: {penalties: {low: 0}}"))
	if err != nil {
		t.Fatal(err)
	}
	p := cfg.Reward.Penalties
	if *p.Low != 0 || *p.Medium != DefaultPenaltyMedium || *p.Critical != DefaultPenaltyCritical || cfg.Canary.Rollback.MinDecisions != DefaultCanaryMinDecisions {
		t.Fatalf("defaults: %+v %+v", p, cfg.Canary)
	}
}
