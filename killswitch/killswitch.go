// Package killswitch stops agents at once: an operator (or an automatic
// "isolate" response) engages a switch scoped to the whole system, one agent,
// one session or one principal (user, team or org), and every following
// decision in that scope is denied until an admin releases it. Switches are
// stored, so they hold across restarts; the decision path reads an immutable
// in-memory snapshot and never touches the store.
package killswitch

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agentgov/agentgov/action"
)

// Scope is what a switch stops.
type Scope string

const (
	System    Scope = "system"    // every action; target is empty
	Agent     Scope = "agent"     // target is an agent id
	Session   Scope = "session"   // target is a session id, of the agent named by Switch.Agent
	Principal Scope = "principal" // target is "user:NAME", "team:NAME" or "org:NAME"
)

// Switch is one engaged (or formerly engaged) kill switch.
type Switch struct {
	ID     string `json:"id"`
	Scope  Scope  `json:"scope"`
	Target string `json:"target,omitempty"`
	// Agent is the agent whose session a session switch stops: session ids
	// are per agent. A session switch stored before they were, without
	// one, stops that session id for every agent.
	Agent      string    `json:"agent,omitempty"`
	Reason     string    `json:"reason"`
	By         string    `json:"by"`
	EngagedAt  time.Time `json:"engaged_at"`
	ReleasedAt time.Time `json:"released_at,omitzero"`
	ReleasedBy string    `json:"released_by,omitempty"`
}

// Engaged reports whether the switch has not been released.
func (s Switch) Engaged() bool { return s.ReleasedAt.IsZero() }

// DenyReason is the reason a decision stopped by s gives to the caller.
func (s Switch) DenyReason() string {
	switch {
	case s.Scope == System:
		return "kill switch " + s.ID + " (system): " + s.Reason
	case s.Scope == Session && s.Agent != "":
		return "kill switch " + s.ID + " (session " + s.Target + " of agent " + s.Agent + "): " + s.Reason
	}
	return "kill switch " + s.ID + " (" + string(s.Scope) + " " + s.Target + "): " + s.Reason
}

var (
	// ErrNotFound is returned for a switch id that does not exist.
	ErrNotFound = errors.New("kill switch not found")
	// ErrConflict is returned when releasing a switch that is already released.
	ErrConflict = errors.New("kill switch conflict")
	// ErrInvalid is returned for a malformed switch: unknown scope, missing
	// or malformed target, missing reason.
	ErrInvalid = errors.New("invalid kill switch")
)

// Store persists switches.
type Store interface {
	// InsertSwitch stores a newly engaged switch.
	InsertSwitch(ctx context.Context, s Switch) error
	// ReleaseSwitch marks the switch released, only if it is engaged;
	// changed is false when it was already released or does not exist.
	ReleaseSwitch(ctx context.Context, id, by string, at time.Time) (changed bool, err error)
	// GetSwitch returns one switch, or an error wrapping ErrNotFound.
	GetSwitch(ctx context.Context, id string) (Switch, error)
	// ListSwitches returns switches in the order they were engaged; released
	// ones only when includeReleased.
	ListSwitches(ctx context.Context, includeReleased bool) ([]Switch, error)
}

// Change is the audit record of engaging or releasing a switch: the switch
// as the change leaves it.
type Change struct {
	Event  string `json:"event"` // "engage" or "release"
	Switch Switch `json:"switch"`
}

// Record writes a change to the audit log before it is made: it is given
// everything the change will write, and an error from it stops the change.
// The engine supplies it (govern.Engine.EngageKill and ReleaseKill); a nil
// Record records nothing.
type Record func(ctx context.Context, c Change) error

func record(ctx context.Context, rs []Record, c Change) error {
	for _, r := range rs {
		if r == nil {
			continue
		}
		if err := r(ctx, c); err != nil {
			return err
		}
	}
	return nil
}

// MaxTargetLen and MaxReasonLen bound what an operator can store.
const (
	MaxTargetLen = 256
	MaxReasonLen = 1024
)

// snapshot is the immutable view the hot path reads. Each map holds the
// earliest engaged switch of each target.
type snapshot struct {
	n        int
	system   *Switch
	agents   map[string]*Switch
	sessions map[sessionKey]*Switch // by agent and session; agent "" for every agent
	// anyAgent is set when a session switch without an agent is engaged.
	anyAgent bool
	users    map[string]*Switch
	teams    map[string]*Switch
	orgs     map[string]*Switch
}

// Switchboard holds the engaged switches of one process.
type Switchboard struct {
	st    Store
	clock func() time.Time

	mu     sync.Mutex // serialises changes; guards active
	active []Switch
	snap   atomic.Pointer[snapshot]
}

