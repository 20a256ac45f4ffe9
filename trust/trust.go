// Package trust keeps a trust score from 0 to 1000 per agent, moved by what
// the server observes of it (denied actions by severity, flagged actions,
// denied approvals, actions outside its ring, failed and clean outcomes),
// decaying toward the initial score, and the tiers and privilege rings
// bound to those scores. Scores live in the store, changed by atomic
// updates, so that every replica sharing a store sees one score per agent;
// the decision path reads an immutable in-memory snapshot. Every change of
// score is in the audit log, in batches; a score that falls below the
// floor engages the kill switch on the agent.
package trust

import (
	"fmt"
	"time"
)

// Tier is a band of scores.
type Tier string

// The tiers, most trusted first.
const (
	Verified     Tier = "verified"
	Trusted      Tier = "trusted"
	Standard     Tier = "standard"
	Probationary Tier = "probationary"
	Untrusted    Tier = "untrusted"
)

// Tiers lists every tier, most trusted first.
var Tiers = []Tier{Verified, Trusted, Standard, Probationary, Untrusted}

// Rank orders tiers: 4 for verified down to 0 for untrusted, -1 for a
// name that is no tier.
func (t Tier) Rank() int {
	switch t {
	case Verified:
		return 4
	case Trusted:
		return 3
	case Standard:
		return 2
	case Probationary:
		return 1
	case Untrusted:
		return 0
	}
	return -1
}

// MaxScore is the highest score; 0 is the lowest.
const MaxScore = 1000

// Defaults of the trust: keys (DESIGN §9).
const (
	DefaultInitial    = 500
	DefaultFlushEvery = 250 * time.Millisecond
	DefaultDecayEvery = time.Hour
	DefaultDecayStep  = 5
)

// Config is the trust: section of agentgov.yaml: every number that moves a
// score. Weights are points added to the score per event: negative for
// what lowers it.
type Config struct {
	// Initial is the score of an agent seen for the first time (absent or
	// 0: 500).
	Initial int `yaml:"initial"`
	// KillBelow engages the kill switch on an agent whose score falls
	// below it (0: never).
	KillBelow int `yaml:"kill_below"`
	// FlushEvery is how long events wait to be applied together; events
	// that lower a score are applied at once (absent or 0: 250ms).
	FlushEvery time.Duration `yaml:"flush_every"`
	Tiers      Bands         `yaml:"tiers"`
	Events     Weights       `yaml:"events"`
	Streak     Streak        `yaml:"streak"`
	Decay      Decay         `yaml:"decay"`
	// MaxRisePerHour bounds what clean outcomes (and their streak bonus)
	// may add to a score in one hour, so that an agent cannot farm
	// harmless calls to win back at once what a deny cost it (absent: 20;
	// 0: no bound).
	MaxRisePerHour *int `yaml:"max_rise_per_hour"`
}

// Bands are the lowest score of each tier; below probationary is
// untrusted.
type Bands struct {
	Verified     int `yaml:"verified"`
	Trusted      int `yaml:"trusted"`
	Standard     int `yaml:"standard"`
	Probationary int `yaml:"probationary"`
}

// Weights are the points each observed event adds. A key left out takes
// its default; 0 switches the event off.
type Weights struct {
	// Deny is a policy deny, by the severity of the rule that denied.
	Deny DenyWeights `yaml:"deny"`
	// Flagged is an action allowed with the audit effect (a detector or
	// rule that flags without denying).
	Flagged *int `yaml:"flagged"`
	// RingDenied is an action outside the agent's ring.
	RingDenied *int `yaml:"ring_denied"`
	// ApprovalDenied is an approver denying the agent's ticket.
	ApprovalDenied *int `yaml:"approval_denied"`
	// OutcomeError is an outcome reported as an error.
	OutcomeError *int `yaml:"outcome_error"`
	// QuarantinedTool is a call the MCP gateway refused because the tool
	// is quarantined.
	QuarantinedTool *int `yaml:"quarantined_tool"`
	// OutcomeOK is an outcome reported as ok: clean work raises the score
	// slowly.
	OutcomeOK *int `yaml:"outcome_ok"`
	// Anomaly is an anomaly found in the agent's behaviour, by kind, once
	// per episode (see the anomaly: section).
	Anomaly AnomalyWeights `yaml:"anomaly"`
}

