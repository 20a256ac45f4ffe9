package trust

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Event is one observation that moved a score, as GET
// /v1/agents/{id}/trust shows it.
type Event struct {
	At   time.Time `json:"at"`
	Kind string    `json:"kind"`
	// Delta is the points it added (negative: removed), before the score
	// was held between 0 and 1000.
	Delta int `json:"delta"`
	// Decision is the decision it came from, when there is one.
	Decision string `json:"decision,omitempty"`
	Detail   string `json:"detail,omitempty"`
	// Score is the agent's score once the batch holding the event was
	// applied.
	Score int `json:"score"`
}

// Kinds of events.
const (
	KindDeny           = "deny"
	KindFlagged        = "flagged"
	KindRingDenied     = "ring_denied"
	KindApprovalDenied = "approval_denied"
	KindOutcomeError   = "outcome_error"
	KindOutcomeOK      = "outcome_ok"
	// KindQuarantinedTool is a call to a tool the MCP gateway keeps
	// quarantined (its definition drifted, was never pinned, or looks
	// poisoned): an agent that keeps reaching for one is suspect.
	KindQuarantinedTool = "quarantined_tool"
	KindStreak          = "streak"
	KindDecay           = "decay"
	// KindRiseCapped is the points of clean outcomes withheld by
	// trust.max_rise_per_hour.
	KindRiseCapped = "rise_capped"
	// KindAnomaly is an anomaly the detector found in the agent's
	// behaviour (Signal.Anomaly says which).
	KindAnomaly = "anomaly"
)

// Score is an agent's stored score.
type Score struct {
	Agent string `json:"agent"`
	Score int    `json:"score"`
	// Streak counts the clean outcomes since the last event that lowered
	// the score.
	Streak    int       `json:"streak"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Adjustment is one agent's events of one batch, applied in one atomic
// update: the score moves by Delta, then the streak restarts (Reset) and
// counts Clean more outcomes, earning StreakBonus for each multiple of
// StreakEvery it passes. What clean outcomes earn (Rise and the bonus)
// counts against RiseCap per hour (Window, the start of the hour; 0: no
// cap); the score is held between 0 and 1000.
type Adjustment struct {
	Agent       string
	Initial     int // the score of an agent without one yet
	Delta       int
	Rise        int
	RiseCap     int
	Window      time.Time
	Reset       bool
	Clean       int
	StreakEvery int
	StreakBonus int
	Events      []Event
	At          time.Time
}

// Moved is a score as an update left it, and as it was before.
type Moved struct {
	Agent  string `json:"agent"`
	From   int    `json:"from"`
	To     int    `json:"to"`
	Streak int    `json:"streak"`
	// Bonus is what the streak earned in this update.
	Bonus int `json:"bonus,omitempty"`
	// Withheld is what the hourly cap on rises kept back.
	Withheld int `json:"withheld,omitempty"`
}

// Allowed is how much of rise an agent that has risen risen points in the
// window may still gain under riseCap (0: no cap). Stores compute the
// same in SQL.
func Allowed(rise, risen, riseCap int) int {
	if riseCap <= 0 {
		return rise
	}
	return max(0, min(rise, riseCap-risen))
}

// AppliedEvents are the events an update stores: the adjustment's, the
// streak's bonus, and what the cap withheld.
func AppliedEvents(a Adjustment, m Moved) []Event {
	evs := a.Events
	if m.Bonus == 0 && m.Withheld == 0 {
		return evs
	}
	evs = append([]Event(nil), evs...)
	if m.Bonus != 0 {
		evs = append(evs, Event{At: a.At, Kind: KindStreak, Delta: m.Bonus, Detail: fmt.Sprintf("%d clean outcomes in a row", m.Streak)})
	}
	if m.Withheld != 0 {
		evs = append(evs, Event{At: a.At, Kind: KindRiseCapped, Delta: -m.Withheld, Detail: fmt.Sprintf("rises beyond trust.max_rise_per_hour (%d) this hour", a.RiseCap)})
	}
	return evs
}

// Elevation is a ring granted to an agent, through an approved ticket,
// until a time.
type Elevation struct {
	Ticket string    `json:"ticket"`
	Agent  string    `json:"agent"`
	Ring   int       `json:"ring"`
	Until  time.Time `json:"until"`
	// Floor is the agent's tier when it was granted: should the tier fall
	// below it, the elevation ends.
	Floor     Tier      `json:"floor"`
	Reason    string    `json:"reason"`
	By        string    `json:"by"`
	GrantedAt time.Time `json:"granted_at"`
	EndedAt   time.Time `json:"ended_at,omitzero"`
	Ended     string    `json:"ended,omitempty"` // why: expired, tier_dropped
}

// ErrConflict is returned for an elevation whose ticket granted one
// already.
var ErrConflict = errors.New("trust conflict")

// Store keeps scores, their events and elevations; store/sqlite and
// store/postgres implement it. Changes made through it are announced to
// the other processes sharing it (store.Trust).
type Store interface {
	// ApplyTrust applies an adjustment atomically, creating the agent's
	// score at a.Initial first if it has none, and stores its events.
	ApplyTrust(ctx context.Context, a Adjustment) (Moved, error)
	// DecayTrust moves every score last decayed at or before `before`
	// step points toward initial, in one atomic update, and returns the
	// scores it moved.
	DecayTrust(ctx context.Context, initial, step int, before, at time.Time) ([]Moved, error)
	// TrustScores returns every stored score.
	TrustScores(ctx context.Context) ([]Score, error)
	// TrustEvents returns an agent's latest events, newest first.
	TrustEvents(ctx context.Context, agent string, limit int) ([]Event, error)
	// PutElevation stores a granted elevation; a ticket grants once
	// (ErrConflict).
	PutElevation(ctx context.Context, e Elevation) error
	// Elevations returns the elevations not ended.
	Elevations(ctx context.Context) ([]Elevation, error)
	// EndElevation ends an elevation not yet ended; ended is false if it
	// was ended already (by another replica).
	EndElevation(ctx context.Context, ticket string, at time.Time, why string) (ended bool, err error)
}

// KeptEvents is how many events per agent a store keeps.
const KeptEvents = 200

// StreakBonus is what an adjustment's clean outcomes earn on a streak that
// stood at oldStreak: the bonus for each multiple of StreakEvery passed.
// Stores compute the same in SQL; this is its statement in Go.
func StreakBonus(oldStreak int, a Adjustment) int {
	if a.StreakEvery <= 0 {
		return 0
	}
	s0 := oldStreak
	if a.Reset {
		s0 = 0
	}
	return a.StreakBonus * ((s0+a.Clean)/a.StreakEvery - s0/a.StreakEvery)
}
