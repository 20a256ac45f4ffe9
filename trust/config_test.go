package trust_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/trust"
)

func filled(mod func(c *trust.Config)) trust.Config {
	var c trust.Config
	if mod != nil {
		mod(&c)
	}
	c.Fill()
	return c
}

func ip(v int) *int { return &v }

// Every number is bounded, and a bad one is named by its key.
func TestConfigRefusesBadNumbersNamingTheKey(t *testing.T) {
	for _, c := range []struct {
		mod  func(c *trust.Config)
		want string
	}{
		{func(c *trust.Config) { c.Initial = 1001 }, "initial"},
		{func(c *trust.Config) { c.KillBelow = 500 }, "kill_below"},
		{func(c *trust.Config) { c.KillBelow = -1 }, "kill_below"},
		{func(c *trust.Config) { c.FlushEvery = time.Hour }, "flush_every"},
		{func(c *trust.Config) {
			c.Tiers = trust.Bands{Verified: 900, Trusted: 900, Standard: 500, Probationary: 300}
		}, "tiers"},
		{func(c *trust.Config) { c.Tiers = trust.Bands{Verified: 900} }, "tiers"},
		{func(c *trust.Config) { c.Events.Deny.High = ip(10) }, "events.deny.high"},
		{func(c *trust.Config) { c.Events.ApprovalDenied = ip(-1001) }, "events.approval_denied"},
		{func(c *trust.Config) { c.Events.OutcomeOK = ip(-1) }, "events.outcome_ok"},
		{func(c *trust.Config) { c.Events.OutcomeOK = ip(500) }, "events.outcome_ok"},
		{func(c *trust.Config) { c.Events.QuarantinedTool = ip(5) }, "events.quarantined_tool"},
		{func(c *trust.Config) { c.Streak = trust.Streak{Every: 0, Bonus: 5} }, "streak"},
		{func(c *trust.Config) { c.Decay = trust.Decay{Every: time.Second, Step: 5} }, "decay.every"},
		{func(c *trust.Config) { c.Decay = trust.Decay{Every: time.Hour, Step: -5} }, "decay.step"},
	} {
		cfg := filled(c.mod)
		err := cfg.Validate()
		var ke *trust.KeyError
		if !errors.As(err, &ke) || ke.Key != c.want {
			t.Errorf("want an error on %s, got %v", c.want, err)
		}
	}
	if cfg := filled(nil); cfg.Validate() != nil {
		t.Fatalf("defaults: %v", cfg.Validate())
	}
	// An explicit 0 switches an event off and is kept.
	if cfg := filled(func(c *trust.Config) { c.Events.Deny.Unrated = ip(0) }); *cfg.Events.Deny.Unrated != 0 || *cfg.Events.Deny.High != -50 {
		t.Fatalf("explicit zero: %d, default high %d", *cfg.Events.Deny.Unrated, *cfg.Events.Deny.High)
	}
}

func TestTiersFollowTheBands(t *testing.T) {
	cfg := filled(nil)
	for score, want := range map[int]trust.Tier{1000: trust.Verified, 900: trust.Verified, 899: trust.Trusted, 700: trust.Trusted,
		699: trust.Standard, 500: trust.Standard, 499: trust.Probationary, 300: trust.Probationary, 299: trust.Untrusted, 0: trust.Untrusted} {
		if got := cfg.TierOf(score); got != want {
			t.Errorf("score %d: tier %s, want %s", score, got, want)
		}
	}
}

func rings() trust.Rings {
	r := trust.Rings{
		Default: ip(2),
		Agents:  []trust.Assignment{{Agents: []string{"ops-*"}, Ring: 1}},
		Profiles: map[int]trust.Profile{
			0: {Description: "admin", MinTier: trust.Verified},
			1: {Description: "operator", MinTier: trust.Trusted},
			2: {Description: "worker", MinTier: trust.Standard, Points: []string{"pre_tool_call", "post_tool_call"}, Destinations: []string{"*.internal"}},
			3: {Description: "read-only", Points: []string{"pre_tool_call"}, Tools: []string{"read_*", "*/list_*"}, Models: []string{"small-*"}},
		},
	}
	r.Fill()
	return r
}

func TestRingsConfigRefusesWhatCannotDemote(t *testing.T) {
	for _, c := range []struct {
		mod  func(r *trust.Rings)
		want string
	}{
		{func(r *trust.Rings) { r.Default = nil }, "default"},
		{func(r *trust.Rings) { r.Default = ip(4) }, "default"},
		{func(r *trust.Rings) { delete(r.Profiles, 2) }, "profiles.2"},
		{func(r *trust.Rings) { r.Profiles[5] = trust.Profile{} }, "profiles.5"},
		{func(r *trust.Rings) { p := r.Profiles[3]; p.MinTier = trust.Standard; r.Profiles[3] = p }, "profiles.3.min_tier"},
		{func(r *trust.Rings) { p := r.Profiles[1]; p.MinTier = "gold"; r.Profiles[1] = p }, "profiles.1.min_tier"},
		// A less privileged ring asking a higher tier than a more privileged one.
		{func(r *trust.Rings) { p := r.Profiles[2]; p.MinTier = trust.Verified; r.Profiles[2] = p }, "profiles.2.min_tier"},
		{func(r *trust.Rings) { p := r.Profiles[2]; p.Points = []string{"pre_tool_cal"}; r.Profiles[2] = p }, "profiles.2.points"},
		{func(r *trust.Rings) { p := r.Profiles[3]; p.Tools = []string{" "}; r.Profiles[3] = p }, "profiles.3.tools"},
		{func(r *trust.Rings) { r.Agents[0].Ring = 7 }, "agents[0].ring"},
		{func(r *trust.Rings) { r.MaxElevation = 30 * 24 * time.Hour }, "max_elevation"},
		{func(r *trust.Rings) { r.Profiles = nil }, "profiles"},
	} {
		r := rings()
		c.mod(&r)
		err := r.Validate()
		var ke *trust.KeyError
		if !errors.As(err, &ke) || ke.Key != c.want {
			t.Errorf("want an error on %s, got %v", c.want, err)
		}
	}
	r := rings()
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
	var off trust.Rings
	off.Fill()
	if err := off.Validate(); err != nil || off.On() {
		t.Fatalf("no rings: %v, on %v", err, off.On())
	}
}

func reasonHas(t *testing.T, reason string, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(reason, p) {
			t.Errorf("reason %q lacks %q", reason, p)
		}
	}
}

var _ = action.PreToolCall
