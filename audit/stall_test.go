package audit_test

import (
	"context"
	"testing"
	"time"

	"github.com/agentgov/agentgov/audit"
	"github.com/agentgov/agentgov/store/sqlite"
)

// A store that takes an append and never commits it (a database whose
// tables are locked) shows as a stall that grows with time; an idle log,
// and one whose store answers again, shows none.
func TestStalledMeasuresAppendsLeftUnanswered(t *testing.T) {
	ctx := context.Background()
	st := &faultyStore{hold: make(chan struct{})}
	l := startWrapped(t, t.TempDir(), audit.Options{}, func(db *sqlite.DB) audit.Store { st.DB = db; return st })
	if s := l.Stalled(time.Now().Add(time.Hour)); s != 0 {
		t.Fatalf("an idle log stalled %s", s)
	}
	got := make(chan error, 1)
	go func() {
		_, err := l.Append(ctx, "decision", "held by the store")
		got <- err
	}()
	for {
		n, err := st.AuditSize(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n == 1 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if s := l.Stalled(time.Now().Add(5 * time.Second)); s < 5*time.Second {
		t.Fatalf("an append held by the store: stalled %s at 5s from now; want at least 5s", s)
	}
	close(st.hold)
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	if s := l.Stalled(time.Now().Add(time.Hour)); s != 0 {
		t.Fatalf("stalled %s once every append was answered", s)
	}
}
