package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/compact"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/audit"
	"github.com/agentgov/agentgov/store"
)

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

func testAuditAppendAndRead(t *testing.T, b Backend) {
	ctx := bg
	db := open(t, b)
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
	// More ids than one lookup query of store/sqlite carries.
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

func testAuditAppendIsAllOrNothing(t *testing.T, b Backend) {
	ctx := bg
	db := open(t, b)
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
	// A node that exists already fails a batch too.
	third := rowsOf(3, 4)
	if err := db.AuditAppend(ctx, third, append(leafNodes(third), leafNodes(rowsOf(0, 1))...)); err == nil {
		t.Fatal("rewriting an existing node succeeded")
	}
	if n, _ := db.AuditSize(ctx); n != 3 {
		t.Fatalf("size after failed batch = %d, want 3", n)
	}
}

// The audit tables refuse changes and deletions from every writer, not only
// from agentgov: a bug elsewhere, or someone with a connection, cannot edit
// history without first removing the guard.
func testAuditTablesAreAppendOnly(t *testing.T, b Backend) {
	ctx := bg
	db := open(t, b)
	rows := rowsOf(0, 2)
	if err := db.AuditAppend(ctx, rows, leafNodes(rows)); err != nil {
		t.Fatal(err)
	}
	if err := db.AuditPutCheckpoint(ctx, audit.Checkpoint{Size: 2, Note: []byte("n")}); err != nil {
		t.Fatal(err)
	}
	for _, stmt := range []string{
		`UPDATE audit_entries SET data = data WHERE idx = 0`,
		`DELETE FROM audit_entries WHERE idx = 1`,
		`UPDATE audit_nodes SET hash = hash`,
		`DELETE FROM audit_nodes`,
		`UPDATE audit_checkpoints SET note = note`,
		`DELETE FROM audit_checkpoints`,
	} {
		err := b.Exec(t, stmt)
		if err == nil || !bytes.Contains([]byte(err.Error()), []byte("append-only")) {
			t.Errorf("%s: err = %v, want append-only refusal", stmt, err)
		}
	}
	if n, _ := db.AuditSize(ctx); n != 2 {
		t.Fatalf("size = %d after refused deletes, want 2", n)
	}
	if cps, _ := db.AuditCheckpoints(ctx, -1, 10); len(cps) != 1 {
		t.Fatalf("%d checkpoints after refused deletes, want 1", len(cps))
	}
}

func testAuditCheckpoints(t *testing.T, b Backend) {
	ctx := bg
	db := open(t, b)
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

func testAuditSurvivesReopen(t *testing.T, b Backend) {
	ctx := bg
	opener := b.Fresh(t)
	key := NewKey(t, "agentgov-test/r1")
	db := opener(t, "r1", key.Text)
	rows := rowsOf(0, 5)
	if err := db.AuditAppend(ctx, rows, leafNodes(rows)); err != nil {
		t.Fatal(err)
	}
	db.Close()
	again := opener(t, "r1", key.Text)
	if n, err := again.AuditSize(ctx); err != nil || n != 5 {
		t.Fatalf("size on another handle = %d, %v; want 5", n, err)
	}
}

// Batches of every shape land once, in order, with their own bytes.
func testAuditAppendBatchSizes(t *testing.T, b Backend) {
	ctx := bg
	db := open(t, b)
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

// runLog opens an audit log over st and runs it until the test ends (or
// stop is called); stop waits for its final checkpoint.
func runLog(t *testing.T, st audit.Store, key Key) (l *audit.Log, stop func()) {
	t.Helper()
	l, err := audit.Open(bg, st, key.Signer, key.Verifier, audit.Options{CheckpointInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(bg)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); l.Run(ctx) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); wg.Wait() }) }
	t.Cleanup(stop)
	return l, stop
}

// A log written through the store, stopped and opened again on another
// handle, continues where it was and verifies whole.
func testAuditLogVerifiesAcrossRestart(t *testing.T, b Backend) {
	opener := b.Fresh(t)
	key := NewKey(t, "agentgov-test/r1")
	first := opener(t, "r1", key.Text)
	l, stop := runLog(t, first, key)
	for i := range 10 {
		if _, err := l.Append(bg, "test", map[string]int{"n": i}); err != nil {
			t.Fatal(err)
		}
	}
	stop()
	first.Close()
	st := opener(t, "r1", key.Text)
	l, stop = runLog(t, st, key)
	if l.Size() != 10 {
		t.Fatalf("size after restart = %d, want 10", l.Size())
	}
	if idx, err := l.Append(bg, "test", map[string]int{"n": 10}); err != nil || idx != 10 {
		t.Fatalf("append after restart: %d %v", idx, err)
	}
	stop()
	rep, err := audit.Verify(bg, st, key.Verifier, audit.VerifyOptions{})
	if err != nil || !rep.OK() || rep.Entries != 11 || rep.Signed != 11 {
		t.Fatalf("verify = %+v, %v", rep, err)
	}
}

// decisionEntry is an audit record of a decision as the engine writes it.
type decisionEntry struct {
	Decision action.Decision `json:"decision"`
	Action   action.Action   `json:"action"`
}

func testDecisionsAreFoundByID(t *testing.T, b Backend) {
	db := open(t, b)
	if _, err := db.FindDecision(bg, "dec_nothing"); !errors.Is(err, store.ErrNoDecision) {
		t.Fatalf("unknown decision: %v", err)
	}
	rows := []audit.Row{
		{Index: 0, Data: []byte(`{"index":0,"kind":"policy_load","record":{"decision":{"id":"dec_NOTADECISION"}},"time":"2026-03-01T12:00:00Z"}`)},
		{Index: 1, Data: []byte(`{"index":1,"kind":"decision","record":{"action":{"args":{"decision":{"id":"dec_INARGS"}}},"decision":{"effect":"allow","id":"dec_A"}},"time":"2026-03-01T12:00:00Z"}`)},
		{Index: 2, Data: []byte(`{"index":2,"kind":"outcome","record":{"decision":"dec_A"},"time":"2026-03-01T12:00:00Z"}`)},
	}
	if err := db.AuditAppend(bg, rows, leafNodes(rows)); err != nil {
		t.Fatal(err)
	}
	d, err := db.FindDecision(bg, "dec_A")
	if err != nil || d.Index != 1 || !bytes.Equal(d.Data, rows[1].Data) {
		t.Fatalf("dec_A = %+v, %v", d, err)
	}
	// An id inside an agent's arguments does not name the entry.
	if d, err := db.FindDecision(bg, "dec_INARGS"); err == nil && d.Index == 1 {
		t.Fatalf("an id in the arguments found entry %d", d.Index)
	}
}
