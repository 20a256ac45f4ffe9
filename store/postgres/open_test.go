package postgres_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/agentgov/agentgov/store/postgres"
	"github.com/agentgov/agentgov/store/storetest"
)

// A second live process with a replica's id is refused, naming the id; once
// the first closes, the id is free again. Another schema's replica of the
// same id is another replica.
func TestSecondLiveReplicaWithTheSameIDIsRefused(t *testing.T) {
	dsn, _ := freshSchema(t)
	ctx := context.Background()
	key := storetest.NewKey(t, "agentgov-test/r1")
	first := openReplica(t, dsn, "r1", key.Text, postgres.Options{})
	_, err := postgres.Open(ctx, dsn, postgres.Options{Replica: "r1", AuditKey: key.Text})
	if !errors.Is(err, postgres.ErrReplicaInUse) || !strings.Contains(err.Error(), "replica r1") {
		t.Fatalf("second r1: %v", err)
	}
	other, _ := freshSchema(t)
	openReplica(t, other, "r1", key.Text, postgres.Options{})
	first.Close()
	openReplica(t, dsn, "r1", key.Text, postgres.Options{})
}

// A replica restarted with another audit key is refused: its log is
// signed by the first, and a new key would let it sign a rewritten one.
func TestRestartWithAnotherKeyIsRefused(t *testing.T) {
	dsn, _ := freshSchema(t)
	ctx := context.Background()
	k1, k2 := storetest.NewKey(t, "agentgov-test/r1"), storetest.NewKey(t, "agentgov-test/r1")
	openReplica(t, dsn, "r1", k1.Text, postgres.Options{}).Close()
	_, err := postgres.Open(ctx, dsn, postgres.Options{Replica: "r1", AuditKey: k2.Text})
	if !errors.Is(err, postgres.ErrKeyMismatch) || strings.Contains(err.Error(), k2.Text) {
		t.Fatalf("restart with another key: %v", err)
	}
	openReplica(t, dsn, "r1", k1.Text, postgres.Options{})
	// The recorded key cannot be changed behind the store's back either.
	if _, err := postgresExec(t, dsn, `UPDATE agentgov_replicas SET audit_key = 'x'`); err == nil || !strings.Contains(err.Error(), "append-only") {
		t.Fatalf("changing a recorded key: %v", err)
	}
}

// Replicas starting together migrate once: every one opens, and each
// version is recorded once.
func TestMigrationsAreSafeWhenReplicasStartTogether(t *testing.T) {
	dsn, admin := freshSchema(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make([]error, 6)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := "r" + string(rune('a'+i))
			db, err := postgres.Open(ctx, dsn, postgres.Options{Replica: id, AuditKey: storetest.NewKey(t, id).Text})
			if err == nil {
				db.Close()
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("replica %d: %v", i, err)
		}
	}
	var n, max int
	if err := admin.QueryRow(ctx, `SELECT count(*), max(version) FROM agentgov_migrations`).Scan(&n, &max); err != nil {
		t.Fatal(err)
	}
	if n != postgres.SchemaMigrations() || max != postgres.SchemaVersion() {
		t.Fatalf("%d migrations recorded up to %d; want each of %d once, up to %d", n, max, postgres.SchemaMigrations(), postgres.SchemaVersion())
	}
}

// A database migrated by a newer agentgov is refused, not written with an
// older idea of its tables.
func TestNewerSchemaIsRefused(t *testing.T) {
	dsn, _ := freshSchema(t)
	key := storetest.NewKey(t, "r1")
	openReplica(t, dsn, "r1", key.Text, postgres.Options{}).Close()
	if _, err := postgresExec(t, dsn, `INSERT INTO agentgov_migrations (version, name) VALUES (9999, 'from the future')`); err != nil {
		t.Fatal(err)
	}
	_, err := postgres.Open(context.Background(), dsn, postgres.Options{Replica: "r1", AuditKey: key.Text})
	if err == nil || !strings.Contains(err.Error(), "version 9999") {
		t.Fatalf("open of a newer schema: %v", err)
	}
}

// Bad options and connection strings are refused before anything is
// written, naming the problem; a password is never repeated.
func TestOpenRefusesBadInput(t *testing.T) {
	dsn := testDSN(t)
	ctx := context.Background()
	key := storetest.NewKey(t, "r1").Text
	for _, c := range []struct {
		dsn  string
		opts postgres.Options
		want string
	}{
		{dsn, postgres.Options{Replica: "", AuditKey: key}, "replica id"},
		{dsn, postgres.Options{Replica: "has space", AuditKey: key}, "replica id"},
		{dsn, postgres.Options{Replica: "r1"}, "audit verifier key"},
		{dsn, postgres.Options{Replica: "r1", AuditKey: key, MaxConns: -1}, "max_conns"},
		{dsn, postgres.Options{Replica: "r1", AuditKey: key, MaxConns: 2, MinConns: 3}, "min_conns"},
		{"postgres://postgres:hunter2@127.0.0.1:5432/test", postgres.Options{Replica: "r1", AuditKey: key}, "PGPASSWORD"},
		{"host=127.0.0.1 user=postgres password=hunter2 dbname=test", postgres.Options{Replica: "r1", AuditKey: key}, "PGPASSWORD"},
	} {
		_, err := postgres.Open(ctx, c.dsn, c.opts)
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("Open(%+v): %v; want an error about %s", c.opts, err, c.want)
		}
	}
}

func postgresExec(t *testing.T, dsn, stmt string) (int64, error) {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	tag, err := conn.Exec(context.Background(), stmt)
	return tag.RowsAffected(), err
}
