package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/budget"
)

func budgetCounter(t *testing.T, db Store, id, key string) (budget.Counter, bool) {
	t.Helper()
	var got []budget.Counter
	err := db.ViewBudgets(bg, func(tx budget.Tx) error {
		var err error
		got, err = tx.Counters(bg, id, []string{key})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) == 0 {
		return budget.Counter{}, false
	}
	return got[0], true
}

func testBudgetConfigsRoundTrip(t *testing.T, b Backend) {
	ctx := bg
	db := open(t, b)
	c := budget.Config{ID: "b", Scope: budget.Scope{Org: "acme", Session: "s"}, Period: "5h", Timezone: "Europe/Paris",
		Limits:     budget.Amounts{CostMicros: 1, Tokens: 2, InputTokens: 3, OutputTokens: 4, Calls: 5},
		Thresholds: budget.Thresholds{Soft: 0.5, Throttle: 0.6, Hard: 0.9, Kill: 1}, Throttle: "rate:3/1m"}
	if err := db.PutBudget(ctx, c); err != nil {
		t.Fatal(err)
	}
	c.Limits.Calls = 6
	if err := db.PutBudget(ctx, c); err != nil {
		t.Fatal(err)
	}
	got, err := db.ListBudgets(ctx)
	if err != nil || len(got) != 1 || got[0] != c {
		t.Fatalf("list %+v, %v; want [%+v]", got, err, c)
	}
	if err := db.DeleteBudget(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteBudget(ctx, "b"); !errors.Is(err, budget.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
}

func testBudgetCounters(t *testing.T, b Backend) {
	ctx := bg
	db := open(t, b)
	if err := db.PutBudget(ctx, budget.Config{ID: "b", Period: "none"}); err != nil {
		t.Fatal(err)
	}
	at := time.Unix(1000, 0)
	err := db.UpdateBudgets(ctx, func(tx budget.Tx) error {
		if err := tx.AddCounter(ctx, "b", "k", budget.Amounts{Calls: 1, CostMicros: 7}, budget.Amounts{Tokens: 10}, false, at); err != nil {
			return err
		}
		// Reserved never goes below zero; alerted stays set once set.
		if err := tx.AddCounter(ctx, "b", "k", budget.Amounts{Calls: 1}, budget.Amounts{Tokens: -15}, true, at); err != nil {
			return err
		}
		if err := tx.AddCounter(ctx, "b", "k", budget.Amounts{}, budget.Amounts{}, false, at); err != nil {
			return err
		}
		// A first write of a negative reservation starts at zero.
		if err := tx.AddCounter(ctx, "b", "neg", budget.Amounts{}, budget.Amounts{Calls: -3}, false, at); err != nil {
			return err
		}
		// A budget that does not exist gets no counter.
		return tx.AddCounter(ctx, "gone", "k", budget.Amounts{Calls: 1}, budget.Amounts{}, false, at)
	})
	if err != nil {
		t.Fatal(err)
	}
	c, ok := budgetCounter(t, db, "b", "k")
	want := budget.Counter{Budget: "b", Key: "k", Spent: budget.Amounts{Calls: 2, CostMicros: 7}, Alerted: true}
	if !ok || c != want {
		t.Fatalf("counter %+v, want %+v", c, want)
	}
	if c, ok := budgetCounter(t, db, "b", "neg"); !ok || c.Reserved.Calls != 0 {
		t.Fatalf("negative first reservation: %+v %v", c, ok)
	}
	if _, ok := budgetCounter(t, db, "gone", "k"); ok {
		t.Fatal("counter created for a budget that does not exist")
	}
	// Counters by prefix, most recently changed first.
	err = db.UpdateBudgets(ctx, func(tx budget.Tx) error {
		for i, k := range []string{"s:a:1", "s:a:2", "s:b:1"} {
			if err := tx.AddCounter(ctx, "b", k, budget.Amounts{Calls: 1}, budget.Amounts{}, false, at.Add(time.Duration(i)*time.Second)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = db.ViewBudgets(ctx, func(tx budget.Tx) error {
		got, err := tx.CountersWithPrefix(ctx, "b", "s:a:", 10)
		if err != nil {
			return err
		}
		if len(got) != 2 || got[0].Key != "s:a:2" || got[1].Key != "s:a:1" {
			t.Errorf("counters with prefix s:a: = %+v", got)
		}
		if got, _ := tx.CountersWithPrefix(ctx, "b", "s:", 1); len(got) != 1 || got[0].Key != "s:b:1" {
			t.Errorf("one counter with prefix s: = %+v", got)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Deleting the budget deletes its counters.
	if err := db.DeleteBudget(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if _, ok := budgetCounter(t, db, "b", "k"); ok {
		t.Fatal("counter outlived its budget")
	}
}

func testBudgetTransactionRollsBackOnError(t *testing.T, b Backend) {
	ctx := bg
	db := open(t, b)
	if err := db.PutBudget(ctx, budget.Config{ID: "b", Period: "none"}); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err := db.UpdateBudgets(ctx, func(tx budget.Tx) error {
		if err := tx.AddCounter(ctx, "b", "k", budget.Amounts{Calls: 1}, budget.Amounts{}, false, time.Unix(0, 0)); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("error %v", err)
	}
	if _, ok := budgetCounter(t, db, "b", "k"); ok {
		t.Fatal("write of a failed transaction was kept")
	}
	// A cancelled context does not leave a connection inside a transaction.
	cctx, cancel := context.WithCancel(ctx)
	_ = db.UpdateBudgets(cctx, func(tx budget.Tx) error { cancel(); return cctx.Err() })
	if err := db.UpdateBudgets(ctx, func(tx budget.Tx) error { return nil }); err != nil {
		t.Fatalf("transaction after a cancelled one: %v", err)
	}
	// Snapshots are read-only.
	err = db.ViewBudgets(ctx, func(tx budget.Tx) error {
		return tx.AddCounter(ctx, "b", "k", budget.Amounts{Calls: 1}, budget.Amounts{}, false, time.Unix(0, 0))
	})
	if err == nil {
		t.Fatal("write in a snapshot accepted")
	}
}

func testBudgetReservations(t *testing.T, b Backend) {
	ctx := bg
	db := open(t, b)
	base := time.Unix(10_000, 0)
	r := budget.Reservation{DecisionID: "dec_1", ExpiresAt: base, Holds: []budget.Hold{
		{Budget: "a", Key: "t:1", Amount: budget.Amounts{CostMicros: 4000, Tokens: 5, InputTokens: 5, OutputTokens: 5, Calls: 1}},
		{Budget: "b", Key: "s:x", Amount: budget.Amounts{Calls: 1}},
	}}
	err := db.UpdateBudgets(ctx, func(tx budget.Tx) error {
		if err := tx.InsertReservation(ctx, r); err != nil {
			return err
		}
		if err := tx.InsertReservation(ctx, r); !errors.Is(err, budget.ErrDuplicate) {
			t.Errorf("duplicate insert: %v", err)
		}
		return tx.InsertReservation(ctx, budget.Reservation{DecisionID: "dec_2", ExpiresAt: base.Add(time.Hour)})
	})
	if err != nil {
		t.Fatal(err)
	}
	err = db.UpdateBudgets(ctx, func(tx budget.Tx) error {
		got, ok, err := tx.Reservation(ctx, "dec_1")
		if err != nil || !ok || got.DecisionID != r.DecisionID || !got.ExpiresAt.Equal(r.ExpiresAt) || len(got.Holds) != 2 || got.Holds[0] != r.Holds[0] {
			t.Errorf("reservation %+v, %v, %v", got, ok, err)
		}
		due, err := tx.DueReservations(ctx, base, 10)
		if err != nil || len(due) != 1 || due[0].DecisionID != "dec_1" {
			t.Errorf("due %+v, %v", due, err)
		}
		if err := tx.MarkExpired(ctx, "dec_1"); err != nil {
			return err
		}
		if due, _ := tx.DueReservations(ctx, base.Add(time.Hour), 10); len(due) != 1 || due[0].DecisionID != "dec_2" {
			t.Errorf("an expired reservation is due again: %+v", due)
		}
		if got, ok, _ := tx.Reservation(ctx, "dec_1"); !ok || !got.Expired {
			t.Errorf("expired reservation %+v, %v", got, ok)
		}
		if n, err := tx.PurgeExpired(ctx, base.Add(time.Second)); err != nil || n != 1 {
			t.Errorf("purge: %d, %v", n, err)
		}
		if _, ok, _ := tx.Reservation(ctx, "dec_1"); ok {
			t.Error("purged reservation still there")
		}
		if err := tx.DeleteReservation(ctx, "dec_2"); err != nil {
			return err
		}
		if _, ok, _ := tx.Reservation(ctx, "dec_2"); ok {
			t.Error("deleted reservation still there")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A limit of N calls lets exactly N of many concurrent reservations
// through, however they are spread over store handles (replicas, where the
// backend has them) each with its own Budgets, and settling and releasing
// keep the counters exact.
func testBudgetsExactUnderConcurrency(t *testing.T, b Backend) {
	opener := b.Fresh(t)
	const limit, tries = 25, 80
	names := []string{"r1", "r2", "r3"}
	var bs []*budget.Budgets
	for _, name := range names {
		st := opener(t, name, NewKey(t, "agentgov-test/"+name).Text)
		bb, err := budget.New(st, budget.Options{})
		if err != nil {
			t.Fatal(err)
		}
		bs = append(bs, bb)
	}
	cfg := budget.Config{ID: "calls", Scope: budget.Scope{Agent: "a1"}, Period: "none", Limits: budget.Amounts{Calls: limit}}
	if err := bs[0].Put(bg, cfg); err != nil {
		t.Fatal(err)
	}
	for _, bb := range bs[1:] {
		if err := bb.Reload(bg); err != nil {
			t.Fatal(err)
		}
	}
	a := &action.Action{Agent: action.Agent{ID: "a1"}, Tool: action.Tool{Name: "t"}}
	var allowed atomic.Int32
	var ids sync.Map
	var wg sync.WaitGroup
	for i := range tries {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("dec_%03d", i)
			v, err := bs[i%len(bs)].Reserve(bg, id, a)
			if err != nil {
				t.Error(err)
				return
			}
			if v.Effect == action.Allow {
				allowed.Add(1)
				ids.Store(id, i)
			}
		}()
	}
	wg.Wait()
	if allowed.Load() != limit {
		t.Fatalf("%d of %d reservations allowed under a limit of %d", allowed.Load(), tries, limit)
	}
	use := func() budget.Usage {
		t.Helper()
		us, err := bs[1].UsageAt(bg, budget.Scope{}, time.Now())
		if err != nil || len(us) != 1 {
			t.Fatalf("usage %+v, %v", us, err)
		}
		return us[0]
	}
	if u := use(); u.Reserved.Calls != limit || u.Spent.Calls != 0 {
		t.Fatalf("after reserving: %+v", u)
	}
	// Settle some through another handle than the one that reserved,
	// release the rest.
	n := 0
	ids.Range(func(k, v any) bool {
		bb := bs[(v.(int)+1)%len(bs)]
		var err error
		if n%2 == 0 {
			err = bb.Settle(bg, k.(string), action.Outcome{Status: "ok"})
		} else {
			err = bb.Release(bg, k.(string))
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
		return true
	})
	if u := use(); u.Reserved.Calls != 0 || u.Spent.Calls != (limit+1)/2 {
		t.Fatalf("after settling: %+v", u)
	}
}
