package session_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentgov/agentgov/session"
	"github.com/agentgov/agentgov/store/sqlite"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func clock() time.Time { return t0 }

func openDB(t testing.TB, dir string) *sqlite.DB {
	t.Helper()
	db, err := sqlite.OpenDir(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func newSessions(t testing.TB) *session.Sessions {
	return session.New(openDB(t, t.TempDir()), clock)
}

var allStates = []session.State{session.Created, session.Active, session.Paused, session.Closed, session.Killed}

// reach creates a session and walks it to state st along legal transitions.
func reach(t *testing.T, s *session.Sessions, id string, st session.State) {
	t.Helper()
	ctx := context.Background()
	if _, err := s.Create(ctx, "agent-1", id); err != nil {
		t.Fatal(err)
	}
	var path []session.State
	switch st {
	case session.Active:
		path = []session.State{session.Active}
	case session.Paused:
		path = []session.State{session.Active, session.Paused}
	case session.Closed:
		path = []session.State{session.Active, session.Closed}
	case session.Killed:
		path = []session.State{session.Active, session.Killed}
	}
	for _, p := range path {
		if _, err := s.Transition(ctx, id, p, "ops"); err != nil {
			t.Fatalf("walking %s to %s: %v", id, st, err)
		}
	}
}

func TestEveryTransition(t *testing.T) {
	legal := map[[2]session.State]bool{
		{session.Created, session.Active}: true,
		{session.Created, session.Closed}: true,
		{session.Created, session.Killed}: true,
		{session.Active, session.Paused}:  true,
		{session.Active, session.Closed}:  true,
		{session.Active, session.Killed}:  true,
		{session.Paused, session.Active}:  true,
		{session.Paused, session.Closed}:  true,
		{session.Paused, session.Killed}:  true,
	}
	ctx := context.Background()
	s := newSessions(t)
	for _, from := range allStates {
		for _, to := range allStates {
			t.Run(fmt.Sprintf("%s_to_%s", from, to), func(t *testing.T) {
				id := fmt.Sprintf("s-%s-%s", from, to)
				reach(t, s, id, from)
				got, err := s.Transition(ctx, id, to, "ops")
				if legal[[2]session.State{from, to}] {
					if err != nil {
						t.Fatalf("legal transition refused: %v", err)
					}
					if got.State != to || got.UpdatedBy != "ops" {
						t.Fatalf("got %+v", got)
					}
					stored, err := s.Get(ctx, id)
					if err != nil || stored.State != to {
						t.Fatalf("stored state %q, %v; want %q", stored.State, err, to)
					}
					return
				}
				if !errors.Is(err, session.ErrConflict) {
					t.Fatalf("illegal transition: err = %v, want ErrConflict", err)
				}
				want := fmt.Sprintf("cannot go from %s to %s", from, to)
				if !strings.Contains(err.Error(), want) {
					t.Fatalf("error %q does not say %q", err, want)
				}
				stored, err := s.Get(ctx, id)
				if err != nil || stored.State != from {
					t.Fatalf("illegal transition changed the state to %q (%v)", stored.State, err)
				}
			})
		}
	}
}

func TestCheckByState(t *testing.T) {
	ctx := context.Background()
	s := newSessions(t)
	for _, st := range allStates {
		id := "s-" + string(st)
		reach(t, s, id, st)
		ok, reason, err := s.Check(ctx, id, "agent-1")
		if err != nil {
			t.Fatal(err)
		}
		wantOK := st == session.Created || st == session.Active
		if ok != wantOK {
			t.Errorf("%s: ok = %v, want %v", st, ok, wantOK)
		}
		if !wantOK && reason != "session "+id+" is "+string(st) {
			t.Errorf("%s: reason %q", st, reason)
		}
	}
}

func TestPauseTakesEffectOnNextCheck(t *testing.T) {
	ctx := context.Background()
	s := newSessions(t)
	reach(t, s, "s-1", session.Active)
	if ok, _, _ := s.Check(ctx, "s-1", "agent-1"); !ok {
		t.Fatal("active session refused")
	}
	if _, err := s.Transition(ctx, "s-1", session.Paused, "ops"); err != nil {
		t.Fatal(err)
	}
	if ok, reason, _ := s.Check(ctx, "s-1", "agent-1"); ok || reason != "session s-1 is paused" {
		t.Fatalf("paused session: ok=%v reason=%q", ok, reason)
	}
	if _, err := s.Transition(ctx, "s-1", session.Active, "ops"); err != nil {
		t.Fatal(err)
	}
	if ok, _, _ := s.Check(ctx, "s-1", "agent-1"); !ok {
		t.Fatal("resumed session refused")
	}
}

func TestSessionBelongsToOneAgent(t *testing.T) {
	ctx := context.Background()
	s := newSessions(t)
	reach(t, s, "s-1", session.Active)
	for name, check := range map[string]func(context.Context, string, string) (bool, string, error){"Check": s.Check, "Touch": s.Touch} {
		ok, reason, err := check(ctx, "s-1", "agent-2")
		if err != nil || ok {
			t.Fatalf("%s: another agent allowed: ok=%v err=%v", name, ok, err)
		}
		if reason != "session s-1 belongs to another agent" {
			t.Fatalf("%s: reason %q", name, reason)
		}
	}
	if got, _ := s.Get(ctx, "s-1"); got.AgentID != "agent-1" || got.State != session.Active {
		t.Fatalf("session changed by a refused agent: %+v", got)
	}
}

func TestCheckUnknownSession(t *testing.T) {
	s := newSessions(t)
	ok, reason, err := s.Check(context.Background(), "nope", "agent-1")
	if ok || err != nil || reason != "session nope does not exist" {
		t.Fatalf("ok=%v reason=%q err=%v", ok, reason, err)
	}
}

func TestTouchCreatesUnknownSessionActive(t *testing.T) {
	ctx := context.Background()
	s := newSessions(t)
	ok, reason, err := s.Touch(ctx, "s-new", "agent-1")
	if !ok || err != nil {
		t.Fatalf("ok=%v reason=%q err=%v", ok, reason, err)
	}
	got, err := s.Get(ctx, "s-new")
	if err != nil || got.State != session.Active || got.AgentID != "agent-1" || !got.CreatedAt.Equal(t0) {
		t.Fatalf("got %+v, %v", got, err)
	}
	// Another agent cannot take it over by touching it too.
	if ok, _, _ := s.Touch(ctx, "s-new", "agent-2"); ok {
		t.Fatal("second agent allowed in a session it did not create")
	}
}

func TestTouchActivatesCreatedSession(t *testing.T) {
	ctx := context.Background()
	s := newSessions(t)
	reach(t, s, "s-1", session.Created)
	if ok, _, err := s.Touch(ctx, "s-1", "agent-1"); !ok || err != nil {
		t.Fatalf("ok=%v err=%v", ok, err)
	}
	if got, _ := s.Get(ctx, "s-1"); got.State != session.Active {
		t.Fatalf("state %q, want active", got.State)
	}
}

func TestTouchRefusesEndedSessions(t *testing.T) {
	ctx := context.Background()
	s := newSessions(t)
	for _, st := range []session.State{session.Paused, session.Closed, session.Killed} {
		id := "s-" + string(st)
		reach(t, s, id, st)
		if ok, reason, _ := s.Touch(ctx, id, "agent-1"); ok || reason != "session "+id+" is "+string(st) {
			t.Errorf("%s: ok=%v reason=%q", st, ok, reason)
		}
	}
}

func TestTouchRefusesMalformedIDs(t *testing.T) {
	s := newSessions(t)
	for _, id := range []string{"", "has space", strings.Repeat("x", session.MaxIDLen+1)} {
		if ok, reason, _ := s.Touch(context.Background(), id, "agent-1"); ok || reason == "" {
			t.Errorf("id %q: ok=%v reason=%q", id, ok, reason)
		}
	}
}

func TestCreate(t *testing.T) {
	ctx := context.Background()
	s := newSessions(t)
	got, err := s.Create(ctx, "agent-1", "")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(got.ID, "ses_") || len(got.ID) != 30 || got.State != session.Created {
		t.Fatalf("generated session %+v", got)
	}
	if _, err := s.Create(ctx, "agent-2", got.ID); !errors.Is(err, session.ErrConflict) {
		t.Fatalf("taking an existing id: err = %v, want ErrConflict", err)
	}
	if again, _ := s.Get(ctx, got.ID); again.AgentID != "agent-1" {
		t.Fatalf("a refused create changed the owner: %+v", again)
	}
	for _, c := range []struct{ agent, id string }{{"", "s"}, {"agent-1", "bad id"}, {"agent-1", strings.Repeat("x", 200)}} {
		if _, err := s.Create(ctx, c.agent, c.id); !errors.Is(err, session.ErrInvalid) {
			t.Errorf("Create(%q, %q): err = %v, want ErrInvalid", c.agent, c.id, err)
		}
	}
	if _, err := s.Transition(ctx, got.ID, "finished", "ops"); !errors.Is(err, session.ErrInvalid) {
		t.Errorf("unknown state: err = %v", err)
	}
	if _, err := s.Transition(ctx, "missing", session.Paused, "ops"); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("unknown session: err = %v", err)
	}
}

func TestStateSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db, err := sqlite.OpenDir(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	s := session.New(db, clock)
	reach(t, s, "s-1", session.Paused)
	db.Close()

	s = session.New(openDB(t, dir), clock)
	if ok, reason, _ := s.Check(ctx, "s-1", "agent-1"); ok || reason != "session s-1 is paused" {
		t.Fatalf("after restart: ok=%v reason=%q", ok, reason)
	}
	if _, err := s.Transition(ctx, "s-1", session.Active, "ops"); err != nil {
		t.Fatal(err)
	}
}

// Two managers over one database stand in for a race between requests: of
// many concurrent pauses of one session exactly one wins.
func TestConcurrentTransitionsOneWins(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	a := session.New(openDB(t, dir), clock)
	b := session.New(openDB(t, dir), clock)
	reach(t, a, "s-1", session.Active)
	var wins atomic.Int32
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m := a
			if i%2 == 1 {
				m = b
			}
			_, err := m.Transition(ctx, "s-1", session.Paused, "ops")
			switch {
			case err == nil:
				wins.Add(1)
			case !errors.Is(err, session.ErrConflict):
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d pauses succeeded, want 1", wins.Load())
	}
}

func BenchmarkCheck(b *testing.B) {
	ctx := context.Background()
	s := session.New(openDB(b, b.TempDir()), clock)
	for i := range 1000 {
		if ok, _, err := s.Touch(ctx, fmt.Sprintf("s-%d", i), "agent-1"); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		if ok, _, _ := s.Check(ctx, "s-500", "agent-1"); !ok {
			b.Fatal("refused")
		}
	}
}

func BenchmarkCheckParallel(b *testing.B) {
	ctx := context.Background()
	s := session.New(openDB(b, b.TempDir()), clock)
	for i := range 1000 {
		if ok, _, err := s.Touch(ctx, fmt.Sprintf("s-%d", i), "agent-1"); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if ok, _, _ := s.Check(ctx, "s-500", "agent-1"); !ok {
				b.Error("refused")
				return
			}
		}
	})
}
