package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/agentgov/agentgov/store/postgres"
	"github.com/agentgov/agentgov/store/storetest"
)

// EnvDSN names the PostgreSQL server the tests use; they skip without it.
const EnvDSN = "AGENTGOV_TEST_POSTGRES"

func testDSN(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv(EnvDSN)
	if dsn == "" {
		t.Skip(EnvDSN + " is not set: set it to a PostgreSQL DSN (.ci/run uses postgres://postgres@127.0.0.1:5432/test) to run the PostgreSQL tests")
	}
	return dsn
}

// withSearchPath is dsn with its search_path set to schema.
func withSearchPath(t testing.TB, dsn, schema string) string {
	t.Helper()
	if strings.Contains(dsn, "://") {
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatal(err)
		}
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
		return u.String()
	}
	return dsn + " search_path=" + schema
}

// freshSchema creates an empty schema of its own for one test, dropped
// when the test ends, and returns the DSN that uses it.
func freshSchema(t testing.TB) (dsn string, admin *pgx.Conn) {
	t.Helper()
	base := testDSN(t)
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("connect to %s: %v", EnvDSN, err)
	}
	var b [6]byte
	rand.Read(b[:])
	schema := "agentgov_test_" + hex.EncodeToString(b[:])
	if _, err := admin.Exec(ctx, `CREATE SCHEMA `+schema); err != nil {
		admin.Close(ctx)
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := admin.Exec(cctx, `DROP SCHEMA `+schema+` CASCADE`); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
		admin.Close(cctx)
	})
	if _, err := admin.Exec(ctx, `SET search_path TO `+schema); err != nil {
		t.Fatal(err)
	}
	return withSearchPath(t, base, schema), admin
}

// openReplica opens replica on dsn, closed when the test ends.
func openReplica(t testing.TB, dsn, replica, key string, opts postgres.Options) *postgres.DB {
	t.Helper()
	opts.Replica, opts.AuditKey = replica, key
	db, err := postgres.Open(context.Background(), dsn, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// The conformance suite, on a schema per test.
func TestConformance(t *testing.T) {
	testDSN(t)
	var admin *pgx.Conn
	storetest.Run(t, storetest.Backend{
		Fresh: func(t *testing.T) storetest.Opener {
			var dsn string
			dsn, admin = freshSchema(t)
			return func(t *testing.T, replica, key string) storetest.Store {
				return openReplica(t, dsn, replica, key, postgres.Options{})
			}
		},
		Exec: func(t *testing.T, stmt string) error {
			_, err := admin.Exec(context.Background(), stmt)
			return err
		},
		Replicas: true,
	})
}
