package models

import (
	"strings"
	"testing"
)

// A budget reserves for what a provider can bill, and when a request sets
// no output cap a provider bills up to the model's maximum output. So every
// chat model the catalogue ships knows that maximum, and whether it spends
// hidden reasoning tokens (billed as output, capped by a different field).
func TestShippedModelsKnowTheirMaximumOutput(t *testing.T) {
	c := Shipped()
	for _, tc := range []struct {
		name      string
		max       int64
		reasoning bool
	}{
		{"gpt-4o-mini", 16_384, false},
		{"gpt-4.1", 32_768, false},
		{"o1", 100_000, true},
		{"o3-mini", 100_000, true},
		{"gpt-5", 128_000, true},
		{"claude-sonnet-4-5", 64_000, false},
		{"claude-3-5-haiku-20241022", 8_192, false},
		{"gemini-2.5-pro", 65_536, true},
	} {
		m, _ := c.Lookup(tc.name)
		if m.MaxOutputTokens != tc.max || m.Reasoning != tc.reasoning {
			t.Errorf("%s: max output %d, reasoning %v; want %d, %v", tc.name, m.MaxOutputTokens, m.Reasoning, tc.max, tc.reasoning)
		}
	}
	for _, m := range c.Models() {
		embedding := strings.Contains(m.Name, "embedding")
		if !embedding && m.MaxOutputTokens <= 0 {
			t.Errorf("%s: no maximum output; a call that sets no cap could not be reserved for", m.Name)
		}
	}
}

// A user catalogue gives a custom or local model its maximum output; a
// model without one falls back to the proxy's default, and a nonsense value
// is refused with its line.
func TestUserCatalogueSetsMaximumOutput(t *testing.T) {
	c, err := Shipped().Override("user.yaml", []byte("version: agentgov/v1\nmodels:\n  my-llama: {provider: openai, tier: economy, input: 0, output: 0, max_output: 8192}\n  gpt-4o-mini: {max_output: 1000}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if m, _ := c.Lookup("my-llama"); m.MaxOutputTokens != 8192 || m.Reasoning {
		t.Errorf("my-llama = %+v", m)
	}
	if m, _ := c.Lookup("gpt-4o-mini"); m.MaxOutputTokens != 1000 || m.InputPerMTok != 150_000 {
		t.Errorf("an override of max_output alone changed more or less: %+v", m)
	}
	for _, bad := range []string{"max_output: -1", "max_output: 1.5", "max_output: lots", "reasoning: maybe"} {
		_, err := Shipped().Override("user.yaml", []byte("version: agentgov/v1\nmodels:\n  gpt-4o: {"+bad+"}\n"))
		if err == nil || !strings.Contains(err.Error(), "user.yaml") {
			t.Errorf("%s: err = %v, want an error naming the file and line", bad, err)
		}
	}
}
