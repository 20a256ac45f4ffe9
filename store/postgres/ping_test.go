package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/agentgov/agentgov/store/postgres"
	"github.com/agentgov/agentgov/store/storetest"
)

// A database whose tables are locked still answers a bare ping while every
// decision waits on it. Ping, which readiness asks, waits with them: a
// replica says it is not ready while its tables cannot be read, and ready
// again once they can.
func TestPingIsNotAnsweredWhileTheTablesAreLocked(t *testing.T) {
	dsn, admin := freshSchema(t)
	ctx := context.Background()
	key := storetest.NewKey(t, "agentgov-test/r1")
	db := openReplica(t, dsn, "r1", key.Text, postgres.Options{})
	if err := db.Ping(ctx); err != nil {
		t.Fatalf("ping of an idle database: %v", err)
	}
	tx, err := admin.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `LOCK TABLE audit_entries IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	err = db.Ping(short)
	cancel()
	if err == nil {
		t.Fatal("ping answered while audit_entries was locked")
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if err := db.Ping(ctx); err != nil {
		t.Fatalf("ping once the lock is gone: %v", err)
	}
}