// AnomalyWeights weigh anomalies by kind.
type AnomalyWeights struct {
	RateZ   *int `yaml:"rate_z"`
	NewTool *int `yaml:"new_tool"`
	Entropy *int `yaml:"entropy"`
}

// DenyWeights weigh denies by severity; unrated is a deny without one (a
// document's default, a rule without severity).
type DenyWeights struct {
	Unrated  *int `yaml:"unrated"`
	Low      *int `yaml:"low"`
	Medium   *int `yaml:"medium"`
	High     *int `yaml:"high"`
	Critical *int `yaml:"critical"`
}

// Streak rewards runs of clean outcomes: every Every clean outcomes in a
// row (no event lowering the score between them) add Bonus.
type Streak struct {
	Every int `yaml:"every"`
	Bonus int `yaml:"bonus"`
}

// Decay moves every score Step points toward the initial score once per
// Every, so that old events fade (Every 0: never).
type Decay struct {
	Every time.Duration `yaml:"every"`
	Step  int           `yaml:"step"`
}

func intp(v int) *int { return &v }

// defaultWeights are the points of each event when the configuration says
// nothing: a critical deny costs a fifth of a new agent's score; about
// fifty clean outcomes win back a high-severity deny.
var defaultWeights = Weights{
	Deny: DenyWeights{
		Unrated: intp(-2), Low: intp(-5), Medium: intp(-15), High: intp(-50), Critical: intp(-100),
	},
	Flagged:        intp(-5),
	RingDenied:     intp(-10),
	ApprovalDenied: intp(-30),
	OutcomeError:   intp(-2),
	OutcomeOK:      intp(1),
	Anomaly:        AnomalyWeights{RateZ: intp(-10), NewTool: intp(-2), Entropy: intp(-5)},
	// As much as a medium deny: a drifted tool may be called in good
	// faith once, but not in a loop.
	QuarantinedTool: intp(-15),
}

// Fill sets the default of every key left out.
func (c *Config) Fill() {
	if c.Initial == 0 {
		c.Initial = DefaultInitial
	}
	if c.FlushEvery == 0 {
		c.FlushEvery = DefaultFlushEvery
	}
	if c.Tiers == (Bands{}) {
		c.Tiers = Bands{Verified: 900, Trusted: 700, Standard: 500, Probationary: 300}
	}
	fill := func(p **int, def *int) {
		if *p == nil {
			*p = intp(*def)
		}
	}
	w, d := &c.Events, defaultWeights
	fill(&w.Deny.Unrated, d.Deny.Unrated)
	fill(&w.Deny.Low, d.Deny.Low)
	fill(&w.Deny.Medium, d.Deny.Medium)
	fill(&w.Deny.High, d.Deny.High)
	fill(&w.Deny.Critical, d.Deny.Critical)
	fill(&w.Flagged, d.Flagged)
	fill(&w.RingDenied, d.RingDenied)
	fill(&w.ApprovalDenied, d.ApprovalDenied)
	fill(&w.OutcomeError, d.OutcomeError)
	fill(&w.OutcomeOK, d.OutcomeOK)
	fill(&w.Anomaly.RateZ, d.Anomaly.RateZ)
	fill(&w.Anomaly.NewTool, d.Anomaly.NewTool)
	fill(&w.Anomaly.Entropy, d.Anomaly.Entropy)
	fill(&w.QuarantinedTool, d.QuarantinedTool)
	if c.Streak == (Streak{}) {
		c.Streak = Streak{Every: 50, Bonus: 10}
	}
	if c.MaxRisePerHour == nil {
		c.MaxRisePerHour = intp(20)
	}
	if c.Decay == (Decay{}) {
		c.Decay = Decay{Every: DefaultDecayEvery, Step: DefaultDecayStep}
	}
}

// KeyError names the key of the trust: or rings: section at fault.
type KeyError struct {
	Key string // relative to the section: "kill_below", "profiles.3.tools"
	Msg string
}

