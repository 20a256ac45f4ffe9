// Package session keeps the lifecycle of agent sessions (created, active,
// paused, closed, killed) and answers, on the decision hot path, whether an
// action may run in a given session. Session ids are scoped to their agent:
// a session is named by its agent and its id together, so two agents that
// both use "s-1" have two sessions, and neither can touch, nor learn of,
// the other's. Pausing or ending a session stops every action in it on the
// very next decision; a pause by an operator holds until an operator lifts
// it.
//
// Session ids are chosen by agents, so a per-session limit bounds one
// conversation, not an agent: an agent can always start a new session.
// Limits an agent must not escape belong on the agent or its principal.
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
	"github.com/agentgov/agentgov/detect"
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

// Session is one agent session, named by AgentID and ID together.
type Session struct {
	ID        string    `json:"id"`
	AgentID   string    `json:"agent_id"`
	State     State     `json:"state"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// UpdatedBy is who made the last change: the agent that created it, or
	// the agent or operator that paused, resumed, closed or killed it.
	UpdatedBy string `json:"updated_by,omitempty"`
	// OperatorHold is set while an operator's pause holds the session:
	// only an operator resumes it.
	OperatorHold bool `json:"operator_hold,omitempty"`
	// Version orders the changes of a store shared by several processes
	// (see ChangeFeed): a later change has a higher version. 0 where the
	// store keeps none.
	Version uint64 `json:"-"`
}

// Actor is who asks for a change: the agent itself, or an operator.
type Actor struct {
	Name     string
	Operator bool
}

// Change is the audit record of a change to a session: the session as the
// change leaves it, and the state it left.
type Change struct {
	Event   string  `json:"event"` // "create", "pause", "resume", "close" or "kill"
	Session Session `json:"session"`
	From    State   `json:"from,omitempty"`
}

// Record writes a change to the audit log before it is made: it is given
// everything the change will write, and an error from it stops the change.
// The engine supplies it (govern.Engine.CreateSession and MoveSession); a
// nil Record records nothing.
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

// event names the transition to state to.
func event(to State) string {
	switch to {
	case Active:
		return "resume"
	case Paused:
		return "pause"
	case Closed:
		return "close"
	case Killed:
		return "kill"
	}
	return string(to)
}

var (
	// ErrNotFound is returned for a session id that does not exist.
	ErrNotFound = errors.New("session not found")
	// ErrConflict is returned when a change does not fit the session's
	// current state: an illegal transition, or an id the agent already
	// uses. The server maps it to 409.
	ErrConflict = errors.New("session conflict")
	// ErrForbidden is returned when the actor may not make the change: an
	// agent resuming a session an operator paused.
	ErrForbidden = errors.New("session change forbidden")
	// ErrInvalid is returned for malformed input (empty or over-long ids,
	// unknown states).
	ErrInvalid = errors.New("invalid session request")
)

// Store persists sessions, keyed by agent and id together.
// Implementations must make UpdateSession conditional on the current state,
// so that two concurrent transitions cannot both succeed from one state.
type Store interface {
	// InsertSession stores s unless its agent has a session with its id.
	// It returns the stored session and whether this call inserted it.
	InsertSession(ctx context.Context, s Session) (stored Session, inserted bool, err error)
	// GetSession returns the agent's session, or an error wrapping
	// ErrNotFound.
	GetSession(ctx context.Context, agentID, id string) (Session, error)
	// FindSessions returns the sessions of every agent with the id.
	FindSessions(ctx context.Context, id string) ([]Session, error)
	// UpdateSession writes to's state, hold, updated_at and updated_by,
	// only if the session is still in from's state and hold; changed is
	// false otherwise.
	UpdateSession(ctx context.Context, from, to Session) (changed bool, err error)
}

// ChangeFeed is offered by a store that several processes share: it lists
// the sessions changed since a version, so that each process can bring its
// cache up to date with the others' changes (Reload).
type ChangeFeed interface {
	// SessionVersion is the highest version of any session stored.
	SessionVersion(ctx context.Context) (uint64, error)
	// SessionsChangedAfter returns up to limit sessions whose Version is
	// above after, in Version order.
	SessionsChangedAfter(ctx context.Context, after uint64, limit int) ([]Session, error)
}

// MaxIDLen bounds session and agent ids, which arrive from untrusted callers.
const MaxIDLen = 128

// Sessions manages session lifecycles over a Store, with a write-through
// cache of the state of every session it has seen, so that Check is a map
// lookup. The cache trusts that this process is the only writer of
// sessions in the store, unless it is told of others' changes by Reload.
type Sessions struct {
	st    Store
	clock func() time.Time

	writeMu sync.Mutex // orders store writes with their cache updates
	mu      sync.RWMutex
	// cache holds states by agent, then session id: two string lookups
	// are cheaper than one on a key of two strings.
	cache map[string]map[string]cached
	// epoch counts the times Reload changed the cache. A session read from
	// the store while it moved may predate a change Reload has already
	// passed over, and is not cached (see rememberSince).
	epoch uint64
	// seen is the highest version Reload has applied; synced is set once
	// it is known. Only Reload touches them, under reloadMu.
	reloadMu sync.Mutex
	seen     uint64
	synced   bool
}

type cached struct {
	state   State
	version uint64
}

// New returns a session manager over st. clock gives the time recorded on
// every change.
func New(st Store, clock func() time.Time) *Sessions {
	return &Sessions{st: st, clock: clock, cache: make(map[string]map[string]cached)}
}

// reloadPage is how many changed sessions Reload reads at a time.
const reloadPage = 1000

// Reload brings the cache up to date with the changes other processes
// made to the store, for a replica told that sessions changed. With a
// store that offers a ChangeFeed it applies the sessions changed since the
// last Reload (the first one only notes where the feed stands, and drops
// what was cached before); with any other store it drops the cache, so
// that every session is read from the store again.
func (s *Sessions) Reload(ctx context.Context) error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	feed, ok := s.st.(ChangeFeed)
	if !ok || !s.synced {
		var v uint64
		if ok {
			var err error
			if v, err = feed.SessionVersion(ctx); err != nil {
				return fmt.Errorf("reload sessions: %w", err)
			}
		}
		s.mu.Lock()
		s.cache = make(map[string]map[string]cached)
		s.epoch++
		s.mu.Unlock()
		s.seen, s.synced = v, ok
		return nil
	}
	for {
		list, err := feed.SessionsChangedAfter(ctx, s.seen, reloadPage)
		if err != nil {
			return fmt.Errorf("reload sessions: %w", err)
		}
		if len(list) == 0 {
			return nil
		}
		s.mu.Lock()
		for _, se := range list {
			// Only sessions already cached: the others are read from the
			// store when first checked.
			if m := s.cache[se.AgentID]; m != nil {
				if cur, hit := m[se.ID]; hit && cur.version <= se.Version {
					m[se.ID] = cached{se.State, se.Version}
				}
			}
			s.seen = max(s.seen, se.Version)
		}
		s.epoch++
		s.mu.Unlock()
		if len(list) < reloadPage {
			return nil
		}
	}
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

// checkSessionID is checkID for a session id, which an agent chooses. Ids
// are stored in clear (here and in budget counters kept per session), and
// cannot be masked as free text is (two masked ids would be one), so an id
// that holds a credential or personal data is refused, without repeating it.
func checkSessionID(id string) error {
	if err := checkID("session id", id); err != nil {
		return err
	}
	if fs := append(detect.Secrets(id), detect.PII(id)...); len(fs) > 0 {
		return fmt.Errorf("%w: session id holds what looks like a %s; session ids are stored in clear, so they must not hold secrets or personal data", ErrInvalid, fs[0].Rule)
	}
	return nil
}

// Create starts a new session of agentID in state created, on behalf of
// by (the agent, or an operator). An empty id gets a generated one
// ("ses_..."); an id the agent already uses is a conflict, while another
// agent's session of the same id is no concern of this one. Each record
// given is called with the change before it is stored; if one fails,
// nothing is stored.
func (s *Sessions) Create(ctx context.Context, agentID, id string, by Actor, records ...Record) (Session, error) {
	if err := checkID("agent id", agentID); err != nil {
		return Session{}, fmt.Errorf("create session: %w", err)
	}
	if id == "" {
		id = newID(s.clock())
	} else if err := checkSessionID(id); err != nil {
		return Session{}, fmt.Errorf("create session: %w", err)
	}
	if by.Name == "" {
		by.Name = agentID
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	ep := s.currentEpoch()
	if cur, err := s.st.GetSession(ctx, agentID, id); err == nil {
		s.rememberSince(cur, ep)
		return Session{}, fmt.Errorf("create session %s: %w: it already exists", id, ErrConflict)
	} else if !errors.Is(err, ErrNotFound) {
		return Session{}, fmt.Errorf("create session %s: %w", id, err)
	}
	now := s.clock().UTC()
	se := Session{ID: id, AgentID: agentID, State: Created, CreatedAt: now, UpdatedAt: now, UpdatedBy: by.Name}
	if err := record(ctx, records, Change{Event: "create", Session: se}); err != nil {
		return Session{}, fmt.Errorf("create session %s: %w", id, err)
	}
	stored, inserted, err := s.st.InsertSession(ctx, se)
	if err != nil {
		return Session{}, fmt.Errorf("create session %s: %w", id, err)
	}
	s.rememberSince(stored, ep)
	if !inserted {
		return Session{}, fmt.Errorf("create session %s: %w: it already exists", id, ErrConflict)
	}
	return stored, nil
}

// Get returns agentID's session id from the store.
func (s *Sessions) Get(ctx context.Context, agentID, id string) (Session, error) {
	if err := checkSessionID(id); err != nil {
		return Session{}, fmt.Errorf("get session: %w", err)
	}
	ep := s.currentEpoch()
	got, err := s.st.GetSession(ctx, agentID, id)
	if err != nil {
		return Session{}, fmt.Errorf("get session %s: %w", id, err)
	}
	s.rememberSince(got, ep)
	return got, nil
}

// Find returns the sessions of every agent that uses id, for an operator
// who names a session by its id alone.
func (s *Sessions) Find(ctx context.Context, id string) ([]Session, error) {
	if err := checkSessionID(id); err != nil {
		return nil, fmt.Errorf("find session: %w", err)
	}
	list, err := s.st.FindSessions(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("find session %s: %w", id, err)
	}
	return list, nil
}

// Transition moves agentID's session id to state to on behalf of by. A
// transition the lifecycle does not allow is refused with an error
// wrapping ErrConflict that names both states; an agent resuming a session
// an operator paused, with ErrForbidden. An operator's pause holds the
// session until an operator resumes it. Each record given is called with
// the change before it is stored; if one fails, nothing is stored.
func (s *Sessions) Transition(ctx context.Context, agentID, id string, to State, by Actor, records ...Record) (Session, error) {
	if err := checkSessionID(id); err != nil {
		return Session{}, fmt.Errorf("session transition: %w", err)
	}
	if !to.Valid() {
		return Session{}, fmt.Errorf("session %s: %w: unknown state %q", id, ErrInvalid, to)
	}
	if by.Name == "" {
		return Session{}, fmt.Errorf("session %s: %w: who asks (by) is required", id, ErrInvalid)
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	// Read from the store, not the cache: the store is the authority and a
	// conditional update below catches anyone who changed it meanwhile.
	ep := s.currentEpoch()
	cur, err := s.st.GetSession(ctx, agentID, id)
	if err != nil {
		return Session{}, fmt.Errorf("session %s: %w", id, err)
	}
	if !cur.State.CanMoveTo(to) {
		s.rememberSince(cur, ep)
		return Session{}, fmt.Errorf("session %s: %w: cannot go from %s to %s", id, ErrConflict, cur.State, to)
	}
	if to == Active && cur.OperatorHold && !by.Operator {
		return Session{}, fmt.Errorf("session %s: %w: an operator (%s) paused it, and only an operator resumes it", id, ErrForbidden, cur.UpdatedBy)
	}
	next := cur
	next.State, next.UpdatedAt, next.UpdatedBy = to, s.clock().UTC(), by.Name
	switch to {
	case Paused:
		next.OperatorHold = by.Operator
	case Active:
		next.OperatorHold = false
	}
	if err := record(ctx, records, Change{Event: event(to), Session: next, From: cur.State}); err != nil {
		return Session{}, fmt.Errorf("session %s: %w", id, err)
	}
	changed, err := s.st.UpdateSession(ctx, cur, next)
	if err != nil {
		return Session{}, fmt.Errorf("session %s: %s to %s: %w", id, cur.State, to, err)
	}
	if !changed {
		s.forget(agentID, id)
		return Session{}, fmt.Errorf("session %s: %w: it changed while going from %s to %s", id, ErrConflict, cur.State, to)
	}
	s.rememberSince(next, ep)
	return next, nil
}

// Check reports whether agentID may act in its session id. It is the hot
// path: for a session already seen it is one map lookup. A session in state
// paused, closed or killed, and an unknown session, are refused with a
// reason fit to show the caller. err is set only when the store could not
// be read; callers then deny.
func (s *Sessions) Check(ctx context.Context, id, agentID string) (ok bool, reason string, err error) {
	st, hit := s.cached(agentID, id)
	if !hit {
		ep := s.currentEpoch()
		got, err := s.st.GetSession(ctx, agentID, id)
		if errors.Is(err, ErrNotFound) {
			return false, "session " + id + " does not exist", nil
		}
		if err != nil {
			return false, "session " + id + " could not be checked", fmt.Errorf("check session %s: %w", id, err)
		}
		s.rememberSince(got, ep)
		st = got.State
	}
	return verdict(id, st)
}

func verdict(id string, st State) (bool, string, error) {
	if !st.Runnable() {
		return false, "session " + id + " is " + string(st), nil
	}
	return true, "", nil
}

// Touch is Check for the engine, which lets an agent name a session it never
// created: an unknown id is created for agentID, already active. A session
// in state created becomes active on its first action. Everything Check
// refuses, Touch refuses too. The decision that names the session records
// its creation in the audit log.
func (s *Sessions) Touch(ctx context.Context, id, agentID string) (ok bool, reason string, err error) {
	st, hit := s.cached(agentID, id)
	if hit && st != Created {
		return verdict(id, st)
	}
	if err := checkSessionID(id); err != nil {
		return false, err.Error(), nil
	}
	if err := checkID("agent id", agentID); err != nil {
		return false, err.Error(), nil
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	ep := s.currentEpoch()
	now := s.clock().UTC()
	cur, _, err := s.st.InsertSession(ctx, Session{ID: id, AgentID: agentID, State: Active, CreatedAt: now, UpdatedAt: now, UpdatedBy: agentID})
	if err != nil {
		return false, "session " + id + " could not be checked", fmt.Errorf("touch session %s: %w", id, err)
	}
	if cur.State == Created {
		next := cur
		next.State, next.UpdatedAt, next.UpdatedBy = Active, now, agentID
		changed, err := s.st.UpdateSession(ctx, cur, next)
		if err != nil {
			return false, "session " + id + " could not be activated", fmt.Errorf("touch session %s: activate: %w", id, err)
		}
		if changed {
			cur = next
		} else if cur, err = s.st.GetSession(ctx, agentID, id); err != nil {
			return false, "session " + id + " could not be checked", fmt.Errorf("touch session %s: %w", id, err)
		}
	}
	s.rememberSince(cur, ep)
	return verdict(id, cur.State)
}

func (s *Sessions) cached(agentID, id string) (State, bool) {
	s.mu.RLock()
	c, hit := s.cache[agentID][id]
	s.mu.RUnlock()
	return c.state, hit
}

func (s *Sessions) currentEpoch() uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.epoch
}

// rememberSince caches se, read from (or written to) the store after
// epoch ep. A cached session of a higher version is newer and stays. A
// session not cached yet is cached only if Reload did not move meanwhile:
// Reload passes over sessions that are not cached, so a change it applied
// while se was read might be newer than se.
func (s *Sessions) rememberSince(se Session, ep uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.cache[se.AgentID]
	if cur, hit := m[se.ID]; hit {
		if cur.version <= se.Version {
			m[se.ID] = cached{se.State, se.Version}
		}
		return
	}
	if s.epoch != ep {
		return
	}
	if m == nil {
		m = make(map[string]cached)
		s.cache[se.AgentID] = m
	}
	m[se.ID] = cached{se.State, se.Version}
}

func (s *Sessions) forget(agentID, id string) {
	s.mu.Lock()
	delete(s.cache[agentID], id)
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
