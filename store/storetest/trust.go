package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/agentgov/agentgov/trust"
)

func adj(agent string, delta int) trust.Adjustment {
	return trust.Adjustment{Agent: agent, Initial: 500, Delta: delta, Reset: delta < 0, At: t0,
		Events: []trust.Event{{At: t0, Kind: trust.KindDeny, Delta: delta, Decision: "dec_X", Detail: "no-etc"}}}
}

// Scores start at the initial score, move by the adjustment, stay between
// 0 and 1000, and keep the events that moved them, newest first.
func testTrustScores(t *testing.T, b Backend) {
	db := open(t, b)
	m, err := db.ApplyTrust(bg, adj("a1", -50))
	if err != nil || m != (trust.Moved{Agent: "a1", From: 500, To: 450}) {
		t.Fatalf("first = %+v, %v", m, err)
	}
	if m, err = db.ApplyTrust(bg, adj("a1", -1000)); err != nil || m.From != 450 || m.To != 0 {
		t.Fatalf("floor = %+v, %v", m, err)
	}
	if m, err = db.ApplyTrust(bg, adj("a1", 5000)); err != nil || m.From != 0 || m.To != 1000 {
		t.Fatalf("ceiling = %+v, %v", m, err)
	}
	if _, err := db.ApplyTrust(bg, adj("a2", -1)); err != nil {
		t.Fatal(err)
	}
	scores, err := db.TrustScores(bg)
	if err != nil || len(scores) != 2 || scores[0].Agent != "a1" || scores[0].Score != 1000 || scores[1].Score != 499 {
		t.Fatalf("scores = %+v, %v", scores, err)
	}
	evs, err := db.TrustEvents(bg, "a1", 10)
	if err != nil || len(evs) != 3 {
		t.Fatalf("events = %+v, %v", evs, err)
	}
	if evs[0].Delta != 5000 || evs[0].Score != 1000 || evs[2].Delta != -50 || evs[2].Score != 450 ||
		evs[2].Kind != trust.KindDeny || evs[2].Decision != "dec_X" || evs[2].Detail != "no-etc" || !evs[2].At.Equal(t0) {
		t.Fatalf("events = %+v", evs)
	}
	if evs, err := db.TrustEvents(bg, "nobody", 10); err != nil || len(evs) != 0 {
		t.Fatalf("unknown agent's events = %+v, %v", evs, err)
	}
	// Events are kept to the last trust.KeptEvents per agent.
	for range trust.KeptEvents + 5 {
		if _, err := db.ApplyTrust(bg, adj("a3", -1)); err != nil {
			t.Fatal(err)
		}
	}
	if evs, err := db.TrustEvents(bg, "a3", 1000); err != nil || len(evs) != trust.KeptEvents || evs[0].Score != 500-trust.KeptEvents-5 {
		t.Fatalf("kept %d events (newest %+v), %v", len(evs), evs[0], err)
	}
}

