package models

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestShippedCatalogueCoversTheCommonProviders(t *testing.T) {
	c := Shipped()
	for _, tc := range []struct {
		name, provider, tier string
		in, out              int64
	}{
		{"gpt-4o-mini", "openai", "economy", 150_000, 600_000},
		{"gpt-4o", "openai", "standard", 2_500_000, 10_000_000},
		{"o1", "openai", "premium", 15_000_000, 60_000_000},
		{"claude-sonnet-4-5", "anthropic", "standard", 3_000_000, 15_000_000},
		{"claude-opus-4-1", "anthropic", "premium", 15_000_000, 75_000_000},
		{"gemini-2.0-flash-lite", "google", "economy", 75_000, 300_000},
	} {
		m, ok := c.Lookup(tc.name)
		if !ok {
			t.Errorf("Lookup(%q): not found", tc.name)
			continue
		}
		if m.Provider != tc.provider || m.Tier != tc.tier || m.InputPerMTok != tc.in || m.OutputPerMTok != tc.out {
			t.Errorf("Lookup(%q) = %+v, want provider %s tier %s prices %d/%d", tc.name, m, tc.provider, tc.tier, tc.in, tc.out)
		}
	}
	if c.AllowUnknown() {
		t.Error("shipped catalogue allows unknown models; it must deny them")
	}
	if got := strings.Join(c.Tiers(), ","); got != "economy,standard,premium" {
		t.Errorf("tiers = %s", got)
	}
	for _, m := range c.Models() {
		if m.InputPerMTok <= 0 {
			t.Errorf("%s has no input price", m.Name)
		}
	}
}

func TestLookupByAliasAndDatedSnapshot(t *testing.T) {
	c := Shipped()
	for alias, want := range map[string]string{
		"claude-sonnet-4-5-20250929": "claude-sonnet-4-5", // listed alias
		"gpt-4o-2024-08-06":          "gpt-4o",            // dated snapshot, not listed
		"gpt-4o-mini-2024-07-18":     "gpt-4o-mini",
		"claude-haiku-4-5-20991231":  "claude-haiku-4-5",
	} {
		m, ok := c.Lookup(alias)
		if !ok || m.Name != want {
			t.Errorf("Lookup(%q) = %q, %v; want %q", alias, m.Name, ok, want)
		}
	}
	for _, name := range []string{"gpt-4o-turbo-x", "", "GPT-4O", "llama-3"} {
		if m, ok := c.Lookup(name); ok {
			t.Errorf("Lookup(%q) found %q; want not found", name, m.Name)
		}
	}
}

func TestCostIsExactAndRoundsUp(t *testing.T) {
	c := Shipped()
	// gpt-4o: $2.50 in, $10 out per million → 1000 in + 500 out = 2500 + 5000 µ$.
	if got := c.Cost("gpt-4o", 1000, 500); got != 7500 {
		t.Errorf("Cost(gpt-4o, 1000, 500) = %d µ$, want 7500", got)
	}
	// gpt-4o-mini: 0.15 µ$ per input token: 1 token costs 0.15 µ$, billed as 1.
	if got := c.Cost("gpt-4o-mini", 1, 0); got != 1 {
		t.Errorf("Cost(gpt-4o-mini, 1, 0) = %d, want 1 (rounded up)", got)
	}
	if got := c.Cost("gpt-4o-mini", 1_000_000, 1_000_000); got != 750_000 {
		t.Errorf("Cost(gpt-4o-mini, 1M, 1M) = %d, want 750000", got)
	}
	if got := c.Cost("gpt-4o", -5, 0); got != 0 {
		t.Errorf("negative tokens cost %d, want 0", got)
	}
	if got := c.Cost("claude-opus-4-1", math.MaxInt64, math.MaxInt64); got != math.MaxInt64 {
		t.Errorf("huge counts cost %d, want saturation at MaxInt64", got)
	}
	// An unknown model is priced like the dearest known one, never free.
	if got, want := c.Cost("mystery-model", 1_000_000, 0), int64(20_000_000); got != want {
		t.Errorf("Cost(unknown) = %d, want %d (dearest input price)", got, want)
	}
}

