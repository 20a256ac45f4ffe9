package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/transparency-dev/merkle/compact"

	"github.com/agentgov/agentgov/audit"
)

var _ audit.Store = (*DB)(nil)

// The triggers make the tables append-only for every ordinary writer, so
// that no bug in another part of agentgov can edit history. They are no
// defence against someone who can rewrite the file; audit.Verify is.
func init() {
	stmts := []string{
		`CREATE TABLE IF NOT EXISTS audit_entries (
			idx  INTEGER PRIMARY KEY,
			data BLOB NOT NULL
		)`,
		`CREATE TABLE IF NOT EXISTS audit_nodes (
			level INTEGER NOT NULL,
			idx   INTEGER NOT NULL,
			hash  BLOB NOT NULL,
			PRIMARY KEY (level, idx)
		) WITHOUT ROWID`,
		`CREATE TABLE IF NOT EXISTS audit_checkpoints (
			size INTEGER PRIMARY KEY,
			note BLOB NOT NULL
		)`,
	}
	for _, table := range []string{"audit_entries", "audit_nodes", "audit_checkpoints"} {
		for _, op := range []string{"UPDATE", "DELETE"} {
			stmts = append(stmts, fmt.Sprintf(
				`CREATE TRIGGER IF NOT EXISTS %[1]s_no_%[3]s BEFORE %[2]s ON %[1]s
				BEGIN SELECT RAISE(ABORT, '%[1]s is append-only'); END`,
				table, op, strings.ToLower(op)))
		}
	}
	register("audit", stmts...)
}

// OpenAuditReadOnly opens an existing database only to read its audit log:
// nothing is created, no schema is migrated, every statement is read-only.
// Verifying evidence must not change it, and must not depend on other
// concepts' migrations succeeding over a file that may have been tampered
// with (an index over entry JSON cannot be rebuilt once an entry's bytes are
// broken, and OpenDir would then fail before Verify could name the entry).
func OpenAuditReadOnly(ctx context.Context, path string) (*DB, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	q := url.Values{}
	q.Set("mode", "ro")
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "query_only(1)")
	r, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	r.SetMaxOpenConns(4)
	if err := r.PingContext(ctx); err != nil {
		r.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	// Both pools are the read-only one; sql.DB.Close is idempotent.
	return &DB{Path: path, write: r, read: r}, nil
}

// AuditAppend writes a batch of entries and tree nodes in one transaction,
// committed at synchronous=FULL like every other write: SQLite syncs the
// write-ahead log before the commit returns, so a batch is durable once
// AuditAppend has returned. Group commit in the log spreads that one sync
// over every entry of the batch.
func (db *DB) AuditAppend(ctx context.Context, rows []audit.Row, nodes []audit.Node) (err error) {
	const (
		entriesHead, entriesTuple = "INSERT OR ROLLBACK INTO audit_entries (idx, data) VALUES ", "(?,?)"
		nodesHead, nodesTuple     = "INSERT OR ROLLBACK INTO audit_nodes (level, idx, hash) VALUES ", "(?,?,?)"
	)
	entryStmts, err := db.insertStmts(ctx, entriesHead, entriesTuple, len(rows))
	if err != nil {
		return fmt.Errorf("append audit entries: %w", err)
	}
	nodeStmts, err := db.insertStmts(ctx, nodesHead, nodesTuple, len(nodes))
	if err != nil {
		return fmt.Errorf("append audit tree nodes: %w", err)
	}
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("append audit entries: %w", err)
	}
	defer func() {
		if err != nil {
			tx.Rollback()
		}
	}()
	if err := insertMany(ctx, tx, entryStmts, len(rows), func(i int) []any {
		return []any{int64(rows[i].Index), rows[i].Data}
	}); err != nil {
		return fmt.Errorf("append audit entries: %w", err)
	}
	if err := insertMany(ctx, tx, nodeStmts, len(nodes), func(i int) []any {
		return []any{int64(nodes[i].ID.Level), int64(nodes[i].ID.Index), nodes[i].Hash}
	}); err != nil {
		return fmt.Errorf("append audit tree nodes: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("append audit entries: commit: %w", err)
	}
	return nil
}

// insertRows is the most rows one INSERT of an audit batch carries; a
// larger batch takes several.
const insertRows = 32

