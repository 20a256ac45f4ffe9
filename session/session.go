// Package session keeps the lifecycle of agent sessions (created, active,
// paused, closed, killed) and answers, on the decision hot path, whether an
// action may run in a given session. A session belongs to exactly one agent;
// pausing or ending it stops every action in it on the very next decision.
package session

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/agentgov/agentgov/action"
)

// State is where a session is in its lifecycle.
type State string

const (
	Created State = "created"
	Active  State = "active"
	Paused  State = "paused"
	Closed  State = "closed"
	Killed  State = "killed"
)

// transitions lists, for each state, the states it may move to. Closed and
// killed are final: nothing reopens a session that an operator ended.
var transitions = map[State][]State{
	Created: {Active, Closed, Killed},
	Active:  {Paused, Closed, Killed},
	Paused:  {Active, Closed, Killed},
	Closed:  nil,
	Killed:  nil,
}

// Valid reports whether s is a known state.
func (s State) Valid() bool {
	_, ok := transitions[s]
	return ok
}

// CanMoveTo reports whether the lifecycle allows going from s to to.
func (s State) CanMoveTo(to State) bool {
	for _, t := range transitions[s] {
		if t == to {
			return true
		}
	}
	return false
}

// Runnable reports whether actions may run in a session in state s.
func (s State) Runnable() bool { return s == Created || s == Active }