func TestResolveDeniesUnknownModelsUnlessAllowed(t *testing.T) {
	c := Shipped()
	if _, err := c.Resolve("mystery-model"); !errors.Is(err, ErrUnknownModel) {
		t.Fatalf("Resolve(unknown) err = %v, want ErrUnknownModel", err)
	}
	open, err := c.Override("user.yaml", []byte("version: agentgov/v1\nunknown_models: {policy: allow, tier: standard, input: 1, output: 2}\n"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := open.Resolve("mystery-model")
	if err != nil {
		t.Fatal(err)
	}
	if !m.Unknown || m.Tier != "standard" || m.InputPerMTok != 1_000_000 || m.OutputPerMTok != 2_000_000 || m.Name != "mystery-model" {
		t.Errorf("Resolve(unknown) = %+v", m)
	}
	if _, err := c.Resolve("mystery-model"); err == nil {
		t.Error("Override changed the catalogue it was called on")
	}
}

func TestLoadOverridesShippedEntriesFieldByField(t *testing.T) {
	path := filepath.Join(t.TempDir(), "models.yaml")
	user := `version: agentgov/v1
as_of: "2026-01-01"
models:
  gpt-4o: {input: 2.00}          # price change only
  my-finetune: {provider: openai, tier: premium, input: 3.0, output: 12, aliases: [ft:gpt-4o:acme]}
`
	if err := os.WriteFile(path, []byte(user), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := c.Lookup("gpt-4o")
	if m.InputPerMTok != 2_000_000 || m.OutputPerMTok != 10_000_000 || m.Tier != "standard" || m.Provider != "openai" {
		t.Errorf("overridden gpt-4o = %+v; want only the input price changed", m)
	}
	if m, ok := c.Lookup("ft:gpt-4o:acme"); !ok || m.Name != "my-finetune" || m.Tier != "premium" {
		t.Errorf("added model by alias = %+v, %v", m, ok)
	}
	if c.AsOf() != "2026-01-01" {
		t.Errorf("as_of = %q", c.AsOf())
	}
	if _, ok := c.Lookup("claude-sonnet-4-5"); !ok {
		t.Error("override dropped a shipped model")
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Error("Load of a missing file succeeded")
	}
	if c, err := Load(""); err != nil || c.Cost("gpt-4o", 1_000_000, 0) != 2_500_000 {
		t.Errorf("Load(\"\") = shipped catalogue? err=%v", err)
	}
}

func TestBadCataloguesAreRejectedNamingTheProblem(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"version", "version: v0\n", `version: must be "agentgov/v1"`},
		{"unknown field", "version: agentgov/v1\nmodles: {}\n", "line 2: unknown field modles"},
		{"unknown model field", "version: agentgov/v1\nmodels:\n  gpt-4o: {prise: 1}\n", "line 3: unknown field model prise"},
		{"new model incomplete", "version: agentgov/v1\nmodels:\n  new-one: {provider: openai, input: 1}\n", "user.yaml:3: models.new-one: a new model needs tier, output"},
		{"bad tier", "version: agentgov/v1\nmodels:\n  gpt-4o: {tier: gold}\n", `tier "gold" is not one of the tiers`},
		{"negative price", "version: agentgov/v1\nmodels:\n  gpt-4o: {input: -1}\n", `price "-1"`},
		{"too precise", "version: agentgov/v1\nmodels:\n  gpt-4o: {input: 0.0000001}\n", "more than 6 decimal places"},
		{"not a number", "version: agentgov/v1\nmodels:\n  gpt-4o: {output: cheap}\n", `price "cheap"`},
		{"alias clash", "version: agentgov/v1\nmodels:\n  x: {provider: openai, tier: economy, input: 1, output: 1, aliases: [gpt-4o]}\n", `name "gpt-4o" is already used`},
		{"null model", "version: agentgov/v1\nmodels:\n  gpt-4o:\n", "models.gpt-4o: must be a mapping"},
		{"unknown policy", "version: agentgov/v1\nunknown_models: maybe\n", "unknown_models: must be deny or allow"},
		{"unknown tier", "version: agentgov/v1\nunknown_models: {policy: allow, tier: gold}\n", `unknown_models.tier: "gold"`},
		{"empty provider", "version: agentgov/v1\nmodels:\n  gpt-4o: {provider: \"\"}\n", "provider: must not be empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Shipped().Override("user.yaml", []byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
	if _, err := Parse("empty.yaml", []byte("version: agentgov/v1\n")); err == nil || !strings.Contains(err.Error(), "tiers") {
		t.Errorf("catalogue without tiers: err = %v", err)
	}
}

func TestParseMicroIsExact(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "0.075": 75_000, "15": 15_000_000, "2.5": 2_500_000, ".5": 500_000, "$3": 3_000_000, "0.000001": 1} {
		got, err := parseMicro(in)
		if err != nil || got != want {
			t.Errorf("parseMicro(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
}

func FuzzOverride(f *testing.F) {
	f.Add([]byte(shippedYAML))
	f.Add([]byte("version: agentgov/v1\nmodels:\n  gpt-4o: {input: 2.00}\n"))
	f.Add([]byte("version: agentgov/v1\nunknown_models: {policy: allow}\n"))
	base := Shipped()
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := base.Override("fuzz.yaml", data)
		if err != nil {
			return
		}
		for _, m := range c.Models() {
			if got, ok := c.Lookup(m.Name); !ok || got.Name != m.Name {
				t.Fatalf("model %q not found by its own name", m.Name)
			}
			if m.InputPerMTok < 0 || m.OutputPerMTok < 0 {
				t.Fatalf("negative price for %q", m.Name)
			}
		}
	})
}
