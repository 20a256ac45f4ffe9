package trust

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/policy"
)

// NumRings is how many rings there are: 0, the most privileged, to 3.
const NumRings = 4

// Defaults of the rings: keys.
const (
	DefaultMaxElevation    = time.Hour
	DefaultApprovalTimeout = time.Hour
	maxElevationBound      = 7 * 24 * time.Hour
)

// Rings is the rings: section of agentgov.yaml: a capability profile per
// ring, which ring each agent holds, and how an agent may be elevated.
// Without profiles, rings are off and every agent is governed by policy
// alone.
type Rings struct {
	// Default is the ring of an agent that neither the registry nor
	// Agents assigns one. Required with profiles.
	Default *int `yaml:"default"`
	// Agents assigns rings by agent id glob; the first entry that matches
	// wins.
	Agents []Assignment `yaml:"agents"`
	// Profiles are the rings 0 to 3, each what it lets through.
	Profiles map[int]Profile `yaml:"profiles"`
	// Approvers may grant an elevation ("NAME", "user:NAME",
	// "group:NAME"); empty: any approver or admin.
	Approvers []string `yaml:"approvers"`
	// MaxElevation bounds the ttl of an elevation (absent or 0: 1h).
	MaxElevation time.Duration `yaml:"max_elevation"`
	// ApprovalTimeout is how long an elevation request waits for an
	// approver before it expires, denied (absent or 0: 1h).
	ApprovalTimeout time.Duration `yaml:"approval_timeout"`
}

// Assignment gives the agents whose id matches one of Agents the ring
// Ring.
type Assignment struct {
	Agents []string `yaml:"agents"`
	Ring   int      `yaml:"ring"`
}

// Profile is what a ring lets through: an action must match every field
// given (absent: anything). An action without a destination or a model is
// not refused for it.
type Profile struct {
	Description string `yaml:"description"`
	// MinTier is the lowest tier that may hold the ring: an agent whose
	// tier falls below it is demoted, at once, to the next ring it may
	// hold. Ring 3 has none.
	MinTier      Tier     `yaml:"min_tier"`
	Points       []string `yaml:"points"`
	Tools        []string `yaml:"tools"`
	Destinations []string `yaml:"destinations"`
	Models       []string `yaml:"models"`
}

// On reports whether rings are configured.
func (r *Rings) On() bool { return len(r.Profiles) > 0 }

// Fill sets defaults.
func (r *Rings) Fill() {
	if r.MaxElevation == 0 {
		r.MaxElevation = DefaultMaxElevation
	}
	if r.ApprovalTimeout == 0 {
		r.ApprovalTimeout = DefaultApprovalTimeout
	}
}

// Validate checks a filled Rings: all four profiles, tiers that only fall
// from ring 0 to ring 3 (so that demotion always lands), valid points and
// non-empty globs.
func (r *Rings) Validate() error {
	if r.MaxElevation < 0 || r.MaxElevation > maxElevationBound {
		return bad("max_elevation", "want a duration up to %v, got %v", maxElevationBound, r.MaxElevation)
	}
	if r.ApprovalTimeout < time.Second || r.ApprovalTimeout > 30*24*time.Hour {
		return bad("approval_timeout", "want a duration from 1s to 720h, got %v", r.ApprovalTimeout)
	}
	for i, a := range r.Agents {
		key := fmt.Sprintf("agents[%d]", i)
		if len(a.Agents) == 0 {
			return bad(key+".agents", "list the agent id globs this entry assigns")
		}
		if err := globs(key+".agents", a.Agents); err != nil {
			return err
		}
		if a.Ring < 0 || a.Ring >= NumRings {
			return bad(key+".ring", "want a ring from 0 to 3, got %d", a.Ring)
		}
	}
	if !r.On() {
		if r.Default != nil || len(r.Agents) > 0 {
			return bad("profiles", "give the profiles of rings 0 to 3, or no rings keys at all")
		}
		return nil
	}
	if r.Default == nil {
		return bad("default", "give the ring (0 to 3) of agents that no entry of agents names")
	}
	if *r.Default < 0 || *r.Default >= NumRings {
		return bad("default", "want a ring from 0 to 3, got %d", *r.Default)
	}
	for ring := range r.Profiles {
		if ring < 0 || ring >= NumRings {
			return bad(fmt.Sprintf("profiles.%d", ring), "rings are 0 to 3")
		}
	}
	prev := Verified.Rank() + 1
	for ring := range NumRings {
		p, ok := r.Profiles[ring]
		key := fmt.Sprintf("profiles.%d", ring)
		if !ok {
			return bad(key, "missing: give a profile for each of rings 0, 1, 2 and 3")
		}
		rank := Untrusted.Rank()
		if p.MinTier != "" {
			if rank = p.MinTier.Rank(); rank < 0 {
				return bad(key+".min_tier", "unknown tier %q (want verified, trusted, standard, probationary or untrusted)", p.MinTier)
			}
		}
		if ring == NumRings-1 && rank > Untrusted.Rank() {
			return bad(key+".min_tier", "ring 3 is where demoted agents land: it takes no min_tier (got %s)", p.MinTier)
		}
		if rank > prev {
			return bad(key+".min_tier", "%s is above the min_tier of a more privileged ring: tiers must not rise from ring 0 to ring 3", p.MinTier)
		}
		prev = rank
		for _, pt := range p.Points {
			if !action.Point(pt).Valid() {
				return bad(key+".points", "unknown point %q", pt)
			}
		}
		for _, f := range []struct {
			name string
			list []string
		}{{"tools", p.Tools}, {"destinations", p.Destinations}, {"models", p.Models}} {
			if err := globs(key+"."+f.name, f.list); err != nil {
				return err
			}
		}
	}
	for i, a := range r.Approvers {
		if strings.TrimSpace(a) == "" {
			return bad(fmt.Sprintf("approvers[%d]", i), "empty approver")
		}
	}
	return nil
}

