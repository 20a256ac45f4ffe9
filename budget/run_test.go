package budget_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentgov/agentgov/budget"
	"github.com/agentgov/agentgov/store/sqlite"
)

// flakyStore fails every budget transaction while down is set.
type flakyStore struct {
	budget.Store
	down  atomic.Bool
	tries atomic.Int64
}

func (s *flakyStore) UpdateBudgets(ctx context.Context, fn func(tx budget.Tx) error) error {
	s.tries.Add(1)
	if s.down.Load() {
		return errors.New("connection refused")
	}
	return s.Store.UpdateBudgets(ctx, fn)
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *syncBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *syncBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// The store unreachable when reservations are due to expire does not stop
// the expiry loop (which would stop the whole server): the failure is
// logged, and the loop tries again at its next tick.
func TestRunOutlivesAStoreOutage(t *testing.T) {
	st := &flakyStore{Store: openDB(t, filepath.Join(t.TempDir(), sqlite.FileName))}
	st.down.Store(true)
	var logs syncBuffer
	b, err := budget.New(st, budget.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.RunEvery(ctx, time.Millisecond) }()
	for st.tries.Load() < 3 {
		select {
		case err := <-done:
			t.Fatalf("Run stopped during the outage: %v", err)
		case <-time.After(time.Millisecond):
		}
	}
	st.down.Store(false)
	for n := st.tries.Load(); st.tries.Load() < n+2; time.Sleep(time.Millisecond) {
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if !strings.Contains(logs.String(), "budget reservations not expired; retrying") || !strings.Contains(logs.String(), "connection refused") {
		t.Fatalf("the failure was not logged:\n%s", logs.String())
	}
}
