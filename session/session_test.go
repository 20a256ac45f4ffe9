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

// ops is an operator; agent1 the agent that owns the sessions of these
// tests.
var (
	ops    = session.Actor{Name: "ops", Operator: true}
	agent1 = session.Actor{Name: "agent-1"}
)

var allStates = []session.State{session.Created, session.Active, session.Paused, session.Closed, session.Killed}

// reach creates a session and walks it to state st along legal transitions.
func reach(t *testing.T, s *session.Sessions, id string, st session.State) {
	t.Helper()
	ctx := context.Background()
	if _, err := s.Create(ctx, "agent-1", id, agent1); err != nil {
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
		if _, err := s.Transition(ctx, "agent-1", id, p, ops); err != nil {
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
				got, err := s.Transition(ctx, "agent-1", id, to, ops)
				if legal[[2]session.State{from, to}] {
					if err != nil {
						t.Fatalf("legal transition refused: %v", err)
					}
					if got.State != to || got.UpdatedBy != "ops" {
						t.Fatalf("got %+v", got)
					}
					stored, err := s.Get(ctx, "agent-1", id)
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
				stored, err := s.Get(ctx, "agent-1", id)
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
	if _, err := s.Transition(ctx, "agent-1", "s-1", session.Paused, ops); err != nil {
		t.Fatal(err)
	}
	if ok, reason, _ := s.Check(ctx, "s-1", "agent-1"); ok || reason != "session s-1 is paused" {
		t.Fatalf("paused session: ok=%v reason=%q", ok, reason)
	}
	if _, err := s.Transition(ctx, "agent-1", "s-1", session.Active, ops); err != nil {
		t.Fatal(err)
	}
	if ok, _, _ := s.Check(ctx, "s-1", "agent-1"); !ok {
		t.Fatal("resumed session refused")
	}
}

// Session ids are per agent: another agent naming the same id acts in its
// own session, never in this one, and learns nothing of it.
func TestSessionIDsAreScopedToTheirAgent(t *testing.T) {
	ctx := context.Background()
	s := newSessions(t)
	reach(t, s, "s-1", session.Paused)
	if ok, reason, err := s.Check(ctx, "s-1", "agent-2"); ok || err != nil || reason != "session s-1 does not exist" {
		t.Fatalf("Check by another agent: ok=%v reason=%q err=%v", ok, reason, err)
	}
	// Touching the id makes agent-2 its own session, active: agent-1's
	// pause does not reach it, nor does agent-2 learn agent-1 has one.
	if ok, reason, err := s.Touch(ctx, "s-1", "agent-2"); !ok || err != nil {
		t.Fatalf("Touch by another agent: ok=%v reason=%q err=%v", ok, reason, err)
	}
	if got, _ := s.Get(ctx, "agent-2", "s-1"); got.AgentID != "agent-2" || got.State != session.Active {
		t.Fatalf("agent-2's session: %+v", got)
	}
	if got, _ := s.Get(ctx, "agent-1", "s-1"); got.State != session.Paused {
		t.Fatalf("agent-1's session changed: %+v", got)
	}
	// A transition names the agent's own session only.
	if _, err := s.Transition(ctx, "agent-2", "s-1", session.Closed, session.Actor{Name: "agent-2"}); err != nil {
		t.Fatal(err)
	}
	if ok, _, _ := s.Check(ctx, "s-1", "agent-1"); ok {
		t.Fatal("agent-1's paused session runs")
	}
	if got, _ := s.Get(ctx, "agent-1", "s-1"); got.State != session.Paused {
		t.Fatalf("agent-2 closed agent-1's session: %+v", got)
	}
	if list, err := s.Find(ctx, "s-1"); err != nil || len(list) != 2 {
		t.Fatalf("Find: %+v %v", list, err)
	}
}

// An agent may pause and resume its own session, but a pause by an
// operator holds until an operator lifts it.
func TestOperatorPauseHoldsAgainstTheAgent(t *testing.T) {
	ctx := context.Background()
	s := newSessions(t)
	reach(t, s, "s-1", session.Active)
	if _, err := s.Transition(ctx, "agent-1", "s-1", session.Paused, agent1); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Transition(ctx, "agent-1", "s-1", session.Active, agent1); err != nil || got.OperatorHold {
		t.Fatalf("the agent resuming its own pause: %+v %v", got, err)
	}
	paused, err := s.Transition(ctx, "agent-1", "s-1", session.Paused, ops)
	if err != nil || !paused.OperatorHold {
		t.Fatalf("operator pause: %+v %v", paused, err)
	}
	if _, err := s.Transition(ctx, "agent-1", "s-1", session.Active, agent1); !errors.Is(err, session.ErrForbidden) {
		t.Fatalf("the agent resuming an operator's pause: %v", err)
	}
	if ok, _, _ := s.Check(ctx, "s-1", "agent-1"); ok {
		t.Fatal("the session runs after a refused resume")
	}
	if got, err := s.Transition(ctx, "agent-1", "s-1", session.Active, ops); err != nil || got.OperatorHold || got.State != session.Active {
		t.Fatalf("operator resume: %+v %v", got, err)
	}
	// Ending a held session is still the agent's to do.
	if _, err := s.Transition(ctx, "agent-1", "s-1", session.Paused, ops); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Transition(ctx, "agent-1", "s-1", session.Closed, agent1); err != nil {
		t.Fatalf("the agent closing a held session: %v", err)
	}
}

// A change is recorded, whole, before it is made; one that cannot be
// recorded is not made.
func TestChangesAreRecordedBeforeTheyAreMade(t *testing.T) {
	ctx := context.Background()
	s := newSessions(t)
	down := func(context.Context, session.Change) error { return errors.New("audit log down") }
	if _, err := s.Create(ctx, "agent-1", "s-1", agent1, down); err == nil {
		t.Fatal("created without a record")
	}
	if _, err := s.Get(ctx, "agent-1", "s-1"); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("created although not recorded: %v", err)
	}
	var got []session.Change
	rec := func(_ context.Context, c session.Change) error { got = append(got, c); return nil }
	created, err := s.Create(ctx, "agent-1", "s-1", agent1, rec)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Transition(ctx, "agent-1", "s-1", session.Closed, ops, down); err == nil {
		t.Fatal("closed without a record")
	}
	if cur, _ := s.Get(ctx, "agent-1", "s-1"); cur.State != session.Created {
		t.Fatalf("closed although not recorded: %+v", cur)
	}
	closed, err := s.Transition(ctx, "agent-1", "s-1", session.Closed, ops, rec)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Event != "create" || got[0].Session != created || got[1].Event != "close" ||
		got[1].Session != closed || got[1].From != session.Created || got[1].Session.UpdatedBy != "ops" {
		t.Fatalf("recorded %+v", got)
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
	got, err := s.Get(ctx, "agent-1", "s-new")
	if err != nil || got.State != session.Active || got.AgentID != "agent-1" || !got.CreatedAt.Equal(t0) {
		t.Fatalf("got %+v, %v", got, err)
	}
}

func TestTouchActivatesCreatedSession(t *testing.T) {
	ctx := context.Background()
	s := newSessions(t)
	reach(t, s, "s-1", session.Created)
	if ok, _, err := s.Touch(ctx, "s-1", "agent-1"); !ok || err != nil {
		t.Fatalf("ok=%v err=%v", ok, err)
	}
	if got, _ := s.Get(ctx, "agent-1", "s-1"); got.State != session.Active {
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
	got, err := s.Create(ctx, "agent-1", "", agent1)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(got.ID, "ses_") || len(got.ID) != 30 || got.State != session.Created || got.UpdatedBy != "agent-1" {
		t.Fatalf("generated session %+v", got)
	}
	if _, err := s.Create(ctx, "agent-1", got.ID, agent1); !errors.Is(err, session.ErrConflict) {
		t.Fatalf("the agent reusing its own id: err = %v, want ErrConflict", err)
	}
	// Another agent's session of the same id is its own.
	if other, err := s.Create(ctx, "agent-2", got.ID, ops); err != nil || other.AgentID != "agent-2" || other.UpdatedBy != "ops" {
		t.Fatalf("another agent's session of the same id: %+v %v", other, err)
	}
	if again, _ := s.Get(ctx, "agent-1", got.ID); again.AgentID != "agent-1" || again.State != session.Created {
		t.Fatalf("another agent's create changed this one: %+v", again)
	}
	for _, c := range []struct{ agent, id string }{{"", "s"}, {"agent-1", "bad id"}, {"agent-1", strings.Repeat("x", 200)}} {
		if _, err := s.Create(ctx, c.agent, c.id, agent1); !errors.Is(err, session.ErrInvalid) {
			t.Errorf("Create(%q, %q): err = %v, want ErrInvalid", c.agent, c.id, err)
		}
	}
	if _, err := s.Transition(ctx, "agent-1", got.ID, "finished", ops); !errors.Is(err, session.ErrInvalid) {
		t.Errorf("unknown state: err = %v", err)
	}
	if _, err := s.Transition(ctx, "agent-1", "missing", session.Paused, ops); !errors.Is(err, session.ErrNotFound) {
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
	if _, err := s.Transition(ctx, "agent-1", "s-1", session.Active, ops); err != nil {
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
			_, err := m.Transition(ctx, "agent-1", "s-1", session.Paused, ops)
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
