package sqlite_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/agentgov/agentgov/session"
	"github.com/agentgov/agentgov/store/sqlite"
)

// A database from before session ids were scoped to their agent keeps its
// sessions, each under its agent, and another agent may now use the same
// id for a session of its own.
func TestSessionsOfTheOldTableAreCarriedOverPerAgent(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	old, err := sql.Open("sqlite", "file:"+filepath.Join(dir, sqlite.FileName))
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`CREATE TABLE sessions (id TEXT PRIMARY KEY, agent_id TEXT NOT NULL, state TEXT NOT NULL,
			created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, updated_by TEXT NOT NULL DEFAULT '')`,
		`INSERT INTO sessions VALUES ('s-1', 'a1', 'paused', 1, 2, 'ops')`,
	} {
		if _, err := old.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	old.Close()
	db, err := sqlite.OpenDir(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	got, err := db.GetSession(ctx, "a1", "s-1")
	if err != nil || got.State != session.Paused || got.UpdatedBy != "ops" {
		t.Fatalf("carried-over session %+v %v", got, err)
	}
	if _, inserted, err := db.InsertSession(ctx, session.Session{ID: "s-1", AgentID: "a2", State: session.Active}); !inserted || err != nil {
		t.Fatalf("another agent's s-1: inserted %v %v", inserted, err)
	}
	if list, err := db.FindSessions(ctx, "s-1"); err != nil || len(list) != 2 {
		t.Fatalf("FindSessions: %+v %v", list, err)
	}
}