func (e *KeyError) Error() string { return e.Key + ": " + e.Msg }

func bad(key, format string, args ...any) error {
	return &KeyError{Key: key, Msg: fmt.Sprintf(format, args...)}
}

// Validate checks a filled Config; every number is bounded so that no
// single event can swing a score from one end to the other unnoticed.
func (c *Config) Validate() error {
	if c.Initial < 1 || c.Initial > MaxScore {
		return bad("initial", "want a score from 1 to %d, got %d", MaxScore, c.Initial)
	}
	if c.KillBelow < 0 || c.KillBelow >= c.Initial {
		return bad("kill_below", "want 0 (never) or a score below initial (%d), got %d: a new agent must not start killed", c.Initial, c.KillBelow)
	}
	if c.FlushEvery < 10*time.Millisecond || c.FlushEvery > time.Minute {
		return bad("flush_every", "want a duration from 10ms to 1m, got %v", c.FlushEvery)
	}
	b := c.Tiers
	if !(MaxScore >= b.Verified && b.Verified > b.Trusted && b.Trusted > b.Standard && b.Standard > b.Probationary && b.Probationary > 0) {
		return bad("tiers", "want 1000 >= verified > trusted > standard > probationary > 0, got %d, %d, %d, %d", b.Verified, b.Trusted, b.Standard, b.Probationary)
	}
	for _, w := range []struct {
		key      string
		v        int
		positive bool
	}{
		{"events.deny.unrated", *c.Events.Deny.Unrated, false},
		{"events.deny.low", *c.Events.Deny.Low, false},
		{"events.deny.medium", *c.Events.Deny.Medium, false},
		{"events.deny.high", *c.Events.Deny.High, false},
		{"events.deny.critical", *c.Events.Deny.Critical, false},
		{"events.flagged", *c.Events.Flagged, false},
		{"events.ring_denied", *c.Events.RingDenied, false},
		{"events.approval_denied", *c.Events.ApprovalDenied, false},
		{"events.outcome_error", *c.Events.OutcomeError, false},
		{"events.outcome_ok", *c.Events.OutcomeOK, true},
		{"events.anomaly.rate_z", *c.Events.Anomaly.RateZ, false},
		{"events.anomaly.new_tool", *c.Events.Anomaly.NewTool, false},
		{"events.anomaly.entropy", *c.Events.Anomaly.Entropy, false},
		{"events.quarantined_tool", *c.Events.QuarantinedTool, false},
	} {
		if w.positive && (w.v < 0 || w.v > 100) {
			return bad(w.key, "want 0 to 100 points (it raises the score), got %d", w.v)
		}
		if !w.positive && (w.v > 0 || w.v < -MaxScore) {
			return bad(w.key, "want 0 to -%d points (it lowers the score), got %d", MaxScore, w.v)
		}
	}
	if c.Streak.Every < 0 || c.Streak.Bonus < 0 || c.Streak.Bonus > 100 || (c.Streak.Bonus > 0 && c.Streak.Every < 1) {
		return bad("streak", "want every >= 1 clean outcomes and a bonus of 0 to 100 points, got every %d, bonus %d", c.Streak.Every, c.Streak.Bonus)
	}
	if *c.MaxRisePerHour < 0 || *c.MaxRisePerHour > MaxScore {
		return bad("max_rise_per_hour", "want 0 (no bound) to %d points, got %d", MaxScore, *c.MaxRisePerHour)
	}
	if c.Decay.Every != 0 && c.Decay.Every < time.Minute {
		return bad("decay.every", "want 0 (never) or at least 1m, got %v", c.Decay.Every)
	}
	if c.Decay.Step < 0 || c.Decay.Step > MaxScore {
		return bad("decay.step", "want 0 to %d points, got %d", MaxScore, c.Decay.Step)
	}
	return nil
}

// TierOf is the tier a score falls in.
func (c *Config) TierOf(score int) Tier {
	b := c.Tiers
	switch {
	case score >= b.Verified:
		return Verified
	case score >= b.Trusted:
		return Trusted
	case score >= b.Standard:
		return Standard
	case score >= b.Probationary:
		return Probationary
	}
	return Untrusted
}