// New loads the engaged switches from st. clock stamps engage and release
// times.
func New(ctx context.Context, st Store, clock func() time.Time) (*Switchboard, error) {
	b := &Switchboard{st: st, clock: clock}
	if err := b.Reload(ctx); err != nil {
		return nil, err
	}
	return b, nil
}

// Reload replaces the in-memory switches with what the store holds, for a
// replica to pick up switches another replica engaged or released. On error
// the current switches stay in force.
func (b *Switchboard) Reload(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	list, err := b.st.ListSwitches(ctx, false)
	if err != nil {
		return fmt.Errorf("load kill switches: %w", err)
	}
	b.active = list
	b.publish()
	return nil
}

// Check reports the switch, if any, that stops a. It reads only the
// snapshot: no locks, and no allocations when nothing is engaged.
func (b *Switchboard) Check(a *action.Action) (Switch, bool) {
	s := b.snap.Load()
	if s.n == 0 {
		return Switch{}, false
	}
	if s.system != nil {
		return *s.system, true
	}
	if sw := lookup(s.agents, a.Agent.ID); sw != nil {
		return *sw, true
	}
	if a.Session != "" && len(s.sessions) > 0 {
		if sw := s.sessions[sessionKey{a.Agent.ID, a.Session}]; sw != nil {
			return *sw, true
		}
		if s.anyAgent {
			if sw := s.sessions[sessionKey{"", a.Session}]; sw != nil {
				return *sw, true
			}
		}
	}
	if sw := lookup(s.users, a.Principal.User); sw != nil {
		return *sw, true
	}
	if sw := lookup(s.teams, a.Principal.Team); sw != nil {
		return *sw, true
	}
	if sw := lookup(s.orgs, a.Principal.Org); sw != nil {
		return *sw, true
	}
	return Switch{}, false
}

type sessionKey struct {
	agent, session string
}

func lookup(m map[string]*Switch, key string) *Switch {
	if key == "" || len(m) == 0 {
		return nil
	}
	return m[key]
}

// Validate checks a switch to be engaged and names what is wrong.
func (s Switch) Validate() error {
	switch s.Scope {
	case System:
		if s.Target != "" {
			return fmt.Errorf("%w: scope system takes no target (got %q)", ErrInvalid, s.Target)
		}
	case Agent, Session:
		if s.Target == "" {
			return fmt.Errorf("%w: scope %s needs a target (the %s id)", ErrInvalid, s.Scope, s.Scope)
		}
		if s.Scope == Session && s.Agent == "" {
			return fmt.Errorf("%w: scope session needs the agent whose session it is (session ids are per agent)", ErrInvalid)
		}
	case Principal:
		kind, name, ok := strings.Cut(s.Target, ":")
		if !ok || name == "" || (kind != "user" && kind != "team" && kind != "org") {
			return fmt.Errorf("%w: scope principal needs a target user:NAME, team:NAME or org:NAME (got %q)", ErrInvalid, s.Target)
		}
	default:
		return fmt.Errorf("%w: unknown scope %q (want system, agent, session or principal)", ErrInvalid, s.Scope)
	}
	if s.Scope != Session && s.Agent != "" {
		return fmt.Errorf("%w: only scope session takes an agent (got %q for scope %s)", ErrInvalid, s.Agent, s.Scope)
	}
	if len(s.Target) > MaxTargetLen {
		return fmt.Errorf("%w: target is longer than %d bytes", ErrInvalid, MaxTargetLen)
	}
	if strings.TrimSpace(s.Reason) == "" {
		return fmt.Errorf("%w: a reason is required", ErrInvalid)
	}
	if len(s.Reason) > MaxReasonLen {
		return fmt.Errorf("%w: reason is longer than %d bytes", ErrInvalid, MaxReasonLen)
	}
	if s.By == "" {
		return fmt.Errorf("%w: who engages it (by) is required", ErrInvalid)
	}
	return nil
}

