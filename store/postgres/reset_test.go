package postgres_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/agentgov/agentgov/store/postgres"
	"github.com/agentgov/agentgov/store/storetest"
)

// When the server ends every session of a replica (a restart, a failover,
// pg_terminate_backend), the first call to find out fails, and the pool
// drops its other connections with it: the calls after it connect afresh,
// rather than each meeting another dead connection and failing in turn
// (and with it a whole batch of decisions).
func TestEndedSessionsFailOneCallNotOnePerConnection(t *testing.T) {
	dsn, admin := freshSchema(t)
	ctx := context.Background()
	key := storetest.NewKey(t, "agentgov-test/r-reset")
	db := openReplica(t, dsn, "r-reset", key.Text, postgres.Options{MaxConns: 4, MinConns: 4})
	// Every pooled connection used just now: the pool checks only those
	// idle for more than a second before handing them out.
	var wg sync.WaitGroup
	stop := time.Now().Add(300 * time.Millisecond)
	for range 8 {
		wg.Go(func() {
			for time.Now().Before(stop) {
				if _, err := db.AuditSize(ctx); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	var ended int
	if err := admin.QueryRow(ctx, `SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'agentgov r-reset'`).Scan(&ended); err != nil {
		t.Fatal(err)
	}
	for {
		var left int
		if err := admin.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE application_name = 'agentgov r-reset'`).Scan(&left); err != nil {
			t.Fatal(err)
		}
		if left == 0 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	var failed []error
	for range 6 {
		if _, err := db.AuditSize(ctx); err != nil {
			failed = append(failed, err)
		}
	}
	t.Logf("%d sessions ended; %d of 6 calls after it failed", ended, len(failed))
	if len(failed) > 1 {
		t.Fatalf("%d calls failed after the sessions ended, want at most 1: %v", len(failed), failed)
	}
}
