package storetest

import (
	"bytes"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentgov/agentgov/killswitch"
	"github.com/agentgov/agentgov/session"
	"github.com/agentgov/agentgov/store"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)

// sameSession compares sessions without their versions, which a backend
// may or may not keep.
func sameSession(a, b session.Session) bool {
	a.Version, b.Version = 0, 0
	return a == b
}

func testSessions(t *testing.T, b Backend) {
	ctx := bg
	db := open(t, b)
	s := session.Session{ID: "s-1", AgentID: "a1", State: session.Created, CreatedAt: t0, UpdatedAt: t0, UpdatedBy: "a1"}
	got, inserted, err := db.InsertSession(ctx, s)
	if err != nil || !inserted || !sameSession(got, s) {
		t.Fatalf("insert = %+v, %v, %v", got, inserted, err)
	}
	// The same id of the same agent is not inserted again; the stored one
	// comes back.
	other := s
	other.State, other.UpdatedBy = session.Active, "someone"
	got, inserted, err = db.InsertSession(ctx, other)
	if err != nil || inserted || !sameSession(got, s) {
		t.Fatalf("second insert = %+v, %v, %v", got, inserted, err)
	}
	// Another agent's session of the same id is its own.
	s2 := s
	s2.AgentID = "a2"
	if _, inserted, err := db.InsertSession(ctx, s2); err != nil || !inserted {
		t.Fatalf("another agent's session: %v %v", inserted, err)
	}
	if got, err := db.GetSession(ctx, "a1", "s-1"); err != nil || !sameSession(got, s) {
		t.Fatalf("get = %+v, %v", got, err)
	}
	if _, err := db.GetSession(ctx, "a3", "s-1"); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("another agent's id: %v", err)
	}
	list, err := db.FindSessions(ctx, "s-1")
	if err != nil || len(list) != 2 || list[0].AgentID != "a1" || list[1].AgentID != "a2" {
		t.Fatalf("find = %+v, %v", list, err)
	}
	// Updates are conditional on the state and hold they start from.
	next := s
	next.State, next.OperatorHold, next.UpdatedAt, next.UpdatedBy = session.Paused, true, t0.Add(time.Second), "ops"
	if changed, err := db.UpdateSession(ctx, s, next); err != nil || !changed {
		t.Fatalf("update = %v, %v", changed, err)
	}
	if changed, err := db.UpdateSession(ctx, s, next); err != nil || changed {
		t.Fatalf("update from a state it left = %v, %v", changed, err)
	}
	if got, _ := db.GetSession(ctx, "a1", "s-1"); !sameSession(got, next) {
		t.Fatalf("after update %+v, want %+v", got, next)
	}
	if got, _ := db.GetSession(ctx, "a2", "s-1"); got.State != session.Created {
		t.Fatalf("the other agent's session moved: %+v", got)
	}
	// A store that keeps versions gives a later change a higher one.
	if feed, ok := db.(session.ChangeFeed); ok {
		v, err := feed.SessionVersion(ctx)
		if err != nil || v == 0 {
			t.Fatalf("session version %d, %v", v, err)
		}
		changed, err := feed.SessionsChangedAfter(ctx, 0, 10)
		if err != nil || len(changed) != 2 || changed[0].AgentID != "a2" || changed[1].AgentID != "a1" ||
			changed[1].Version <= changed[0].Version || changed[1].Version > v {
			t.Fatalf("changed sessions %+v, %v (version %d)", changed, err, v)
		}
		if more, _ := feed.SessionsChangedAfter(ctx, changed[1].Version, 10); len(more) != 0 {
			t.Fatalf("changes after the last: %+v", more)
		}
	}
}