// Engage stores and engages a switch with Scope, Target, Reason and By
// taken from s; it stops the very next decision in its scope. Engaging a
// scope and target that is already stopped returns the switch already
// engaged, so repeated automatic responses do not pile up switches. Each
// record given is called with the switch before it is stored; if one
// fails, nothing is stored.
func (b *Switchboard) Engage(ctx context.Context, s Switch, records ...Record) (Switch, error) {
	s = Switch{Scope: s.Scope, Target: s.Target, Agent: s.Agent, Reason: s.Reason, By: s.By}
	if err := s.Validate(); err != nil {
		return Switch{}, fmt.Errorf("engage kill switch: %w", err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, a := range b.active {
		if a.Scope == s.Scope && a.Target == s.Target && a.Agent == s.Agent {
			return a, nil
		}
	}
	now := b.clock().UTC()
	s.ID = newID(now)
	s.EngagedAt = now
	if err := record(ctx, records, Change{Event: "engage", Switch: s}); err != nil {
		return Switch{}, fmt.Errorf("engage kill switch: %w", err)
	}
	if err := b.st.InsertSwitch(ctx, s); err != nil {
		return Switch{}, fmt.Errorf("engage kill switch: %w", err)
	}
	b.active = append(b.active, s)
	b.publish()
	return s, nil
}

// Release lifts a switch and returns it as released. Who may release is
// for the caller to enforce (an admin only); by is recorded. Each record
// given is called with the released switch before it is stored; if one
// fails, the switch stays engaged.
func (b *Switchboard) Release(ctx context.Context, id, by string, records ...Record) (Switch, error) {
	if id == "" {
		return Switch{}, fmt.Errorf("release kill switch: %w: id is empty", ErrInvalid)
	}
	if by == "" {
		return Switch{}, fmt.Errorf("release kill switch %s: %w: who releases it (by) is required", id, ErrInvalid)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	sw, err := b.st.GetSwitch(ctx, id)
	if err != nil {
		return Switch{}, fmt.Errorf("release kill switch %s: %w", id, err)
	}
	if !sw.Engaged() {
		return Switch{}, fmt.Errorf("release kill switch %s: %w: it is already released", id, ErrConflict)
	}
	sw.ReleasedAt, sw.ReleasedBy = b.clock().UTC(), by
	if err := record(ctx, records, Change{Event: "release", Switch: sw}); err != nil {
		return Switch{}, fmt.Errorf("release kill switch %s: %w", id, err)
	}
	changed, err := b.st.ReleaseSwitch(ctx, id, by, sw.ReleasedAt)
	if err != nil {
		return Switch{}, fmt.Errorf("release kill switch %s: %w", id, err)
	}
	if !changed {
		return Switch{}, fmt.Errorf("release kill switch %s: %w: it was released meanwhile", id, ErrConflict)
	}
	b.active = slices.DeleteFunc(b.active, func(s Switch) bool { return s.ID == id })
	b.publish()
	return sw, nil
}

// List returns the switches in the store, engaged ones first in the order
// they were engaged; released ones too when includeReleased.
func (b *Switchboard) List(ctx context.Context, includeReleased bool) ([]Switch, error) {
	list, err := b.st.ListSwitches(ctx, includeReleased)
	if err != nil {
		return nil, fmt.Errorf("list kill switches: %w", err)
	}
	return list, nil
}

// publish builds a new snapshot from b.active. b.mu must be held.
func (b *Switchboard) publish() {
	s := &snapshot{n: len(b.active)}
	for i := range b.active {
		sw := b.active[i]
		p := &sw
		var m *map[string]*Switch
		key := sw.Target
		switch sw.Scope {
		case System:
			if s.system == nil {
				s.system = p
			}
			continue
		case Session:
			if s.sessions == nil {
				s.sessions = make(map[sessionKey]*Switch)
			}
			k := sessionKey{sw.Agent, sw.Target}
			if _, dup := s.sessions[k]; !dup {
				s.sessions[k] = p
			}
			s.anyAgent = s.anyAgent || sw.Agent == ""
			continue
		case Agent:
			m = &s.agents
		case Principal:
			kind, name, _ := strings.Cut(sw.Target, ":")
			key = name
			switch kind {
			case "user":
				m = &s.users
			case "team":
				m = &s.teams
			case "org":
				m = &s.orgs
			}
		}
		if m == nil {
			// A scope this version does not know: stop everything rather
			// than ignore a switch someone engaged.
			if s.system == nil {
				s.system = p
			}
			continue
		}
		if *m == nil {
			*m = make(map[string]*Switch)
		}
		if _, dup := (*m)[key]; !dup {
			(*m)[key] = p
		}
	}
	b.snap.Store(s)
}

// newID makes "kill_" and 26 base32 characters: the time, for ordering, and
// 80 random bits, for uniqueness.
func newID(now time.Time) string {
	var r [10]byte
	rand.Read(r[:])
	id := action.NewID(now.UnixMilli(), binary.BigEndian.Uint16(r[:2]), binary.BigEndian.Uint64(r[2:]))
	return "kill_" + id.String()[len("dec_"):]
}
