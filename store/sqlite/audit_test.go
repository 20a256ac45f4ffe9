package sqlite

import (
	"context"
	"fmt"
	"testing"

	"github.com/transparency-dev/merkle/compact"

	"github.com/agentgov/agentgov/audit"
)

func openTemp(t *testing.T) *DB {
	t.Helper()
	db, err := OpenDir(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func rowsOf(lo, hi int) []audit.Row {
	var rows []audit.Row
	for i := lo; i < hi; i++ {
		rows = append(rows, audit.Row{Index: uint64(i), Data: fmt.Appendf(nil, `{"n":%d}`, i)})
	}
	return rows
}

func leafNodes(rows []audit.Row) []audit.Node {
	var nodes []audit.Node
	for _, r := range rows {
		nodes = append(nodes, audit.Node{ID: compact.NewNodeID(0, r.Index), Hash: audit.LeafHash(r.Data)})
	}
	return nodes
}

func TestOpenAuditReadOnly(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	if _, err := OpenAuditReadOnly(ctx, dir+"/"+FileName); err == nil {
		t.Fatal("opened a database that does not exist")
	}
	db, err := OpenDir(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	rows := rowsOf(0, 3)
	if err := db.AuditAppend(ctx, rows, leafNodes(rows)); err != nil {
		t.Fatal(err)
	}
	db.Close()

	ro, err := OpenAuditReadOnly(ctx, dir+"/"+FileName)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	got, err := ro.AuditRows(ctx, -1, 10)
	if err != nil || len(got) != 3 {
		t.Fatalf("read %d rows, %v; want 3", len(got), err)
	}
	more := rowsOf(3, 4)
	if err := ro.AuditAppend(ctx, more, leafNodes(more)); err == nil {
		t.Fatal("a read-only store accepted a write")
	}
	if n, _ := ro.AuditSize(ctx); n != 3 {
		t.Fatalf("size = %d, want 3", n)
	}
}

// The audit transaction commits without an fsync and AuditSync supplies it;
// every other write must still be synced at its own commit.
func TestAuditAppendLeavesOtherWritesFullySynced(t *testing.T) {
	ctx := context.Background()
	db := openTemp(t)
	rows := rowsOf(0, 3)
	if err := db.AuditAppend(ctx, rows, leafNodes(rows)); err != nil {
		t.Fatal(err)
	}
	var mode int
	if err := db.write.QueryRowContext(ctx, `PRAGMA synchronous`).Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if mode != 2 {
		t.Fatalf("synchronous = %d on the write connection after an audit append; want 2 (FULL)", mode)
	}
	if err := db.AuditSync(ctx); err != nil {
		t.Fatalf("sync: %v", err)
	}
	// A second sync finds the same write-ahead log.
	if err := db.AuditSync(ctx); err != nil {
		t.Fatalf("second sync: %v", err)
	}
}
