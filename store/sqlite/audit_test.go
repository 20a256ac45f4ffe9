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

// An audit batch is durable when AuditAppend returns: it commits at
// synchronous=FULL, like every other write, so SQLite syncs the write-ahead
// log before the commit returns (audit.Store asks this; nothing syncs
// later). The write pool holds one connection, so the connection read here
// is the one that committed the batch, and it is at FULL before and after
// the append; the open options set FULL on it.
func TestAuditAppendCommitsAtSynchronousFull(t *testing.T) {
	ctx := context.Background()
	db := openTemp(t)
	if n := db.write.Stats().MaxOpenConnections; n != 1 {
		t.Fatalf("the write pool holds up to %d connections; want 1, the one every write commits on", n)
	}
	mode := func(when string) {
		t.Helper()
		var m int
		if err := db.write.QueryRowContext(ctx, `PRAGMA synchronous`).Scan(&m); err != nil {
			t.Fatal(err)
		}
		if m != 2 {
			t.Fatalf("synchronous = %d on the write connection %s; want 2 (FULL)", m, when)
		}
	}
	mode("before an audit append")
	rows := rowsOf(0, 3)
	if err := db.AuditAppend(ctx, rows, leafNodes(rows)); err != nil {
		t.Fatal(err)
	}
	mode("after an audit append")
}
