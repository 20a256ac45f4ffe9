package config

import (
	"strings"
	"testing"
)

// The trust: and rings: sections are validated with the rest, each error
// naming its key; defaults fill what is left out.
func TestTrustAndRingsAreValidatedNamingTheKey(t *testing.T) {
	for _, c := range []struct{ yaml, want string }{
		{"trust: {kill_below: 600}", "trust.kill_below: want 0 (never) or a score below initial (500)"},
		{"trust: {events: {deny: {high: 5}}}", "trust.events.deny.high"},
		{"trust: {tiers: {verified: 900, trusted: 950, standard: 500, probationary: 300}}", "trust.tiers"},
		{"trust: {events: {denied: -5}}", "denied"},
		{"rings: {profiles: {0: {}, 1: {}, 2: {}, 3: {}}}", "rings.default"},
		{"rings: {default: 1, profiles: {0: {}, 1: {}, 3: {}}}", "rings.profiles.2: missing"},
		{"rings: {default: 1, profiles: {0: {}, 1: {}, 2: {}, 3: {min_tier: trusted}}}", "rings.profiles.3.min_tier"},
		{"rings: {default: 1, profiles: {0: {}, 1: {}, 2: {points: [pre_toolcall]}, 3: {}}}", "rings.profiles.2.points: unknown point \"pre_toolcall\""},
	} {
		_, err := Parse("agentgov.yaml", []byte(c.yaml))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error with %q", c.yaml, err, c.want)
		}
	}
	cfg, err := Parse("agentgov.yaml", []byte("trust: {kill_below: 200}\nrings: {default: 2, profiles: {0: {min_tier: verified}, 1: {min_tier: trusted}, 2: {}, 3: {tools: [\"read_*\"]}}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Trust.Initial != 500 || cfg.Trust.KillBelow != 200 || *cfg.Trust.Events.Deny.Critical != -100 || !cfg.Rings.On() || cfg.Rings.MaxElevation.String() != "1h0m0s" {
		t.Fatalf("filled %+v %+v", cfg.Trust, cfg.Rings)
	}
}
