package sre

import (
	"context"
	crand "crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// Incident is something that went wrong and someone should look at: a
// circuit that opened, an SLO that pages, a kill switch engaged. It stays
// open, gathering a timeline of what happened and of the decisions
// involved, until an admin closes it.
type Incident struct {
	ID       string     `json:"id"`
	Kind     string     `json:"kind"`    // breaker, slo or kill
	Subject  string     `json:"subject"` // "BREAKER KEY", the SLO's id, the kill switch's id
	Title    string     `json:"title"`
	Severity string     `json:"severity"` // critical (an SLO page, a kill switch) or high (a circuit)
	Status   string     `json:"status"`   // open or closed
	OpenedAt time.Time  `json:"opened_at"`
	ClosedAt *time.Time `json:"closed_at,omitempty"`
	ClosedBy string     `json:"closed_by,omitempty"`
	Note     string     `json:"note,omitempty"`
	Timeline []Entry    `json:"timeline"`
	// Dropped counts the oldest timeline entries let go past MaxTimeline.
	Dropped int `json:"dropped,omitempty"`
}

// Entry is one line of an incident's timeline.
type Entry struct {
	At       time.Time `json:"at"`
	Kind     string    `json:"kind"` // opened, closed, a reliability event's kind, decision, outcome
	Decision string    `json:"decision,omitempty"`
	Message  string    `json:"message"`
}

// Bounds of the incidents kept.
const (
	// MaxTimeline bounds one incident's timeline; the oldest entries
	// after its opening go first.
	MaxTimeline = 200
	// MaxIncidents bounds the incidents kept; the oldest closed go first.
	MaxIncidents = 1000
)

// Errors of Close, for the server to map.
var (
	ErrNoIncident     = errors.New("no such incident")
	ErrIncidentClosed = errors.New("the incident is closed already")
)

// Incidents keeps the incidents of one server, in memory as the circuits
// and SLIs that open them are; every opening and closing is in the audit
// log.
type Incidents struct {
	clock func() time.Time
	audit Auditor
	log   *slog.Logger

	mu   sync.Mutex
	list []*Incident          // in the order they opened
	open map[string]*Incident // kind + " " + subject → the open one
}

// NewIncidents returns an empty set of incidents; audit may be nil.
func NewIncidents(clock func() time.Time, audit Auditor, log *slog.Logger) *Incidents {
	if clock == nil {
		clock = time.Now
	}
	if log == nil {
		log = slog.Default()
	}
	return &Incidents{clock: clock, audit: audit, log: log, open: map[string]*Incident{}}
}

var idEncoding = base32.NewEncoding("0123456789ABCDEFGHJKMNPQRSTVWXYZ").WithPadding(base32.NoPadding)

func newIncidentID(at time.Time) string {
	var b [10]byte
	crand.Read(b[:])
	return fmt.Sprintf("inc_%s%s", idEncoding.EncodeToString([]byte{byte(at.Unix() >> 24), byte(at.Unix() >> 16), byte(at.Unix() >> 8), byte(at.Unix())}), idEncoding.EncodeToString(b[:]))
}

// Raise records what happened on subject: it opens an incident when none
// is open for it and open says one should be, and otherwise adds to the
// open one's timeline. Related decisions follow the event in the timeline.
func (s *Incidents) Raise(ctx context.Context, kind, subject, title, severity string, open bool, ev Entry, related ...Entry) {
	s.mu.Lock()
	key := kind + " " + subject
	inc := s.open[key]
	opened := false
	if inc == nil {
		if !open {
			s.mu.Unlock()
			return
		}
		now := ev.At
		inc = &Incident{ID: newIncidentID(now), Kind: kind, Subject: subject, Title: title, Severity: severity, Status: "open", OpenedAt: now}
		s.open[key] = inc
		s.list = append(s.list, inc)
		s.trim()
		opened = true
		ev.Kind = "opened: " + ev.Kind
	}
	add(inc, ev)
	for _, r := range related {
		add(inc, r)
	}
	snapshot := *inc
	snapshot.Timeline = nil
	s.mu.Unlock()
	if opened {
		s.record(ctx, map[string]any{"event": "opened", "incident": snapshot, "cause": ev.Message})
	}
}

// Relate adds a decision to the timeline of the open incident of kind on
// subject, if there is one.
func (s *Incidents) Relate(kind, subject string, e Entry) {
	s.mu.Lock()
	if inc := s.open[kind+" "+subject]; inc != nil {
		add(inc, e)
	}
	s.mu.Unlock()
}

// add appends e to inc's timeline, letting the oldest entries after the
// opening go past MaxTimeline. s.mu is held.
func add(inc *Incident, e Entry) {
	if len(inc.Timeline) >= MaxTimeline {
		inc.Timeline = append(inc.Timeline[:1], inc.Timeline[2:]...)
		inc.Dropped++
	}
	inc.Timeline = append(inc.Timeline, e)
}

// trim lets the oldest closed incidents go past MaxIncidents. s.mu is held.
func (s *Incidents) trim() {
	for len(s.list) > MaxIncidents {
		i := slices.IndexFunc(s.list, func(inc *Incident) bool { return inc.Status == "closed" })
		if i < 0 {
			return // all open: keep them
		}
		s.list = slices.Delete(s.list, i, i+1)
	}
}

// Close closes an open incident on behalf of by, recording it in the
// audit log first: an incident whose closing is not recorded stays open.
func (s *Incidents) Close(ctx context.Context, id, by, note string) (Incident, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := slices.IndexFunc(s.list, func(inc *Incident) bool { return inc.ID == id })
	if i < 0 {
		return Incident{}, fmt.Errorf("%w: %s", ErrNoIncident, id)
	}
	inc := s.list[i]
	if inc.Status == "closed" {
		return Incident{}, fmt.Errorf("%w: %s", ErrIncidentClosed, id)
	}
	now := s.clock()
	if err := s.record(ctx, map[string]any{"event": "closed", "incident": id, "by": by, "note": note}); err != nil {
		return Incident{}, err
	}
	inc.Status, inc.ClosedAt, inc.ClosedBy, inc.Note = "closed", &now, by, note
	add(inc, Entry{At: now, Kind: "closed", Message: "closed by " + by + noteSuffix(note)})
	delete(s.open, inc.Kind+" "+inc.Subject)
	return copyIncident(inc), nil
}

func noteSuffix(note string) string {
	if note == "" {
		return ""
	}
	return ": " + note
}

func (s *Incidents) record(ctx context.Context, rec map[string]any) error {
	if s.audit == nil {
		return nil
	}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if _, err := s.audit.Append(actx, "incident", rec); err != nil {
		s.log.Error("incident change not audited", "event", rec["event"], "err", err)
		return fmt.Errorf("audit log unavailable, the incident is unchanged: %w", err)
	}
	return nil
}

func copyIncident(inc *Incident) Incident {
	c := *inc
	c.Timeline = slices.Clone(inc.Timeline)
	return c
}

// List returns the incidents, newest first: open, closed or both (status
// "").
func (s *Incidents) List(status string) []Incident {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []Incident{}
	for i := len(s.list) - 1; i >= 0; i-- {
		if status == "" || s.list[i].Status == status {
			out = append(out, copyIncident(s.list[i]))
		}
	}
	return out
}

// Get returns one incident.
func (s *Incidents) Get(id string) (Incident, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, inc := range s.list {
		if inc.ID == id {
			return copyIncident(inc), nil
		}
	}
	return Incident{}, fmt.Errorf("%w: %s", ErrNoIncident, id)
}
