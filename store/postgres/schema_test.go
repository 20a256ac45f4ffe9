package postgres_test

import (
	"context"
	"strings"
	"testing"

	"github.com/agentgov/agentgov/store/postgres"
	"github.com/agentgov/agentgov/store/storetest"
)

// A store URL whose search_path names a schema that does not exist is
// refused at start, naming the schema and how to create it, for a replica
// and for a reader (audit verify) alike; nothing is created.
func TestMissingSchemaIsNamed(t *testing.T) {
	base, admin := freshSchema(t)
	dsn := withSearchPath(t, base, "agentgov_no_such_schema")
	ctx := context.Background()
	key := storetest.NewKey(t, "agentgov-test/r1")
	_, err := postgres.Open(ctx, dsn, postgres.Options{Replica: "r1", AuditKey: key.Text})
	if err == nil || !strings.Contains(err.Error(), `schema "agentgov_no_such_schema"`) || !strings.Contains(err.Error(), `CREATE SCHEMA "agentgov_no_such_schema"`) {
		t.Fatalf("open with a missing schema: %v", err)
	}
	if _, err := postgres.OpenReader(ctx, dsn, postgres.Options{}); err == nil || !strings.Contains(err.Error(), `schema "agentgov_no_such_schema"`) {
		t.Fatalf("reader with a missing schema: %v", err)
	}
	var n int
	if err := admin.QueryRow(ctx, `SELECT count(*) FROM pg_namespace WHERE nspname = 'agentgov_no_such_schema'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("schema created anyway: %d %v", n, err)
	}
}
