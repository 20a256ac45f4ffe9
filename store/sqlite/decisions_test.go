package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"

	"github.com/agentgov/agentgov/store"
	"github.com/agentgov/agentgov/store/sqlite"
)

// The decision index must survive a corrupted entry: the store still opens
// (so that audit verify can name the entry) and lookups of other ids work.
func TestDecisionIndexSurvivesCorruptEntries(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db, err := sqlite.OpenDir(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	raw, err := sql.Open("sqlite", filepath.Join(dir, sqlite.FileName))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.ExecContext(ctx, `DROP TRIGGER audit_entries_no_update`); err != nil {
		t.Fatal(err)
	}
	for i, data := range []string{`{"index":0,"kind":"decision","record":{"decision":{"id":"dec_A"}}}`, `{"index":1,"kind":"decision","record":{"decision":{"id":"dec_B"}}}`} {
		if _, err := raw.ExecContext(ctx, `INSERT INTO audit_entries (idx, data) VALUES (?, ?)`, i, []byte(data)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := raw.ExecContext(ctx, `UPDATE audit_entries SET data = CAST('{"index":0,"kind":"deci' AS BLOB) WHERE idx = 0`); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	db, err = sqlite.OpenDir(ctx, dir)
	if err != nil {
		t.Fatalf("a corrupt entry stops the store from opening: %v", err)
	}
	defer db.Close()
	if d, err := db.FindDecision(ctx, "dec_B"); err != nil || d.Index != 1 || d.Log != "" {
		t.Fatalf("dec_B: %+v %v", d, err)
	}
	if _, err := db.FindDecision(ctx, "dec_A"); !errors.Is(err, store.ErrNoDecision) {
		t.Fatalf("corrupt dec_A: %v", err)
	}
}
