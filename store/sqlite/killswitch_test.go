package sqlite_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/agentgov/agentgov/killswitch"
	"github.com/agentgov/agentgov/store/sqlite"
)

// A database from before session switches named their agent keeps its
// switches; an old session switch has no agent, and so stops its session
// id for every agent.
func TestSwitchesOfTheOldTableAreCarriedOver(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	old, err := sql.Open("sqlite", "file:"+filepath.Join(dir, sqlite.FileName))
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`CREATE TABLE kill_switches (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, scope TEXT NOT NULL,
			target TEXT NOT NULL, reason TEXT NOT NULL, engaged_by TEXT NOT NULL, engaged_at INTEGER NOT NULL,
			released_at INTEGER NOT NULL DEFAULT 0, released_by TEXT NOT NULL DEFAULT '')`,
		`INSERT INTO kill_switches (id, scope, target, reason, engaged_by, engaged_at) VALUES ('kill_1', 'session', 's-42', 'loop', 'ops', 1)`,
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
	list, err := db.ListSwitches(ctx, false)
	if err != nil || len(list) != 1 || list[0].ID != "kill_1" || list[0].Scope != killswitch.Session || list[0].Agent != "" {
		t.Fatalf("carried-over switches %+v %v", list, err)
	}
}
