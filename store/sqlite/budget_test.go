package sqlite_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/agentgov/agentgov/budget"
	"github.com/agentgov/agentgov/store/sqlite"
)

func openBudgetDB(t *testing.T) *sqlite.DB {
	t.Helper()
	db, err := sqlite.OpenDir(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func budgetCounter(t *testing.T, db *sqlite.DB, id, key string) (budget.Counter, bool) {
	t.Helper()
	var got []budget.Counter
	err := db.ViewBudgets(context.Background(), func(tx budget.Tx) error {
		var err error
		got, err = tx.Counters(context.Background(), id, []string{key})
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

func TestBudgetConfigsRoundTrip(t *testing.T) {
	ctx := context.Background()
	db := openBudgetDB(t)
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

func TestBudgetCounters(t *testing.T) {
	ctx := context.Background()
	db := openBudgetDB(t)
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
	if _, ok := budgetCounter(t, db, "gone", "k"); ok {
		t.Fatal("counter created for a budget that does not exist")
	}
	// Deleting the budget deletes its counters.
	if err := db.DeleteBudget(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if _, ok := budgetCounter(t, db, "b", "k"); ok {
		t.Fatal("counter outlived its budget")
	}
}

func TestBudgetTransactionRollsBackOnError(t *testing.T) {
	ctx := context.Background()
	db := openBudgetDB(t)
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
	// A cancelled context does not leave the connection inside a transaction.
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

func TestBudgetReservations(t *testing.T) {
	ctx := context.Background()
	db := openBudgetDB(t)
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
