package sqlite

import (
	"bytes"
	"context"
	"fmt"
	"strings"
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

func TestAuditAppendAndRead(t *testing.T) {
	ctx := context.Background()
	db := openTemp(t)

	if n, err := db.AuditSize(ctx); err != nil || n != 0 {
		t.Fatalf("empty size = %d, %v; want 0", n, err)
	}
	// More rows than one multi-row INSERT carries.
	rows := rowsOf(0, 450)
	if err := db.AuditAppend(ctx, rows, leafNodes(rows)); err != nil {
		t.Fatal(err)
	}
	if n, err := db.AuditSize(ctx); err != nil || n != 450 {
		t.Fatalf("size = %d, %v; want 450", n, err)
	}

	got, err := db.AuditRows(ctx, -1, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 450 {
		t.Fatalf("read %d rows, want 450", len(got))
	}
	for i, r := range got {
		if r.Index != uint64(i) || !bytes.Equal(r.Data, rows[i].Data) {
			t.Fatalf("row %d = %d %s, want %d %s", i, r.Index, r.Data, i, rows[i].Data)
		}
	}
	page, err := db.AuditRows(ctx, 99, 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(page) != 3 || page[0].Index != 100 || page[2].Index != 102 {
		t.Fatalf("page after 99 = %+v, want indices 100..102", page)
	}

	// Lookups keep the caller's order, repeat duplicates and leave gaps nil.
	ids := []compact.NodeID{compact.NewNodeID(0, 449), compact.NewNodeID(3, 0), compact.NewNodeID(0, 7), compact.NewNodeID(0, 449)}
	hashes, err := db.AuditNodes(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(hashes[0], audit.LeafHash(rows[449].Data)) || hashes[1] != nil ||
		!bytes.Equal(hashes[2], audit.LeafHash(rows[7].Data)) || !bytes.Equal(hashes[3], hashes[0]) {
		t.Fatalf("AuditNodes returned %x", hashes)
	}
	// More ids than one lookup query carries.
	var many []compact.NodeID
	for i := range 450 {
		many = append(many, compact.NewNodeID(0, uint64(449-i)))
	}
	hashes, err = db.AuditNodes(ctx, many)
	if err != nil {
		t.Fatal(err)
	}
	for i, h := range hashes {
		if !bytes.Equal(h, audit.LeafHash(rows[449-i].Data)) {
			t.Fatalf("node (0, %d) = %x", 449-i, h)
		}
	}
}

func TestAuditAppendIsAllOrNothing(t *testing.T) {
	ctx := context.Background()
	db := openTemp(t)
	first := rowsOf(0, 3)
	if err := db.AuditAppend(ctx, first, leafNodes(first)); err != nil {
		t.Fatal(err)
	}
	// Index 2 already exists: the whole batch, nodes too, must be refused.
	second := rowsOf(3, 6)
	second = append(second, audit.Row{Index: 2, Data: []byte(`{"n":"again"}`)})
	if err := db.AuditAppend(ctx, second, leafNodes(rowsOf(3, 6))); err == nil {
		t.Fatal("appending an existing index succeeded")
	}
	if n, _ := db.AuditSize(ctx); n != 3 {
		t.Fatalf("size after failed batch = %d, want 3", n)
	}
	hashes, err := db.AuditNodes(ctx, []compact.NodeID{compact.NewNodeID(0, 3)})
	if err != nil {
		t.Fatal(err)
	}
	if hashes[0] != nil {
		t.Fatal("a node of the failed batch was stored")
	}
	rows, _ := db.AuditRows(ctx, 1, 10)
	if len(rows) != 1 || string(rows[0].Data) != `{"n":2}` {
		t.Fatalf("entry 2 = %+v, want it unchanged", rows)
	}
}

func TestAuditTablesAreAppendOnly(t *testing.T) {
	ctx := context.Background()
	db := openTemp(t)
	rows := rowsOf(0, 2)
	if err := db.AuditAppend(ctx, rows, leafNodes(rows)); err != nil {
		t.Fatal(err)
	}
	if err := db.AuditPutCheckpoint(ctx, audit.Checkpoint{Size: 2, Note: []byte("n")}); err != nil {
		t.Fatal(err)
	}
	for _, stmt := range []string{
		`UPDATE audit_entries SET data = 'x' WHERE idx = 0`,
		`DELETE FROM audit_entries WHERE idx = 1`,
		`UPDATE audit_nodes SET hash = x'00'`,
		`DELETE FROM audit_nodes`,
		`UPDATE audit_checkpoints SET note = 'x'`,
		`DELETE FROM audit_checkpoints`,
	} {
		_, err := db.write.ExecContext(ctx, stmt)
		if err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: err = %v, want append-only refusal", stmt, err)
		}
	}
	if n, _ := db.AuditSize(ctx); n != 2 {
		t.Fatalf("size = %d after refused deletes, want 2", n)
	}
}

func TestAuditCheckpoints(t *testing.T) {
	ctx := context.Background()
	db := openTemp(t)
	if _, ok, err := db.AuditLatestCheckpoint(ctx); err != nil || ok {
		t.Fatalf("latest of none = %v, %v", ok, err)
	}
	for _, n := range []uint64{10, 0, 25, 20} {
		if err := db.AuditPutCheckpoint(ctx, audit.Checkpoint{Size: n, Note: fmt.Appendf(nil, "note %d", n)}); err != nil {
			t.Fatal(err)
		}
	}
	// Storing the same checkpoint again is harmless; a different one is not.
	if err := db.AuditPutCheckpoint(ctx, audit.Checkpoint{Size: 10, Note: []byte("note 10")}); err != nil {
		t.Fatalf("re-storing an identical checkpoint: %v", err)
	}
	if err := db.AuditPutCheckpoint(ctx, audit.Checkpoint{Size: 10, Note: []byte("forged")}); err == nil {
		t.Fatal("a second, different checkpoint for size 10 was accepted")
	}

	latest, ok, err := db.AuditLatestCheckpoint(ctx)
	if err != nil || !ok || latest.Size != 25 || string(latest.Note) != "note 25" {
		t.Fatalf("latest = %+v, %v, %v; want size 25", latest, ok, err)
	}
	all, err := db.AuditCheckpoints(ctx, -1, 100)
	if err != nil {
		t.Fatal(err)
	}
	var sizes []uint64
	for _, c := range all {
		sizes = append(sizes, c.Size)
	}
	if fmt.Sprint(sizes) != "[0 10 20 25]" {
		t.Fatalf("checkpoint sizes = %v, want [0 10 20 25]", sizes)
	}
	page, err := db.AuditCheckpoints(ctx, 10, 1)
	if err != nil || len(page) != 1 || page[0].Size != 20 {
		t.Fatalf("page after 10 = %+v, %v; want size 20", page, err)
	}
}

func TestAuditSurvivesReopen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db, err := OpenDir(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	rows := rowsOf(0, 5)
	if err := db.AuditAppend(ctx, rows, leafNodes(rows)); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db, err = OpenDir(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if n, err := db.AuditSize(ctx); err != nil || n != 5 {
		t.Fatalf("size after reopen = %d, %v; want 5", n, err)
	}
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

// Batches of every shape reuse the prepared INSERTs kept by row count:
// each row lands once, in order, with its own bytes.
func TestAuditAppendBatchSizes(t *testing.T) {
	ctx := context.Background()
	db := openTemp(t)
	next := 0
	for _, n := range []int{1, 1, 2, 31, 32, 33, 64, 65, 1} {
		rows := rowsOf(next, next+n)
		if err := db.AuditAppend(ctx, rows, leafNodes(rows)); err != nil {
			t.Fatalf("batch of %d: %v", n, err)
		}
		next += n
	}
	got, err := db.AuditRows(ctx, -1, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != next {
		t.Fatalf("%d rows stored, want %d", len(got), next)
	}
	for i, r := range got {
		if r.Index != uint64(i) || string(r.Data) != fmt.Sprintf(`{"n":%d}`, i) {
			t.Fatalf("row %d = %d %s", i, r.Index, r.Data)
		}
	}
	ids := make([]compact.NodeID, next)
	for i := range ids {
		ids[i] = compact.NewNodeID(0, uint64(i))
	}
	hashes, err := db.AuditNodes(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	for i, h := range hashes {
		if !bytes.Equal(h, audit.LeafHash(got[i].Data)) {
			t.Fatalf("leaf node %d = %x", i, h)
		}
	}
}
