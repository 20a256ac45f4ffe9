package audit_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/agentgov/agentgov/audit"
	"github.com/agentgov/agentgov/jcs"
	"github.com/agentgov/agentgov/store/sqlite"
)

// testLog is a Log over a real SQLite file, with its writer running.
type testLog struct {
	*audit.Log
	dir      string
	db       *sqlite.DB
	verifier note.Verifier
	stop     func() error // ends Run and returns its error
}

// fixedClock ticks one millisecond per reading, so entries have distinct,
// reproducible times.
func fixedClock() func() time.Time {
	var mu sync.Mutex
	t := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		t = t.Add(time.Millisecond)
		return t
	}
}

func startLog(t testing.TB, dir string, opts audit.Options) *testLog {
	return startWrapped(t, dir, opts, func(db *sqlite.DB) audit.Store { return db })
}

// startWrapped runs a Log over a store that wrap makes of the database in
// dir (to fail, hold or count its writes).
func startWrapped(t testing.TB, dir string, opts audit.Options, wrap func(*sqlite.DB) audit.Store) *testLog {
	t.Helper()
	db, err := sqlite.OpenDir(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	return startLogOn(t, dir, db, wrap(db), opts)
}

// failOnceThenRecover makes the store fail one append as fault says, checks
// that the appender is told, and that the next append gets index want.
func failOnceThenRecover(t *testing.T, l *testLog, st *faultyStore, fault string, want uint64) {
	t.Helper()
	ctx := context.Background()
	st.set(fault)
	if _, err := l.Append(ctx, "decision", "unsure"); !errors.Is(err, errInjected) {
		t.Fatalf("append with the store failing %q = %v; want the store's error", fault, err)
	}
	st.set("")
	idx, err := l.Append(ctx, "decision", "after recovery")
	if err != nil {
		t.Fatal(err)
	}
	if idx != want {
		t.Fatalf("append after the failure got index %d, want %d", idx, want)
	}
}

// startLogOn runs a Log over st, which may wrap db.
func startLogOn(t testing.TB, dir string, db *sqlite.DB, st audit.Store, opts audit.Options) *testLog {
	t.Helper()
	signer, verifier, err := audit.LoadOrCreateKey(dir, "test.example/audit")
	if err != nil {
		t.Fatal(err)
	}
	if opts.Clock == nil {
		opts.Clock = fixedClock()
	}
	l, err := audit.Open(context.Background(), st, signer, verifier, opts)
	if err != nil {
		db.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- l.Run(ctx) }()
	var once sync.Once
	var runErr error
	tl := &testLog{Log: l, dir: dir, db: db, verifier: verifier}
	tl.stop = func() error {
		once.Do(func() {
			cancel()
			runErr = <-errc
			db.Close()
		})
		return runErr
	}
	t.Cleanup(func() { tl.stop() })
	return tl
}

func verifyDir(t *testing.T, dir string) audit.Report {
	t.Helper()
	db, err := sqlite.OpenAuditReadOnly(context.Background(), filepath.Join(dir, sqlite.FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	v, err := audit.LoadVerifier(filepath.Join(dir, audit.PubFile))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := audit.Verify(context.Background(), db, v, audit.VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

type decision struct {
	Agent  string         `json:"agent"`
	Effect string         `json:"effect"`
	Args   map[string]any `json:"args,omitempty"`
}

func TestAppendProveVerifyRoundTrip(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l := startLog(t, dir, audit.Options{CheckpointEvery: 4, CheckpointInterval: time.Hour})

	// Records whose canonical form differs from encoding/json's: key order,
	// escapes, numbers, non-ASCII.
	records := []any{
		decision{Agent: "researcher-1", Effect: "allow", Args: map[string]any{"z": 1, "a": "<b>&", "m": 1e21}},
		map[string]any{"€": "é", "\u0001": "\n", "b": []any{1.5, false, nil}},
		"just a string",
		42.0,
		nil,
		json.RawMessage(`{"b" : 2, "a" : [ 1 , 2 ]}`),
		decision{Agent: "researcher-2", Effect: "deny"},
	}
	kinds := []string{"decision", "outcome", "approval", "kill", "policy_load", "decision", "decision"}
	for i, rec := range records {
		idx, err := l.Append(ctx, kinds[i], rec)
		if err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
		if idx != uint64(i) {
			t.Fatalf("append %d got index %d", i, idx)
		}
	}
	if l.Size() != uint64(len(records)) {
		t.Fatalf("Size = %d, want %d", l.Size(), len(records))
	}

	entries, err := l.Entries(ctx, -1, 100)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := l.db.AuditRows(ctx, -1, 100)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range entries {
		want, err := jcs.Marshal(records[i])
		if err != nil {
			t.Fatal(err)
		}
		if e.Index != uint64(i) || e.Kind != kinds[i] || !bytes.Equal(e.Record, want) {
			t.Errorf("entry %d = %d %s %s, want %d %s %s", i, e.Index, e.Kind, e.Record, i, kinds[i], want)
		}
		if e.Time.IsZero() || e.Time.Location() != time.UTC {
			t.Errorf("entry %d time %v, want a UTC time", i, e.Time)
		}
		// What is stored (and hashed) is exactly the canonical JSON of the
		// whole entry, so anyone holding the entry can recompute its leaf.
		canon, err := jcs.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(canon, rows[i].Data) {
			t.Errorf("entry %d stored as\n%s\nbut its canonical JSON is\n%s", i, rows[i].Data, canon)
		}
	}
	page, err := l.Entries(ctx, 4, 2)
	if err != nil || len(page) != 2 || page[0].Index != 5 || page[1].Index != 6 {
		t.Fatalf("Entries(after 4, limit 2) = %+v, %v", page, err)
	}

	// Every entry proves against the latest checkpoint, which is written on
	// demand to cover the whole log.
	cpNote, size, err := l.Checkpoint(ctx)
	if err != nil || size != uint64(len(records)) {
		t.Fatalf("Checkpoint = size %d, %v; want %d", size, err, len(records))
	}
	for i := range records {
		p, err := l.Prove(ctx, uint64(i))
		if err != nil {
			t.Fatalf("prove %d: %v", i, err)
		}
		if p.TreeSize != size || p.Checkpoint != string(cpNote) || !bytes.Equal(p.Entry, rows[i].Data) {
			t.Fatalf("proof %d = %+v", i, p)
		}
		if err := audit.VerifyProof(p, l.verifier); err != nil {
			t.Fatalf("verify proof %d: %v", i, err)
		}
		// A proof still verifies after a trip through pretty-printed JSON,
		// as the CLI prints it.
		pretty, err := json.MarshalIndent(p, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		var back audit.Proof
		if err := json.Unmarshal(pretty, &back); err != nil {
			t.Fatal(err)
		}
		if err := audit.VerifyProof(back, l.verifier); err != nil {
			t.Fatalf("verify proof %d after JSON round trip: %v", i, err)
		}
		// A proof does not verify for another leaf or another position.
		wrong := p
		wrong.Entry = rows[(i+1)%len(rows)].Data
		wrong.LeafHash = audit.LeafHash(wrong.Entry)
		if audit.VerifyProof(wrong, l.verifier) == nil {
			t.Fatalf("proof %d verified for entry %d", i, (i+1)%len(rows))
		}
	}

	// Consistency between every stored checkpoint and the latest.
	cps, err := l.db.AuditCheckpoints(ctx, -1, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(cps) < 2 {
		t.Fatalf("want checkpoints at 4 and 7, got %d", len(cps))
	}
	for _, cp := range cps {
		cons, err := l.ConsistencyProof(ctx, cp.Size, size)
		if err != nil {
			t.Fatal(err)
		}
		if err := audit.VerifyConsistency(cp.Note, cpNote, cons, l.verifier); err != nil {
			t.Fatalf("consistency %d..%d: %v", cp.Size, size, err)
		}
	}
	if err := l.stop(); err != nil {
		t.Fatal(err)
	}
	rep := verifyDir(t, dir)
	if !rep.OK() || rep.Entries != uint64(len(records)) || rep.Signed != uint64(len(records)) {
		t.Fatalf("verify = %+v", rep)
	}
}

func TestAppendRejectsBadInput(t *testing.T) {
	ctx := context.Background()
	l := startLog(t, t.TempDir(), audit.Options{})
	for _, tc := range []struct {
		kind   string
		record any
		want   string
	}{
		{"", "x", "empty entry kind"},
		{"Decision", "x", "only a-z"},
		{`de"cision`, "x", "only a-z"},
		{strings.Repeat("k", 65), "x", "longer than"},
		{"decision", math.NaN(), "not a JSON number"},
		{"decision", make(chan int), "unsupported type"},
	} {
		_, err := l.Append(ctx, tc.kind, tc.record)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Append(%q, %v) error = %v, want it to mention %q", tc.kind, tc.record, err, tc.want)
		}
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := l.Append(cancelled, "decision", "x"); !errors.Is(err, context.Canceled) {
		t.Errorf("Append with a cancelled context = %v, want context.Canceled", err)
	}
	if l.Size() != 0 {
		t.Fatalf("rejected appends changed the log: size %d", l.Size())
	}
	if idx, err := l.Append(ctx, "decision", "ok"); err != nil || idx != 0 {
		t.Fatalf("first good append = %d, %v; want index 0", idx, err)
	}
}

func TestConcurrentAppendsAreContiguous(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l := startLog(t, dir, audit.Options{CheckpointEvery: 100, MaxBatch: 64})
	const workers, each = 50, 40
	type ack struct {
		worker, seq int
		index       uint64
	}
	acks := make(chan ack, workers*each)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for s := range each {
				idx, err := l.Append(ctx, "decision", map[string]int{"worker": w, "seq": s})
				if err != nil {
					t.Errorf("worker %d seq %d: %v", w, s, err)
					return
				}
				acks <- ack{w, s, idx}
			}
		})
	}
	wg.Wait()
	close(acks)

	seen := make(map[uint64]ack)
	for a := range acks {
		if prev, dup := seen[a.index]; dup {
			t.Fatalf("index %d given to both %+v and %+v", a.index, prev, a)
		}
		seen[a.index] = a
	}
	if len(seen) != workers*each || l.Size() != workers*each {
		t.Fatalf("%d acknowledged indices, size %d; want %d", len(seen), l.Size(), workers*each)
	}
	entries, err := l.Entries(ctx, -1, workers*each)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range entries {
		a, ok := seen[uint64(i)]
		if !ok {
			t.Fatalf("index %d was never acknowledged", i)
		}
		var rec struct{ Worker, Seq int }
		if err := json.Unmarshal(e.Record, &rec); err != nil {
			t.Fatal(err)
		}
		if rec.Worker != a.worker || rec.Seq != a.seq {
			t.Fatalf("index %d holds %+v but was acknowledged to %+v", i, rec, a)
		}
	}
	if err := l.stop(); err != nil {
		t.Fatal(err)
	}
	if rep := verifyDir(t, dir); !rep.OK() || rep.Entries != workers*each || rep.Signed != workers*each {
		t.Fatalf("verify = %+v", rep)
	}
}

// faultyStore is the real SQLite store with a switch that makes its entry
// writes fail: before writing (a full disk) or after committing (an error
// whose write nonetheless reached the disk).
type faultyStore struct {
	*sqlite.DB
	mu    sync.Mutex
	fault string // "", "before" or "after"
	// hold, when not nil, keeps AuditAppend from returning, once it has
	// committed, until it is closed.
	hold chan struct{}
}

var errInjected = errors.New("injected store failure")

func (s *faultyStore) set(f string) {
	s.mu.Lock()
	s.fault = f
	s.mu.Unlock()
}

func (s *faultyStore) AuditAppend(ctx context.Context, rows []audit.Row, nodes []audit.Node) error {
	s.mu.Lock()
	f, hold := s.fault, s.hold
	s.mu.Unlock()
	if f == "before" {
		return errInjected
	}
	if err := s.DB.AuditAppend(ctx, rows, nodes); err != nil {
		return err
	}
	if hold != nil {
		<-hold
	}
	if f == "after" {
		return errInjected
	}
	return nil
}

// batchingStore records the size of every batch written, and can hold the
// next write until released.
type batchingStore struct {
	*sqlite.DB
	mu      sync.Mutex
	sizes   []int
	hold    chan struct{}
	holding chan struct{} // closed when a held write has started
}

func (s *batchingStore) AuditAppend(ctx context.Context, rows []audit.Row, nodes []audit.Node) error {
	s.mu.Lock()
	s.sizes = append(s.sizes, len(rows))
	hold, holding := s.hold, s.holding
	s.hold = nil
	s.mu.Unlock()
	if hold != nil {
		close(holding)
		<-hold
	}
	return s.DB.AuditAppend(ctx, rows, nodes)
}

func (s *batchingStore) batches() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.sizes)
}

// Once appends have been seen to run concurrently, the writer holds a batch
// open until as many have joined as last time, rather than committing the
// first arrival on its own: one transaction for the round instead of many.
func TestConcurrentAppendersShareOneBatch(t *testing.T) {
	ctx := context.Background()
	const n = 8
	st := &batchingStore{hold: make(chan struct{}), holding: make(chan struct{})}
	l := startWrapped(t, t.TempDir(), audit.Options{CheckpointEvery: 1000, CommitDelay: time.Minute}, func(db *sqlite.DB) audit.Store { st.DB = db; return st })
	hold := st.hold

	// Round one: the first append's write is held while the others queue,
	// so they form one batch of n-1 behind it.
	var wg sync.WaitGroup
	wg.Go(func() {
		if _, err := l.Append(ctx, "decision", "first"); err != nil {
			t.Error(err)
		}
	})
	<-st.holding
	for i := range n - 1 {
		wg.Go(func() {
			if _, err := l.Append(ctx, "decision", i); err != nil {
				t.Error(err)
			}
		})
	}
	for l.QueueLen() < n-1 {
		runtime.Gosched()
	}
	close(hold)
	wg.Wait()

	// Round two: n-1 appenders start at once; however they are scheduled,
	// they are written together.
	for i := range n - 1 {
		wg.Go(func() {
			if _, err := l.Append(ctx, "decision", map[string]int{"round": 2, "i": i}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	got := st.batches()
	if want := []int{1, n - 1, n - 1}; !slices.Equal(got, want) {
		t.Fatalf("batch sizes = %v, want %v", got, want)
	}
}

// An append is answered, and counted in the tree, only once the store's
// commit of its batch has returned: not when the rows are merely in the
// store.
func TestAppendIsAnsweredOnlyOnceCommitted(t *testing.T) {
	ctx := context.Background()
	st := &faultyStore{hold: make(chan struct{})}
	l := startWrapped(t, t.TempDir(), audit.Options{CheckpointEvery: 1000}, func(db *sqlite.DB) audit.Store { st.DB = db; return st })
	got := make(chan error, 1)
	go func() {
		_, err := l.Append(ctx, "decision", "waits for the disk")
		got <- err
	}()
	// The entry is in the store but the commit has not returned: nothing
	// may answer the appender or count it in the tree.
	for {
		n, err := st.AuditSize(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n == 1 {
			break
		}
		runtime.Gosched()
	}
	select {
	case err := <-got:
		t.Fatalf("append answered (%v) before its commit returned", err)
	default:
	}
	if l.Size() != 0 {
		t.Fatalf("size = %d before the commit returned; want 0", l.Size())
	}
	close(st.hold)
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	if l.Size() != 1 {
		t.Fatalf("size = %d after the commit returned; want 1", l.Size())
	}
}

func TestFailingStoreFailsTheWholeBatch(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st := &faultyStore{}
	l := startWrapped(t, dir, audit.Options{CheckpointEvery: 1000}, func(db *sqlite.DB) audit.Store { st.DB = db; return st })
	for i := range 5 {
		if _, err := l.Append(ctx, "decision", i); err != nil {
			t.Fatal(err)
		}
	}

	st.set("before")
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			idx, err := l.Append(ctx, "decision", map[string]int{"doomed": i})
			if !errors.Is(err, errInjected) {
				t.Errorf("append during store failure = %d, %v; want the store's error", idx, err)
			}
		})
	}
	wg.Wait()
	if l.Size() != 5 {
		t.Fatalf("size = %d after failed writes, want 5", l.Size())
	}
	if _, err := l.Prove(ctx, 4); err != nil {
		t.Fatalf("the log is not usable after a failed write: %v", err)
	}

	// A write that fails after reaching the disk: the caller is told it
	// failed (and denies), the log resynchronises and carries on after it
	// (index 5 is the ambiguous write).
	failOnceThenRecover(t, l, st, "after", 6)
	if err := l.stop(); err != nil {
		t.Fatal(err)
	}
	rep := verifyDir(t, dir)
	if !rep.OK() || rep.Entries != 7 {
		t.Fatalf("verify = %+v, want 7 intact entries", rep)
	}
}

func TestRestartContinuesTheTree(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l := startLog(t, dir, audit.Options{})
	for i := range 7 {
		if _, err := l.Append(ctx, "decision", i); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.stop(); err != nil {
		t.Fatal(err)
	}
	// Append after shutdown is refused, not lost silently.
	if _, err := l.Append(ctx, "decision", "late"); !errors.Is(err, audit.ErrClosed) {
		t.Fatalf("append after Run returned: %v, want ErrClosed", err)
	}
	// Run wrote a final checkpoint covering everything.
	db, err := sqlite.OpenDir(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	first, ok, err := db.AuditLatestCheckpoint(ctx)
	db.Close()
	if err != nil || !ok || first.Size != 7 {
		t.Fatalf("final checkpoint = %+v, %v, %v; want size 7", first, ok, err)
	}

	l = startLog(t, dir, audit.Options{})
	if l.Size() != 7 {
		t.Fatalf("size after reopen = %d, want 7", l.Size())
	}
	for i := 7; i < 12; i++ {
		idx, err := l.Append(ctx, "decision", i)
		if err != nil || idx != uint64(i) {
			t.Fatalf("append after reopen = %d, %v; want %d", idx, err, i)
		}
	}
	latest, size, err := l.Checkpoint(ctx)
	if err != nil || size != 12 {
		t.Fatalf("checkpoint = %d, %v", size, err)
	}
	cons, err := l.ConsistencyProof(ctx, 7, 12)
	if err != nil {
		t.Fatal(err)
	}
	if err := audit.VerifyConsistency(first.Note, latest, cons, l.verifier); err != nil {
		t.Fatalf("the reopened log does not extend the old one: %v", err)
	}
	if err := l.stop(); err != nil {
		t.Fatal(err)
	}
	if rep := verifyDir(t, dir); !rep.OK() || rep.Entries != 12 {
		t.Fatalf("verify = %+v", rep)
	}
}

func TestCheckpointsEveryNEntries(t *testing.T) {
	ctx := context.Background()
	l := startLog(t, t.TempDir(), audit.Options{CheckpointEvery: 5, CheckpointInterval: time.Hour})
	// Sequential appends commit one per batch, so checkpoints fall exactly
	// on multiples of 5.
	for i := range 12 {
		if _, err := l.Append(ctx, "decision", i); err != nil {
			t.Fatal(err)
		}
	}
	cps, err := l.db.AuditCheckpoints(ctx, -1, 100)
	if err != nil {
		t.Fatal(err)
	}
	var sizes []uint64
	for _, c := range cps {
		sizes = append(sizes, c.Size)
		head, err := audit.OpenCheckpoint(c.Note, l.verifier)
		if err != nil {
			t.Fatal(err)
		}
		if head.Size != c.Size || head.Origin != "test.example/audit" {
			t.Fatalf("checkpoint %d signs %+v", c.Size, head)
		}
	}
	if len(sizes) != 2 || sizes[0] != 5 || sizes[1] != 10 {
		t.Fatalf("checkpoint sizes = %v, want [5 10]", sizes)
	}
}

func TestCheckpointsOnInterval(t *testing.T) {
	ctx := context.Background()
	l := startLog(t, t.TempDir(), audit.Options{CheckpointEvery: 1 << 20, CheckpointInterval: 5 * time.Millisecond})
	for i := range 3 {
		if _, err := l.Append(ctx, "decision", i); err != nil {
			t.Fatal(err)
		}
	}
	// No entry count triggers a checkpoint, so the only way one covering
	// all three appears is the timer. The test's deadline bounds the wait.
	for {
		cp, ok, err := l.db.AuditLatestCheckpoint(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if ok && cp.Size == 3 {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

func TestEmptyLogCheckpointAndVerify(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l := startLog(t, dir, audit.Options{})
	msg, size, err := l.Checkpoint(ctx)
	if err != nil || size != 0 {
		t.Fatalf("checkpoint of empty log = %d, %v", size, err)
	}
	if _, err := audit.OpenCheckpoint(msg, l.verifier); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Prove(ctx, 0); err == nil {
		t.Fatal("proved an entry of an empty log")
	}
	if err := l.stop(); err != nil {
		t.Fatal(err)
	}
	if rep := verifyDir(t, dir); !rep.OK() || rep.Checkpoints != 1 {
		t.Fatalf("verify = %+v", rep)
	}
}

func TestProofArgumentsAreChecked(t *testing.T) {
	ctx := context.Background()
	l := startLog(t, t.TempDir(), audit.Options{})
	for i := range 3 {
		if _, err := l.Append(ctx, "decision", i); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.InclusionProof(ctx, 3, 3); err == nil {
		t.Error("inclusion proof of index 3 in a tree of 3")
	}
	if _, err := l.InclusionProof(ctx, 0, 4); err == nil {
		t.Error("inclusion proof in a tree larger than the log")
	}
	if _, err := l.ConsistencyProof(ctx, 3, 2); err == nil {
		t.Error("consistency proof from a larger tree to a smaller")
	}
	if _, err := l.ConsistencyProof(ctx, 1, 4); err == nil {
		t.Error("consistency proof to a tree larger than the log")
	}
	if _, err := l.Entries(ctx, -2, 1); err == nil {
		t.Error("Entries after -2 accepted")
	}
}

func TestOpenRefusesAnotherKey(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l := startLog(t, dir, audit.Options{})
	if _, err := l.Append(ctx, "decision", 1); err != nil {
		t.Fatal(err)
	}
	if err := l.stop(); err != nil {
		t.Fatal(err)
	}
	db, err := sqlite.OpenDir(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// Another key of the same name: the stored checkpoints are not its.
	other, otherV, err := audit.LoadOrCreateKey(t.TempDir(), "test.example/audit")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := audit.Open(ctx, db, other, otherV, audit.Options{}); err == nil || !strings.Contains(err.Error(), "signature") {
		t.Fatalf("Open with another key: %v, want a signature error", err)
	}
	// A signer and a verifier that are not one pair.
	signer, _, err := audit.LoadOrCreateKey(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := audit.Open(ctx, db, signer, otherV, audit.Options{}); err == nil {
		t.Fatal("Open accepted a signer and verifier of different keys")
	}
}

func TestLoadOrCreateKey(t *testing.T) {
	dir := t.TempDir()
	s1, v1, err := audit.LoadOrCreateKey(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	if s1.Name() != audit.DefaultOrigin || v1.Name() != audit.DefaultOrigin {
		t.Fatalf("key named %q/%q, want %q", s1.Name(), v1.Name(), audit.DefaultOrigin)
	}
	for name, mode := range map[string]os.FileMode{audit.KeyFile: 0o600, audit.PubFile: 0o644} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s mode %v, want %v", name, fi.Mode().Perm(), mode)
		}
	}
	// Loading again gives the same key, and signatures verify across loads.
	s2, v2, err := audit.LoadOrCreateKey(dir, audit.DefaultOrigin)
	if err != nil {
		t.Fatal(err)
	}
	if s2.KeyHash() != s1.KeyHash() || v2.KeyHash() != v1.KeyHash() {
		t.Fatal("reloading produced a different key")
	}
	msg, err := note.Sign(&note.Note{Text: "hello\n"}, s1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := note.Open(msg, note.VerifierList(v2)); err != nil {
		t.Fatalf("reloaded verifier rejects the key's signature: %v", err)
	}
	if _, _, err := audit.LoadOrCreateKey(dir, "another-log"); err == nil {
		t.Fatal("loaded a key under another log's name")
	}

	// A lost public key is derived again from the private one.
	pub, _ := os.ReadFile(filepath.Join(dir, audit.PubFile))
	os.Remove(filepath.Join(dir, audit.PubFile))
	if _, _, err := audit.LoadOrCreateKey(dir, ""); err != nil {
		t.Fatal(err)
	}
	if again, _ := os.ReadFile(filepath.Join(dir, audit.PubFile)); !bytes.Equal(again, pub) {
		t.Fatalf("derived public key %q, want %q", again, pub)
	}
	// A public key that is not the private key's half is refused.
	os.WriteFile(filepath.Join(dir, audit.PubFile), []byte("x+00000000+AQ==\n"), 0o644)
	if _, _, err := audit.LoadOrCreateKey(dir, ""); err == nil {
		t.Fatal("accepted a mismatched public key")
	}

	// A published public key without its private key is never replaced.
	lonely := t.TempDir()
	os.WriteFile(filepath.Join(lonely, audit.PubFile), pub, 0o644)
	if _, _, err := audit.LoadOrCreateKey(lonely, ""); err == nil {
		t.Fatal("created a new key beside an existing public key")
	}
	if _, _, err := audit.LoadOrCreateKey(t.TempDir(), "bad name"); err == nil {
		t.Fatal("created a key with a space in its name")
	}
}

func TestCheckpointFormat(t *testing.T) {
	root := bytes.Repeat([]byte{7}, 32)
	body := audit.FormatCheckpoint(audit.TreeHead{Origin: "example.com/log", Size: 42, Root: root})
	want := "example.com/log\n42\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n"
	if string(body) != want {
		t.Fatalf("body = %q, want %q", body, want)
	}
	head, err := audit.ParseCheckpoint(body)
	if err != nil || head.Origin != "example.com/log" || head.Size != 42 || !bytes.Equal(head.Root, root) {
		t.Fatalf("parse = %+v, %v", head, err)
	}
	for _, bad := range []string{
		"",
		"example.com/log\n42\n",
		"example.com/log\n042\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n",
		"example.com/log\n-1\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n",
		"example.com/log\n42\nBwcH\n",
		"example.com/log\n42\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\nextra\n",
		"\n42\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n",
	} {
		if _, err := audit.ParseCheckpoint([]byte(bad)); err == nil {
			t.Errorf("ParseCheckpoint(%q) accepted", bad)
		}
	}
}

func TestDecodeEntryIsStrict(t *testing.T) {
	good := `{"index":3,"kind":"decision","record":{"a":1},"time":"2026-03-01T12:00:00.001Z"}`
	if e, err := audit.DecodeEntry([]byte(good)); err != nil || e.Index != 3 || e.Kind != "decision" {
		t.Fatalf("DecodeEntry(good) = %+v, %v", e, err)
	}
	for _, bad := range []string{
		`{"index":3,"kind":"decision","record":{"a":1},"time":"2026-03-01T12:00:00.001Z"`,            // truncated
		`{"kind":"decision","index":3,"record":{"a":1},"time":"2026-03-01T12:00:00.001Z"}`,           // key order
		`{"index":3,"kind":"decision","record":{"a":1}}`,                                             // no time
		`{"extra":1,"index":3,"kind":"decision","record":{"a":1},"time":"2026-03-01T12:00:00.001Z"}`, // unknown field
		`{"index":-3,"kind":"decision","record":{"a":1},"time":"2026-03-01T12:00:00.001Z"}`,
		`{"index":3.5,"kind":"decision","record":{"a":1},"time":"2026-03-01T12:00:00.001Z"}`,
		`{"index":3,"kind":"Decision","record":{"a":1},"time":"2026-03-01T12:00:00.001Z"}`,
		`{"index":3,"kind":"decision","record":{"a":1},"time":"2026-03-01T13:00:00.001+01:00"}`,
		`{"index":3,"kind":"decision","record":{"a":1},"time":"2026-03-01T12:00:00.0010Z"}`,
		`[1,2]`,
	} {
		if _, err := audit.DecodeEntry([]byte(bad)); err == nil {
			t.Errorf("DecodeEntry(%s) accepted", bad)
		}
	}
}

// How long a batch waits for company follows how the previous batch
// arrived: appends spread over time (many clients) get up to the whole
// CommitDelay; appends that came all at once (one client's pair) leave the
// next lone append a tenth of it.
func TestBatchingWaitFollowsHowThePreviousBatchArrived(t *testing.T) {
	const delay = time.Millisecond
	for _, c := range []struct{ spread, want time.Duration }{
		{0, delay / 10},
		{5 * time.Microsecond, delay / 10},
		{300 * time.Microsecond, 600 * time.Microsecond},
		{2 * time.Millisecond, delay},
	} {
		if got := audit.LingerFor(delay, c.spread); got != c.want {
			t.Errorf("after a batch that arrived over %v: wait %v, want %v", c.spread, got, c.want)
		}
	}
}