func globs(key string, list []string) error {
	for _, g := range list {
		if strings.TrimSpace(g) == "" {
			return bad(key, "empty pattern")
		}
	}
	return nil
}

// outside says which field of a puts it outside profile p of ring, or "".
// It allocates only to say why.
func (p *Profile) outside(ring int, a *Target) string {
	if len(p.Points) > 0 {
		pt := string(a.Point)
		if !slices.Contains(p.Points, pt) {
			return fmt.Sprintf("%s does not allow point %s (allows %s)", p.name(ring), pt, strings.Join(p.Points, ", "))
		}
	}
	if len(p.Tools) > 0 && a.Tool != "" {
		ok := false
		for _, t := range p.Tools {
			if policy.ToolMatches(t, a.Server, a.Tool) {
				ok = true
				break
			}
		}
		if !ok {
			tool := a.Tool
			if a.Server != "" {
				tool = a.Server + "/" + tool
			}
			return fmt.Sprintf("%s does not allow tool %s (allows %s)", p.name(ring), tool, strings.Join(p.Tools, ", "))
		}
	}
	if len(p.Destinations) > 0 && a.Destination != "" && !anyGlob(p.Destinations, a.Destination) {
		return fmt.Sprintf("%s does not allow destination %s (allows %s)", p.name(ring), a.Destination, strings.Join(p.Destinations, ", "))
	}
	if len(p.Models) > 0 && a.Model != "" && !anyGlob(p.Models, a.Model) {
		return fmt.Sprintf("%s does not allow model %s (allows %s)", p.name(ring), a.Model, strings.Join(p.Models, ", "))
	}
	return ""
}

// name is how a denial names the ring: its number and description.
func (p *Profile) name(ring int) string {
	name := fmt.Sprintf("ring %d", ring)
	if p.Description != "" {
		name += " (" + p.Description + ")"
	}
	return name
}

func anyGlob(patterns []string, s string) bool {
	for _, p := range patterns {
		if policy.Glob(p, s) {
			return true
		}
	}
	return false
}

// baseRing is the ring assigned to an agent by configuration.
func (r *Rings) baseRing(agentID string) int {
	for _, a := range r.Agents {
		if anyGlob(a.Agents, agentID) {
			return a.Ring
		}
	}
	return *r.Default
}

// profileArray is the profiles indexed by ring, for the decision path.
type profileArray [NumRings]Profile

func (r *Rings) array() *profileArray {
	var a profileArray
	for ring, p := range r.Profiles {
		if ring >= 0 && ring < NumRings {
			a[ring] = p
		}
	}
	return &a
}

// demote is the most privileged ring from ring down that tier may hold.
func (ps *profileArray) demote(ring int, tier Tier) int {
	for ring < NumRings-1 {
		p := &ps[ring]
		if p.MinTier == "" || tier.Rank() >= p.MinTier.Rank() {
			break
		}
		ring++
	}
	return ring
}