// Of concurrent transitions of one session from one state, through any
// handles, exactly one wins.
func testSessionTransitionsOneWins(t *testing.T, b Backend) {
	opener := b.Fresh(t)
	a := session.New(opener(t, "r1", NewKey(t, "agentgov-test/r1").Text), func() time.Time { return t0 })
	c := session.New(opener(t, "r2", NewKey(t, "agentgov-test/r2").Text), func() time.Time { return t0 })
	if _, err := a.Create(bg, "a1", "s-1", session.Actor{Name: "a1"}); err != nil {
		t.Fatal(err)
	}
	var won atomic.Int32
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m := []*session.Sessions{a, c}[i%2]
			to := []session.State{session.Closed, session.Killed}[i%2]
			if _, err := m.Transition(bg, "a1", "s-1", to, session.Actor{Name: "ops", Operator: true}); err == nil {
				won.Add(1)
			} else if !errors.Is(err, session.ErrConflict) {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if won.Load() != 1 {
		t.Fatalf("%d transitions won, want 1", won.Load())
	}
}

func testKillSwitches(t *testing.T, b Backend) {
	ctx := bg
	db := open(t, b)
	s := killswitch.Switch{ID: "kill_1", Scope: killswitch.Session, Target: "s-1", Agent: "a1", Reason: "r", By: "ops", EngagedAt: t0}
	if err := db.InsertSwitch(ctx, s); err != nil {
		t.Fatal(err)
	}
	if err := db.InsertSwitch(ctx, s); err == nil {
		t.Fatal("a second switch with the same id was stored")
	}
	s2 := killswitch.Switch{ID: "kill_2", Scope: killswitch.System, Reason: "all", By: "ops", EngagedAt: t0.Add(time.Second)}
	if err := db.InsertSwitch(ctx, s2); err != nil {
		t.Fatal(err)
	}
	if got, err := db.GetSwitch(ctx, "kill_1"); err != nil || got != s {
		t.Fatalf("get = %+v, %v", got, err)
	}
	if _, err := db.GetSwitch(ctx, "kill_none"); !errors.Is(err, killswitch.ErrNotFound) {
		t.Fatalf("unknown switch: %v", err)
	}
	if changed, err := db.ReleaseSwitch(ctx, "kill_1", "boss", t0.Add(time.Minute)); err != nil || !changed {
		t.Fatalf("release = %v, %v", changed, err)
	}
	if changed, err := db.ReleaseSwitch(ctx, "kill_1", "boss", t0.Add(time.Hour)); err != nil || changed {
		t.Fatalf("second release = %v, %v", changed, err)
	}
	list, err := db.ListSwitches(ctx, false)
	if err != nil || len(list) != 1 || list[0].ID != "kill_2" {
		t.Fatalf("engaged = %+v, %v", list, err)
	}
	list, err = db.ListSwitches(ctx, true)
	if err != nil || len(list) != 2 || list[0].ID != "kill_2" || list[1].ID != "kill_1" ||
		!list[1].ReleasedAt.Equal(t0.Add(time.Minute)) || list[1].ReleasedBy != "boss" {
		t.Fatalf("all = %+v, %v", list, err)
	}
}

func testOutcomeClaimedOnce(t *testing.T, b Backend) {
	opener := b.Fresh(t)
	db1 := opener(t, "r1", NewKey(t, "agentgov-test/r1").Text)
	db2 := opener(t, "r2", NewKey(t, "agentgov-test/r2").Text)
	if ok, err := db1.ClaimOutcome(bg, "dec_1", t0); err != nil || !ok {
		t.Fatalf("claim = %v, %v", ok, err)
	}
	if ok, err := db2.ClaimOutcome(bg, "dec_1", t0); err != nil || ok {
		t.Fatalf("second claim = %v, %v", ok, err)
	}
	if err := db2.ReleaseOutcome(bg, "dec_1"); err != nil {
		t.Fatal(err)
	}
	if ok, err := db1.ClaimOutcome(bg, "dec_1", t0); err != nil || !ok {
		t.Fatalf("claim after release = %v, %v", ok, err)
	}
}

func testIdempotencyFirstAnswerWins(t *testing.T, b Backend) {
	opener := b.Fresh(t)
	db1 := opener(t, "r1", NewKey(t, "agentgov-test/r1").Text)
	db2 := opener(t, "r2", NewKey(t, "agentgov-test/r2").Text)
	if _, ok, err := db1.IdempotencyGet(bg, "a1 POST /v1/decide", "k"); err != nil || ok {
		t.Fatalf("get of nothing = %v, %v", ok, err)
	}
	first := store.Replay{Request: "d1", Status: 200, Body: []byte("{\"x\":1}\n")}
	if err := db1.IdempotencyPut(bg, "a1 POST /v1/decide", "k", first, t0); err != nil {
		t.Fatal(err)
	}
	if err := db2.IdempotencyPut(bg, "a1 POST /v1/decide", "k", store.Replay{Request: "d2", Status: 409, Body: []byte("{}")}, t0); err != nil {
		t.Fatal(err)
	}
	got, ok, err := db2.IdempotencyGet(bg, "a1 POST /v1/decide", "k")
	if err != nil || !ok || got.Request != first.Request || got.Status != first.Status || !bytes.Equal(got.Body, first.Body) {
		t.Fatalf("get = %+v, %v, %v", got, ok, err)
	}
	if _, ok, _ := db2.IdempotencyGet(bg, "a2 POST /v1/decide", "k"); ok {
		t.Fatal("another caller's key answered")
	}
}
