package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/mod/sumdb/note"

	"github.com/agentgov/agentgov/audit"
	"github.com/agentgov/agentgov/store/postgres"
)

// pgSchema makes a schema of its own on AGENTGOV_TEST_POSTGRES for one
// test, dropped when it ends, and returns the DSN that uses it and an
// administrator's connection to it. Without the variable the test skips.
func pgSchema(t *testing.T) (string, *pgx.Conn) {
	t.Helper()
	base := os.Getenv("AGENTGOV_TEST_POSTGRES")
	if base == "" {
		t.Skip("AGENTGOV_TEST_POSTGRES is not set: set it to a PostgreSQL DSN to run the PostgreSQL tests")
	}
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	var b [6]byte
	rand.Read(b[:])
	schema := "agentgov_cli_" + hex.EncodeToString(b[:])
	if _, err := admin.Exec(ctx, `CREATE SCHEMA `+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		admin.Exec(context.Background(), `DROP SCHEMA `+schema+` CASCADE`)
		admin.Close(context.Background())
	})
	if _, err := admin.Exec(ctx, `SET search_path TO `+schema); err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String(), admin
}

// replicaLog writes n entries to replica id's log on dsn, as a replica
// would, and stops it cleanly (its final checkpoint signed). It returns
// the verifier key.
func replicaLog(t *testing.T, dsn, id string, n int) string {
	t.Helper()
	ctx := context.Background()
	skey, vkey, err := note.GenerateKey(rand.Reader, "agentgov-audit/"+id)
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := note.NewSigner(skey)
	verifier, _ := note.NewVerifier(vkey)
	db, err := postgres.Open(ctx, dsn, postgres.Options{Replica: id, AuditKey: vkey})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	l, err := audit.Open(ctx, db, signer, verifier, audit.Options{CheckpointInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); l.Run(rctx) }()
	for i := range n {
		if _, err := l.Append(ctx, "test", map[string]any{"replica": id, "n": i}); err != nil {
			t.Fatal(err)
		}
	}
	cancel()
	wg.Wait()
	return vkey
}

func TestAuditVerifyStoreChecksEveryReplicasLog(t *testing.T) {
	dsn, admin := pgSchema(t)
	k1 := replicaLog(t, dsn, "r1", 5)
	k2 := replicaLog(t, dsn, "r2", 3)

	code, out := agentgov(t, "audit", "verify", "--store", dsn)
	if code != 0 || !strings.Contains(out, "replica r1:") || !strings.Contains(out, "replica r2:") ||
		!strings.Contains(out, "5 entries checked") || !strings.Contains(out, "3 entries checked") ||
		!strings.Contains(out, "proves nothing") || !strings.HasSuffix(out, "ok: 2 replica logs verified\n") {
		t.Fatalf("verify --store: exit %d\n%s", code, out)
	}
	// With the keys kept elsewhere, no note; a replica whose key is not
	// among them fails.
	dir := t.TempDir()
	both, one := filepath.Join(dir, "both.pub"), filepath.Join(dir, "one.pub")
	os.WriteFile(both, []byte("# replicas\n"+k1+"\n"+k2+"\n"), 0o600)
	os.WriteFile(one, []byte(k1+"\n"), 0o600)
	if code, out := agentgov(t, "audit", "verify", "--store", dsn, "--pub", both); code != 0 || strings.Contains(out, "proves nothing") {
		t.Fatalf("verify --store --pub both: exit %d\n%s", code, out)
	}
	if code, out := agentgov(t, "audit", "verify", "--store", dsn, "--pub", one); code != 1 || !strings.Contains(out, "replica r2: the key recorded for it in the database") {
		t.Fatalf("verify --store --pub one: exit %d\n%s", code, out)
	}
	// Someone with the database adds a replica of their own, with a key
	// and a log that verify each other: only the keys kept elsewhere tell.
	replicaLog(t, dsn, "r3", 2)
	if code, out := agentgov(t, "audit", "verify", "--store", dsn); code != 0 || !strings.Contains(out, "ok: 3 replica logs") {
		t.Fatalf("verify --store with a forged replica and the recorded keys: exit %d\n%s", code, out)
	}
	if code, out := agentgov(t, "audit", "verify", "--store", dsn, "--pub", both); code != 1 || !strings.Contains(out, "replica r3: the key recorded for it in the database") {
		t.Fatalf("verify --store --pub with a forged replica: exit %d\n%s", code, out)
	}
	// A proof from one replica's log.
	code, out = agentgov(t, "audit", "prove", "--store", dsn, "--replica", "r2", "--index", "2")
	var p audit.Proof
	if code != 0 || json.Unmarshal([]byte(out), &p) != nil {
		t.Fatalf("prove: exit %d\n%s", code, out)
	}
	if code, out := agentgov(t, "audit", "prove", "--store", dsn, "--replica", "r9", "--index", "0"); code != 1 || !strings.Contains(out, "no replica r9") {
		t.Fatalf("prove of an unknown replica: exit %d\n%s", code, out)
	}

	// Someone with the database edits an entry of r2's log.
	ctx := context.Background()
	for _, stmt := range []string{
		`ALTER TABLE audit_entries DISABLE TRIGGER audit_entries_append_only`,
		`UPDATE audit_entries SET data = convert_to(replace(convert_from(data, 'UTF8'), '"n":1', '"n":7'), 'UTF8') WHERE replica = 'r2' AND idx = 1`,
	} {
		if _, err := admin.Exec(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	code, out = agentgov(t, "audit", "verify", "--store", dsn)
	if code != 1 || !strings.Contains(out, "replica r2: first bad index 1") || strings.Contains(out, "replica r1: first bad") {
		t.Fatalf("verify after tampering with r2: exit %d\n%s", code, out)
	}
}

// Audit rows of a replica id no replica recorded (and so no key) are
// reported, not passed over.
func TestAuditVerifyStoreReportsLogsOfNoReplica(t *testing.T) {
	dsn, admin := pgSchema(t)
	replicaLog(t, dsn, "r1", 2)
	if _, err := admin.Exec(context.Background(), `INSERT INTO audit_checkpoints (replica, size, note) VALUES ('ghost', 1, 'x')`); err != nil {
		t.Fatal(err)
	}
	code, out := agentgov(t, "audit", "verify", "--store", dsn)
	if code != 1 || !strings.Contains(out, "replica ghost: audit rows with no recorded replica") {
		t.Fatalf("exit %d\n%s", code, out)
	}
}

func TestAuditVerifyStoreRefusesBadInput(t *testing.T) {
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"audit", "verify", "--data", "d", "--store", "postgres://u@h/db"}, 2, "not both"},
		{[]string{"audit", "verify", "--store", "postgres://u:hunter2@127.0.0.1:1/db"}, 1, "PGPASSWORD"},
		{[]string{"audit", "prove", "--store", "postgres://u@h/db", "--index", "0"}, 2, "--replica"},
	} {
		code, out := agentgov(t, c.args...)
		if code != c.code || !strings.Contains(out, c.want) || strings.Contains(out, "hunter2") {
			t.Errorf("%v: exit %d\n%s", c.args, code, out)
		}
	}
}
