package sqlite_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/agentgov/agentgov/store/sqlite"
	"github.com/agentgov/agentgov/store/storetest"
)

// The conformance suite, on a data directory per test. Every handle of a
// test opens the same directory (they share this process's lock); SQLite
// keeps one audit log per directory, so replica ids and keys are not used.
func TestConformance(t *testing.T) {
	var dir string
	storetest.Run(t, storetest.Backend{
		Fresh: func(t *testing.T) storetest.Opener {
			dir = t.TempDir()
			return func(t *testing.T, _, _ string) storetest.Store {
				db, err := sqlite.OpenDir(context.Background(), dir)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { db.Close() })
				return db
			}
		},
		Exec: func(t *testing.T, stmt string) error {
			raw, err := sql.Open("sqlite", "file:"+filepath.Join(dir, sqlite.FileName)+"?_pragma=busy_timeout(10000)")
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			_, err = raw.Exec(stmt)
			return err
		},
	})
}