// insertStmt is a prepared multi-row INSERT: head, then n copies of tuple.
type insertStmt struct {
	head, tuple string
	n           int
}

// insertStmts returns the prepared statements that insert n rows: full
// statements of insertRows rows, then one for the rest. Each is prepared
// once and kept, because parsing an INSERT of dozens of placeholders cost
// about as much as running it, on every batch. They are prepared on the
// write pool, whose one connection is the one AuditAppend pins (so this
// must be called before pinning it); database/sql prepares them again if
// that connection is ever replaced.
func (db *DB) insertStmts(ctx context.Context, head, tuple string, n int) ([]*sql.Stmt, error) {
	var out []*sql.Stmt
	for lo := 0; lo < n; lo += insertRows {
		st, err := db.insertStmt(ctx, insertStmt{head, tuple, min(insertRows, n-lo)})
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}

func (db *DB) insertStmt(ctx context.Context, k insertStmt) (*sql.Stmt, error) {
	db.stmtMu.Lock()
	defer db.stmtMu.Unlock()
	if st, ok := db.stmts[k]; ok {
		return st, nil
	}
	var q strings.Builder
	q.WriteString(k.head)
	for i := range k.n {
		if i > 0 {
			q.WriteByte(',')
		}
		q.WriteString(k.tuple)
	}
	st, err := db.write.PrepareContext(ctx, q.String())
	if err != nil {
		return nil, err
	}
	if db.stmts == nil {
		db.stmts = make(map[insertStmt]*sql.Stmt)
	}
	db.stmts[k] = st
	return st, nil
}

// insertMany runs stmts (from insertStmts) in tx, with the arguments of
// rows 0 to n-1.
func insertMany(ctx context.Context, tx *sql.Tx, stmts []*sql.Stmt, n int, args func(int) []any) error {
	lo := 0
	var vals []any
	for _, st := range stmts {
		hi := min(lo+insertRows, n)
		vals = vals[:0]
		for i := lo; i < hi; i++ {
			vals = append(vals, args(i)...)
		}
		if _, err := tx.StmtContext(ctx, st).ExecContext(ctx, vals...); err != nil {
			return err
		}
		lo = hi
	}
	return nil
}

// AuditSize is one past the highest stored index: new entries never reuse
// an index, even if rows below it were deleted.
func (db *DB) AuditSize(ctx context.Context) (uint64, error) {
	var n int64
	if err := db.read.QueryRowContext(ctx, `SELECT COALESCE(MAX(idx) + 1, 0) FROM audit_entries`).Scan(&n); err != nil {
		return 0, fmt.Errorf("audit size: %w", err)
	}
	return uint64(n), nil
}

// AuditRows returns up to limit entries after index after, in index order.
func (db *DB) AuditRows(ctx context.Context, after int64, limit int) ([]audit.Row, error) {
	rs, err := db.read.QueryContext(ctx, `SELECT idx, data FROM audit_entries WHERE idx > ? ORDER BY idx LIMIT ?`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("read audit entries: %w", err)
	}
	defer rs.Close()
	var out []audit.Row
	for rs.Next() {
		var idx int64
		var data []byte
		if err := rs.Scan(&idx, &data); err != nil {
			return nil, fmt.Errorf("read audit entries: %w", err)
		}
		if idx < 0 {
			return nil, fmt.Errorf("read audit entries: negative index %d", idx)
		}
		out = append(out, audit.Row{Index: uint64(idx), Data: data})
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("read audit entries: %w", err)
	}
	return out, nil
}

// nodeBatch is how many node ids one lookup query carries.
const nodeBatch = 250

// AuditNodes looks up tree node hashes; a node that is not stored gets nil.
func (db *DB) AuditNodes(ctx context.Context, ids []compact.NodeID) ([][]byte, error) {
	out := make([][]byte, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	conn, err := db.read.Conn(ctx) // one snapshot-consistent connection for all chunks
	if err != nil {
		return nil, fmt.Errorf("read audit tree nodes: %w", err)
	}
	defer conn.Close()
	for lo := 0; lo < len(ids); lo += nodeBatch {
		hi := min(lo+nodeBatch, len(ids))
		pos := make(map[compact.NodeID][]int, hi-lo)
		var q strings.Builder
		q.WriteString(`SELECT level, idx, hash FROM audit_nodes WHERE (level, idx) IN (VALUES `)
		args := make([]any, 0, 2*(hi-lo))
		for i := lo; i < hi; i++ {
			if i > lo {
				q.WriteByte(',')
			}
			q.WriteString("(?,?)")
			args = append(args, int64(ids[i].Level), int64(ids[i].Index))
			pos[ids[i]] = append(pos[ids[i]], i)
		}
		q.WriteByte(')')
		rs, err := conn.QueryContext(ctx, q.String(), args...)
		if err != nil {
			return nil, fmt.Errorf("read audit tree nodes: %w", err)
		}
		for rs.Next() {
			var level, idx int64
			var hash []byte
			if err := rs.Scan(&level, &idx, &hash); err != nil {
				rs.Close()
				return nil, fmt.Errorf("read audit tree nodes: %w", err)
			}
			for _, i := range pos[compact.NewNodeID(uint(level), uint64(idx))] {
				out[i] = hash
			}
		}
		err = rs.Err()
		rs.Close()
		if err != nil {
			return nil, fmt.Errorf("read audit tree nodes: %w", err)
		}
	}
	return out, nil
}

// AuditPutCheckpoint stores a checkpoint. Storing the same checkpoint again
// is a no-op (Ed25519 signatures are deterministic, so a retry after an
// ambiguous commit produces identical bytes); a different note for a size
// already signed is an error.
func (db *DB) AuditPutCheckpoint(ctx context.Context, c audit.Checkpoint) error {
	res, err := db.write.ExecContext(ctx,
		`INSERT INTO audit_checkpoints (size, note) VALUES (?, ?) ON CONFLICT (size) DO NOTHING`,
		int64(c.Size), c.Note)
	if err != nil {
		return fmt.Errorf("store audit checkpoint: %w", err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 1 {
		return nil
	}
	var have []byte
	if err := db.write.QueryRowContext(ctx, `SELECT note FROM audit_checkpoints WHERE size = ?`, int64(c.Size)).Scan(&have); err != nil {
		return fmt.Errorf("store audit checkpoint: %w", err)
	}
	if !bytes.Equal(have, c.Note) {
		return fmt.Errorf("store audit checkpoint: a different checkpoint for tree size %d is already stored", c.Size)
	}
	return nil
}

// AuditCheckpoints returns up to limit checkpoints for tree sizes above
// after, smallest first.
func (db *DB) AuditCheckpoints(ctx context.Context, after int64, limit int) ([]audit.Checkpoint, error) {
	rs, err := db.read.QueryContext(ctx, `SELECT size, note FROM audit_checkpoints WHERE size > ? ORDER BY size LIMIT ?`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("read audit checkpoints: %w", err)
	}
	defer rs.Close()
	var out []audit.Checkpoint
	for rs.Next() {
		var size int64
		var note []byte
		if err := rs.Scan(&size, &note); err != nil {
			return nil, fmt.Errorf("read audit checkpoints: %w", err)
		}
		if size < 0 {
			return nil, fmt.Errorf("read audit checkpoints: negative tree size %d", size)
		}
		out = append(out, audit.Checkpoint{Size: uint64(size), Note: note})
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("read audit checkpoints: %w", err)
	}
	return out, nil
}

// AuditLatestCheckpoint returns the checkpoint of the largest tree.
func (db *DB) AuditLatestCheckpoint(ctx context.Context) (audit.Checkpoint, bool, error) {
	var size int64
	var note []byte
	err := db.read.QueryRowContext(ctx, `SELECT size, note FROM audit_checkpoints ORDER BY size DESC LIMIT 1`).Scan(&size, &note)
	if errors.Is(err, sql.ErrNoRows) {
		return audit.Checkpoint{}, false, nil
	}
	if err != nil {
		return audit.Checkpoint{}, false, fmt.Errorf("read latest audit checkpoint: %w", err)
	}
	if size < 0 {
		return audit.Checkpoint{}, false, fmt.Errorf("read latest audit checkpoint: negative tree size %d", size)
	}
	return audit.Checkpoint{Size: uint64(size), Note: note}, true, nil
}
