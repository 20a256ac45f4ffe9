// Package sqlite is the embedded, zero-set-up backend of agentgov's state: one
// SQLite file (pure Go, no cgo) holding the audit log, sessions, kill
// switches, approvals and budgets. Each concept's storage interface is
// declared by the package that consumes it (audit.Store, approval.Store, ...);
// this package implements them, one file per concept.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// FileName is the database file inside a data directory.
const FileName = "agentgov.db"

// DB is an open agentgov database. Writes go through one connection, because
// SQLite serialises writers anyway and a single writer never waits on a lock;
// reads use a pool, which WAL mode lets run beside the writer.
type DB struct {
	Path  string
	write *sql.DB
	read  *sql.DB
	lock  *dbLock // nil for the read-only opener

	stmtMu sync.Mutex
	stmts  map[insertStmt]*sql.Stmt // see insertStmts
}

type schema struct {
	name  string
	stmts []string
}

var (
	schemasMu sync.Mutex
	schemas   []schema
)

// register adds a concept's tables. Each file of this package registers its
// own in init, so that adding a concept never edits a shared list. Statements
// must be idempotent (CREATE ... IF NOT EXISTS).
func register(name string, stmts ...string) {
	schemasMu.Lock()
	defer schemasMu.Unlock()
	schemas = append(schemas, schema{name, stmts})
	slices.SortFunc(schemas, func(a, b schema) int { return strings.Compare(a.name, b.name) })
}

// OpenDir opens (creating if needed) the database in a data directory.
func OpenDir(ctx context.Context, dir string) (*DB, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	return Open(ctx, filepath.Join(dir, FileName))
}

// Open opens (creating if needed) the database file at path for writing
// and brings its schema up to date. It holds an exclusive lock on the
// database until Close, and refuses with an *InUseError while another DB
// holds it. The database and its -wal and -shm files are mode 0600.
func Open(ctx context.Context, path string) (*DB, error) {
	lock, err := acquireLock(path)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	if err := prepareFiles(path); err != nil {
		lock.release()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	// synchronous(FULL) in WAL mode: a commit is on disk before it returns, so
	// an acknowledged audit entry survives even a power cut, not only SIGKILL.
	q := url.Values{}
	for _, p := range []string{"journal_mode(WAL)", "synchronous(FULL)", "busy_timeout(10000)", "foreign_keys(1)"} {
		q.Add("_pragma", p)
	}
	dsn := "file:" + path + "?" + q.Encode()
	w, err := sql.Open("sqlite", dsn)
	if err != nil {
		lock.release()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	r, err := sql.Open("sqlite", dsn)
	if err != nil {
		w.Close()
		lock.release()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	r.SetMaxOpenConns(4)
	db := &DB{Path: path, write: w, read: r, lock: lock}
	if err := db.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

func (db *DB) migrate(ctx context.Context) error {
	schemasMu.Lock()
	all := slices.Clone(schemas)
	schemasMu.Unlock()
	for _, s := range all {
		for _, stmt := range s.stmts {
			if _, err := db.write.ExecContext(ctx, stmt); err != nil {
				return fmt.Errorf("open store %s: create %s tables: %w", db.Path, s.name, err)
			}
		}
	}
	return nil
}

// Ping reports whether the database answers.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.read.PingContext(ctx); err != nil {
		return fmt.Errorf("store %s: %w", db.Path, err)
	}
	return nil
}

// Close closes both connection pools, then releases the lock.
func (db *DB) Close() error {
	db.stmtMu.Lock()
	for _, st := range db.stmts {
		st.Close()
	}
	db.stmts = nil
	db.stmtMu.Unlock()
	err1 := db.read.Close()
	err2 := db.write.Close()
	err3 := db.lock.release()
	return errors.Join(err1, err2, err3)
}