// Clean outcomes count into the streak, which earns its bonus at each
// multiple passed; an event lowering the score restarts it first.
func testTrustStreak(t *testing.T, b Backend) {
	db := open(t, b)
	clean := func(n int, reset bool, delta int) trust.Moved {
		t.Helper()
		m, err := db.ApplyTrust(bg, trust.Adjustment{Agent: "a1", Initial: 500, Delta: delta, Reset: reset, Clean: n, StreakEvery: 10, StreakBonus: 7, At: t0})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	if m := clean(9, false, 9); m.To != 509 || m.Streak != 9 || m.Bonus != 0 {
		t.Fatalf("9 clean = %+v", m)
	}
	if m := clean(12, false, 12); m.To != 509+12+7*2 || m.Streak != 21 || m.Bonus != 14 {
		t.Fatalf("21 clean = %+v", m)
	}
	// A deny in the batch: the streak restarts, then counts the batch's
	// 3 clean outcomes; no bonus.
	if m := clean(3, true, -50+3); m.To != 535-47 || m.Streak != 3 || m.Bonus != 0 {
		t.Fatalf("reset = %+v", m)
	}
	evs, err := db.TrustEvents(bg, "a1", 10)
	if err != nil || len(evs) != 1 || evs[0].Kind != trust.KindStreak || evs[0].Delta != 14 {
		t.Fatalf("streak events = %+v, %v", evs, err)
	}
}

// Adjustments to one agent from many writers at once all count: the
// update is atomic, never read-then-write.
func testTrustExactUnderConcurrency(t *testing.T, b Backend) {
	opener := b.Fresh(t)
	st1 := opener(t, "r1", NewKey(t, "agentgov-test/r1").Text)
	st2 := st1
	if b.Replicas {
		st2 = opener(t, "r2", NewKey(t, "agentgov-test/r2").Text)
	}
	const n = 40
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for i := range 2 * n {
		st := st1
		if i%2 == 1 {
			st = st2
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := st.ApplyTrust(bg, adj("a1", -3)); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	scores, err := st2.TrustScores(bg)
	if err != nil || len(scores) != 1 || scores[0].Score != 500-3*2*n {
		t.Fatalf("scores = %+v, %v; want %d", scores, err, 500-3*2*n)
	}
}

// Decay moves scores toward the initial one, each once per period.
func testTrustDecay(t *testing.T, b Backend) {
	db := open(t, b)
	for _, a := range []trust.Adjustment{adj("low", -100), adj("high", 3), adj("near", -2)} {
		if _, err := db.ApplyTrust(bg, a); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.ApplyTrust(bg, trust.Adjustment{Agent: "even", Initial: 500, At: t0}); err != nil {
		t.Fatal(err)
	}
	// Not due yet: decayed at t0, the period started after it.
	if moved, err := db.DecayTrust(bg, 500, 5, t0.Add(-time.Second), t0.Add(time.Hour)); err != nil || len(moved) != 0 {
		t.Fatalf("early decay = %+v, %v", moved, err)
	}
	t1 := t0.Add(time.Hour)
	moved, err := db.DecayTrust(bg, 500, 5, t0, t1)
	if err != nil {
		t.Fatal(err)
	}
	want := []trust.Moved{{Agent: "high", From: 503, To: 500}, {Agent: "low", From: 400, To: 405}, {Agent: "near", From: 498, To: 500}}
	if fmt.Sprint(moved) != fmt.Sprint(want) {
		t.Fatalf("decay = %+v, want %+v", moved, want)
	}
	// The same period again (another replica): nothing more moves.
	if moved, err := db.DecayTrust(bg, 500, 5, t0, t1); err != nil || len(moved) != 0 {
		t.Fatalf("second decay = %+v, %v", moved, err)
	}
	if evs, err := db.TrustEvents(bg, "low", 1); err != nil || len(evs) != 1 || evs[0].Kind != trust.KindDecay || evs[0].Delta != 5 || evs[0].Score != 405 {
		t.Fatalf("decay event = %+v, %v", evs, err)
	}
}

// An elevation is granted once per ticket, listed until ended, and ended
// once.
func testTrustElevations(t *testing.T, b Backend) {
	db := open(t, b)
	el := trust.Elevation{Ticket: "apr_1", Agent: "a1", Ring: 1, Until: t0.Add(time.Hour), Floor: trust.Standard, Reason: "deploy", By: "ops", GrantedAt: t0}
	if err := db.PutElevation(bg, el); err != nil {
		t.Fatal(err)
	}
	if err := db.PutElevation(bg, el); !errors.Is(err, trust.ErrConflict) {
		t.Fatalf("second grant on one ticket: %v", err)
	}
	list, err := db.Elevations(bg)
	if err != nil || len(list) != 1 || list[0] != el {
		t.Fatalf("elevations = %+v, %v", list, err)
	}
	if ended, err := db.EndElevation(bg, "apr_1", t0.Add(time.Hour), "expired"); err != nil || !ended {
		t.Fatalf("end = %v, %v", ended, err)
	}
	if ended, err := db.EndElevation(bg, "apr_1", t0.Add(time.Hour), "expired"); err != nil || ended {
		t.Fatalf("second end = %v, %v", ended, err)
	}
	if list, err := db.Elevations(bg); err != nil || len(list) != 0 {
		t.Fatalf("after end = %+v, %v", list, err)
	}
}

// What clean outcomes earn is bounded per hour; what lowers a score is
// not, and a new hour starts a new bound.
func testTrustRiseCap(t *testing.T, b Backend) {
	db := open(t, b)
	rise := func(n int, window time.Time, delta int) trust.Moved {
		t.Helper()
		m, err := db.ApplyTrust(bg, trust.Adjustment{Agent: "a1", Initial: 500, Delta: delta, Rise: n, RiseCap: 20, Window: window, Clean: n, At: window})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	h1, h2 := t0.Truncate(time.Hour), t0.Truncate(time.Hour).Add(time.Hour)
	if m := rise(15, h1, 0); m.To != 515 || m.Withheld != 0 {
		t.Fatalf("first rise = %+v", m)
	}
	if m := rise(15, h1, -30); m.To != 515-30+5 || m.Withheld != 10 {
		t.Fatalf("second rise in the hour = %+v", m)
	}
	if m := rise(15, h2, 0); m.To != 490+15 || m.Withheld != 0 {
		t.Fatalf("rise in the next hour = %+v", m)
	}
	evs, err := db.TrustEvents(bg, "a1", 10)
	if err != nil || len(evs) != 1 || evs[0].Kind != trust.KindRiseCapped || evs[0].Delta != -10 {
		t.Fatalf("events = %+v, %v", evs, err)
	}
}