// Session is one agent session.
type Session struct {
	ID        string    `json:"id"`
	AgentID   string    `json:"agent_id"`
	State     State     `json:"state"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// UpdatedBy is who made the last change: the agent that created it, or
	// the operator that paused, resumed, closed or killed it.
	UpdatedBy string `json:"updated_by,omitempty"`
}

var (
	// ErrNotFound is returned for a session id that does not exist.
	ErrNotFound = errors.New("session not found")
	// ErrConflict is returned when a change does not fit the session's
	// current state: an illegal transition, an id already taken, or a
	// session that belongs to another agent. The server maps it to 409.
	ErrConflict = errors.New("session conflict")
	// ErrInvalid is returned for malformed input (empty or over-long ids,
	// unknown states).
	ErrInvalid = errors.New("invalid session request")
)

// Store persists sessions. Implementations must make UpdateSessionState
// conditional on the current state, so that two concurrent transitions
// cannot both succeed from the same state.
type Store interface {
	// InsertSession stores s unless a session with its id exists. It
	// returns the stored session and whether it was inserted by this call.
	InsertSession(ctx context.Context, s Session) (stored Session, inserted bool, err error)
	// GetSession returns the session, or an error wrapping ErrNotFound.
	GetSession(ctx context.Context, id string) (Session, error)
	// UpdateSessionState moves the session from state from to state to,
	// only if it is in state from; changed is false otherwise.
	UpdateSessionState(ctx context.Context, id string, from, to State, by string, at time.Time) (changed bool, err error)
}

// MaxIDLen bounds session and agent ids, which arrive from untrusted callers.
const MaxIDLen = 128

// entry is what the hot path needs to know about a session.
type entry struct {
	agentID string
	state   State
}

// Sessions manages session lifecycles over a Store, with a write-through
// cache of every session it has seen so that Check is a map lookup. The cache
// trusts that this process is the only writer of sessions in the store.
type Sessions struct {
	st    Store
	clock func() time.Time

	writeMu sync.Mutex // orders store writes with their cache updates
	mu      sync.RWMutex
	cache   map[string]entry
}

// New returns a session manager over st. clock gives the time recorded on
// every change.
func New(st Store, clock func() time.Time) *Sessions {
	return &Sessions{st: st, clock: clock, cache: make(map[string]entry)}
}

func checkID(what, id string) error {
	if id == "" {
		return fmt.Errorf("%w: %s is empty", ErrInvalid, what)
	}
	if len(id) > MaxIDLen {
		return fmt.Errorf("%w: %s is longer than %d bytes", ErrInvalid, what, MaxIDLen)
	}
	for _, c := range []byte(id) {
		if c < 0x21 || c == 0x7f {
			return fmt.Errorf("%w: %s %q contains spaces or control characters", ErrInvalid, what, id)
		}
	}
	return nil
}

// Create starts a new session for agentID in state created. An empty id
// gets a generated one ("ses_..."); an id that is already taken is a conflict.
func (s *Sessions) Create(ctx context.Context, agentID, id string) (Session, error) {
	if err := checkID("agent id", agentID); err != nil {
		return Session{}, fmt.Errorf("create session: %w", err)
	}
	if id == "" {
		id = newID(s.clock())
	} else if err := checkID("session id", id); err != nil {
		return Session{}, fmt.Errorf("create session: %w", err)
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	now := s.clock().UTC()
	stored, inserted, err := s.st.InsertSession(ctx, Session{ID: id, AgentID: agentID, State: Created, CreatedAt: now, UpdatedAt: now, UpdatedBy: agentID})
	if err != nil {
		return Session{}, fmt.Errorf("create session %s: %w", id, err)
	}
	s.remember(stored)
	if !inserted {
		return Session{}, fmt.Errorf("create session %s: %w: it already exists", id, ErrConflict)
	}
	return stored, nil
}

// Get returns a session from the store.
func (s *Sessions) Get(ctx context.Context, id string) (Session, error) {
	if err := checkID("session id", id); err != nil {
		return Session{}, fmt.Errorf("get session: %w", err)
	}
	got, err := s.st.GetSession(ctx, id)
	if err != nil {
		return Session{}, fmt.Errorf("get session %s: %w", id, err)
	}
	s.remember(got)
	return got, nil
}

// Transition moves a session to state to on behalf of by (the operator or
// agent asking). A transition the lifecycle does not allow is refused with
// an error wrapping ErrConflict that names both states.
func (s *Sessions) Transition(ctx context.Context, id string, to State, by string) (Session, error) {
	if err := checkID("session id", id); err != nil {
		return Session{}, fmt.Errorf("session transition: %w", err)
	}
	if !to.Valid() {
		return Session{}, fmt.Errorf("session %s: %w: unknown state %q", id, ErrInvalid, to)
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	// Read from the store, not the cache: the store is the authority and a
	// conditional update below catches anyone who changed it meanwhile.
	cur, err := s.st.GetSession(ctx, id)
	if err != nil {
		return Session{}, fmt.Errorf("session %s: %w", id, err)
	}
	if !cur.State.CanMoveTo(to) {
		s.remember(cur)
		return Session{}, fmt.Errorf("session %s: %w: cannot go from %s to %s", id, ErrConflict, cur.State, to)
	}
	now := s.clock().UTC()
	changed, err := s.st.UpdateSessionState(ctx, id, cur.State, to, by, now)
	if err != nil {
		return Session{}, fmt.Errorf("session %s: %s to %s: %w", id, cur.State, to, err)
	}
	if !changed {
		s.forget(id)
		return Session{}, fmt.Errorf("session %s: %w: it changed while going from %s to %s", id, ErrConflict, cur.State, to)
	}
	cur.State, cur.UpdatedAt, cur.UpdatedBy = to, now, by
	s.remember(cur)
	return cur, nil
}

// Check reports whether agentID may act in session id. It is the hot path:
// for a session already seen it is one map lookup. A session in state
// paused, closed or killed, a session of another agent and an unknown
// session are refused, with a reason fit to show the caller. err is set
// only when the store could not be read; callers then deny.
func (s *Sessions) Check(ctx context.Context, id, agentID string) (ok bool, reason string, err error) {
	s.mu.RLock()
	e, hit := s.cache[id]
	s.mu.RUnlock()
	if !hit {
		got, err := s.st.GetSession(ctx, id)
		if errors.Is(err, ErrNotFound) {
			return false, "session " + id + " does not exist", nil
		}
		if err != nil {
			return false, "session " + id + " could not be checked", fmt.Errorf("check session %s: %w", id, err)
		}
		s.remember(got)
		e = entry{got.AgentID, got.State}
	}
	return verdict(id, agentID, e)
}

func verdict(id, agentID string, e entry) (bool, string, error) {
	if e.agentID != agentID {
		return false, "session " + id + " belongs to another agent", nil
	}
	if !e.state.Runnable() {
		return false, "session " + id + " is " + string(e.state), nil
	}
	return true, "", nil
}

// Touch is Check for the engine, which lets an agent name a session it never
// created: an unknown id is created for agentID, already active. A session
// in state created becomes active on its first action. Everything Check
// refuses, Touch refuses too.
func (s *Sessions) Touch(ctx context.Context, id, agentID string) (ok bool, reason string, err error) {
	s.mu.RLock()
	e, hit := s.cache[id]
	s.mu.RUnlock()
	if hit && (e.state != Created || e.agentID != agentID) {
		return verdict(id, agentID, e)
	}
	if err := checkID("session id", id); err != nil {
		return false, err.Error(), nil
	}
	if err := checkID("agent id", agentID); err != nil {
		return false, err.Error(), nil
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	now := s.clock().UTC()
	cur, _, err := s.st.InsertSession(ctx, Session{ID: id, AgentID: agentID, State: Active, CreatedAt: now, UpdatedAt: now, UpdatedBy: agentID})
	if err != nil {
		return false, "session " + id + " could not be checked", fmt.Errorf("touch session %s: %w", id, err)
	}
	if cur.AgentID == agentID && cur.State == Created {
		changed, err := s.st.UpdateSessionState(ctx, id, Created, Active, agentID, now)
		if err != nil {
			return false, "session " + id + " could not be activated", fmt.Errorf("touch session %s: activate: %w", id, err)
		}
		if changed {
			cur.State, cur.UpdatedAt, cur.UpdatedBy = Active, now, agentID
		} else if cur, err = s.st.GetSession(ctx, id); err != nil {
			return false, "session " + id + " could not be checked", fmt.Errorf("touch session %s: %w", id, err)
		}
	}
	s.remember(cur)
	return verdict(id, agentID, entry{cur.AgentID, cur.State})
}

func (s *Sessions) remember(se Session) {
	s.mu.Lock()
	s.cache[se.ID] = entry{se.AgentID, se.State}
	s.mu.Unlock()
}

func (s *Sessions) forget(id string) {
	s.mu.Lock()
	delete(s.cache, id)
	s.mu.Unlock()
}

// newID makes "ses_" and 26 base32 characters: the time, for ordering, and
// 80 random bits, for uniqueness.
func newID(now time.Time) string {
	var b [10]byte
	rand.Read(b[:])
	id := action.NewID(now.UnixMilli(), binary.BigEndian.Uint16(b[:2]), binary.BigEndian.Uint64(b[2:]))
	return "ses_" + id.String()[len("dec_"):]
}
