package audit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/transparency-dev/merkle/compact"
	"golang.org/x/mod/sumdb/note"

	"github.com/agentgov/agentgov/jcs"
)

// ErrClosed is returned by Append once Run has returned.
var ErrClosed = errors.New("audit: log is closed")

const (
	defaultCheckpointEvery    = 1000
	defaultCheckpointInterval = time.Second
	defaultMaxBatch           = 256
	// DefaultCommitDelay is the longest a batch waits for company. A commit
	// has a fixed cost in CPU (statements, WAL frame headers, the sync)
	// whatever its size, so under load a millisecond of waiting buys
	// batches several times larger and leaves the CPU to deciding.
	DefaultCommitDelay = time.Millisecond
	// writeTimeout bounds one store write. Writes are detached from the
	// caller's context: an entry half-way into the log must not be abandoned
	// because one caller went away.
	writeTimeout = 30 * time.Second
)

// Options tune a Log. Zero values take the defaults.
type Options struct {
	// CheckpointEvery writes a checkpoint once this many entries are not yet
	// covered by one (default 1000).
	CheckpointEvery int
	// CheckpointInterval writes a checkpoint this often while entries are
	// not yet covered by one (default 1s).
	CheckpointInterval time.Duration
	// Clock stamps entries (default time.Now).
	Clock func() time.Time
	// MaxBatch caps how many appends share one transaction (default 256).
	MaxBatch int
	// CommitDelay is how long the writer may hold a batch open for more
	// appends when the previous batch showed concurrent appenders (it held
	// more than one entry); it commits as soon as the batch is as large as
	// the previous one. A lone appender never waits, and when the previous
	// batch arrived all at once the wait is shorter (see lingerFor). Zero
	// means DefaultCommitDelay; negative never waits.
	CommitDelay time.Duration
	// Logger receives errors that have no caller to return to, such as a
	// failed periodic checkpoint (default: discarded).
	Logger *slog.Logger
	// Observer is told of every batch committed and every append answered,
	// for metrics (default: none).
	Observer Observer
}

// Observer is told how the log's writer is doing. Its methods run on the
// writer's goroutine and must be cheap.
type Observer interface {
	// Committed is called for each batch written, with its size.
	Committed(entries int)
	// Appended is called for each append acknowledged, with the time from
	// Append to its acknowledgement: queueing, batching and the durable
	// write.
	Appended(took time.Duration)
}

func (o *Options) fill() error {
	if o.CheckpointEvery < 0 || o.CheckpointInterval < 0 || o.MaxBatch < 0 {
		return errors.New("audit: CheckpointEvery, CheckpointInterval and MaxBatch must not be negative")
	}
	if o.CheckpointEvery == 0 {
		o.CheckpointEvery = defaultCheckpointEvery
	}
	if o.CheckpointInterval == 0 {
		o.CheckpointInterval = defaultCheckpointInterval
	}
	if o.MaxBatch == 0 {
		o.MaxBatch = defaultMaxBatch
	}
	if o.CommitDelay == 0 {
		o.CommitDelay = DefaultCommitDelay
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Log is an open audit log. Appends from any number of goroutines are
// funnelled into one writer (Run), which commits them in batches: one
// transaction, and at most one sync to disk, per batch rather than per
// entry.
type Log struct {
	st       Store
	signer   note.Signer
	verifier note.Verifier
	opts     Options

	queue   chan *request
	running atomic.Bool
	done    chan struct{}

	size atomic.Uint64 // entries durably stored and acknowledged

	// waiting counts appends queued and not yet answered; progress is when
	// the writer last answered one (or when waiting last rose from zero),
	// in nanoseconds of monotonic time since epoch. Together they tell a
	// store that has stopped answering (Stalled) from one that is slow.
	waiting  atomic.Int64
	progress atomic.Int64

	// mu guards rng and latest. Only the writer (and load) changes rng.
	mu     sync.Mutex
	rng    *compact.Range // the tree over [0, size): what is durable
	latest Checkpoint     // newest stored checkpoint; Note is nil if none

	// stale is set after a failed store write, whose outcome is
	// unknown (a commit can fail after reaching the disk); the writer
	// reloads the tree from the store before its next batch. Writer-only.
	stale bool
}

type request struct {
	kind   string
	record []byte    // canonical JSON
	at     time.Time // when Append queued it (monotonic), for the batching wait
	res    chan result
}

type result struct {
	index uint64
	err   error
}

// Open loads the log's tree from st. It refuses a store whose latest
// checkpoint does not verify or does not match the stored tree: appending to
// a log that was tampered with would bury the evidence.
func Open(ctx context.Context, st Store, signer note.Signer, verifier note.Verifier, opts Options) (*Log, error) {
	if err := opts.fill(); err != nil {
		return nil, err
	}
	if signer == nil || verifier == nil {
		return nil, errors.New("audit: open: a signer and a verifier are required")
	}
	if signer.Name() != verifier.Name() || signer.KeyHash() != verifier.KeyHash() {
		return nil, fmt.Errorf("audit: open: signer %s and verifier %s are not one key pair", signer.Name(), verifier.Name())
	}
	l := &Log{
		st:       st,
		signer:   signer,
		verifier: verifier,
		opts:     opts,
		queue:    make(chan *request, opts.MaxBatch),
		done:     make(chan struct{}),
	}
	if err := l.load(ctx); err != nil {
		return nil, fmt.Errorf("audit: open: %w", err)
	}
	cp, ok, err := st.AuditLatestCheckpoint(ctx)
	if err != nil {
		return nil, fmt.Errorf("audit: open: %w", err)
	}
	if ok {
		if err := checkLatest(ctx, st, verifier, cp, l.size.Load()); err != nil {
			return nil, fmt.Errorf("audit: open: %w (run agentgov audit verify)", err)
		}
		l.latest = cp
	}
	return l, nil
}

// load reads the stored tree size and the O(log n) hashes of its compact
// range.
func (l *Log) load(ctx context.Context) error {
	size, err := l.st.AuditSize(ctx)
	if err != nil {
		return err
	}
	rng, err := rangeAt(ctx, l.st, size)
	if err != nil {
		return err
	}
	l.mu.Lock()
	l.rng = rng
	l.size.Store(size)
	l.mu.Unlock()
	return nil
}

// rangeAt rebuilds the compact range of the first size leaves from stored
// nodes.
func rangeAt(ctx context.Context, st Store, size uint64) (*compact.Range, error) {
	ids := compact.RangeNodes(0, size, nil)
	hashes, err := st.AuditNodes(ctx, ids)
	if err != nil {
		return nil, err
	}
	for i, h := range hashes {
		if h == nil {
			return nil, fmt.Errorf("tree node (level %d, index %d) of size %d is missing", ids[i].Level, ids[i].Index, size)
		}
	}
	return factory.NewRange(0, size, hashes)
}

// rootOf is the root hash of a range starting at 0; RFC 6962 defines the
// empty tree's root as the hash of nothing.
func rootOf(r *compact.Range) ([]byte, error) {
	if r.End() == 0 {
		return hasher.EmptyRoot(), nil
	}
	return r.GetRootHash(nil)
}

// checkLatest confirms that a checkpoint is signed by the log's key and that
// the stored tree has its root at its size.
func checkLatest(ctx context.Context, st Store, verifier note.Verifier, cp Checkpoint, size uint64) error {
	head, err := OpenCheckpoint(cp.Note, verifier)
	if err != nil {
		return fmt.Errorf("latest checkpoint (size %d): %w", cp.Size, err)
	}
	if head.Size != cp.Size {
		return fmt.Errorf("latest checkpoint is stored as size %d but signs size %d", cp.Size, head.Size)
	}
	if head.Size > size {
		return fmt.Errorf("latest checkpoint covers %d entries but the log holds %d: entries were lost or deleted", head.Size, size)
	}
	rng, err := rangeAt(ctx, st, head.Size)
	if err != nil {
		return err
	}
	root, err := rootOf(rng)
	if err != nil {
		return err
	}
	if string(root) != string(head.Root) {
		return fmt.Errorf("stored tree of size %d does not have the root signed by the latest checkpoint", head.Size)
	}
	return nil
}

// Size is the number of acknowledged entries.
func (l *Log) Size() uint64 { return l.size.Load() }

// Verifier is the key that verifies this log's checkpoints.
func (l *Log) Verifier() note.Verifier { return l.verifier }

// Append records one entry and returns its index once it is durable. record
// is stored as its canonical JSON. An error means the entry is not in the log
// and the caller must act as if the event it describes did not happen
// (deny). ctx only bounds the wait to be queued: once the writer has taken
// the entry, Append waits for the outcome, so that an entry that reached the
// log is never reported as missing.
func (l *Log) Append(ctx context.Context, kind string, record any) (uint64, error) {
	if err := checkKind(kind); err != nil {
		return 0, err
	}
	rec, err := jcs.Marshal(record)
	if err != nil {
		return 0, fmt.Errorf("audit: append %s: %w", kind, err)
	}
	if err := ctx.Err(); err != nil {
		// select picks at random among ready cases; a caller that has
		// already given up must not have its entry written.
		return 0, fmt.Errorf("audit: append %s: %w", kind, err)
	}
	r := &request{kind: kind, record: rec, at: time.Now(), res: make(chan result, 1)}
	if l.waiting.Add(1) == 1 {
		l.progress.Store(l.since(r.at))
	}
	defer l.waiting.Add(-1)
	select {
	case l.queue <- r:
	case <-l.done:
		return 0, ErrClosed
	case <-ctx.Done():
		return 0, fmt.Errorf("audit: append %s: %w", kind, ctx.Err())
	}
	select {
	case res := <-r.res:
		return res.index, res.err
	case <-l.done:
		// The writer answers everything it took before it closes done.
		select {
		case res := <-r.res:
			return res.index, res.err
		default:
			return 0, ErrClosed
		}
	}
}

// Run is the log's single writer. It commits queued appends in batches and
// writes checkpoints every CheckpointEvery entries or CheckpointInterval.
// When ctx ends it commits what is already queued, writes a final
// checkpoint, and returns; later Appends fail with ErrClosed.
func (l *Log) Run(ctx context.Context) error {
	if !l.running.CompareAndSwap(false, true) {
		return errors.New("audit: Run called twice")
	}
	defer close(l.done)
	if size, signed := l.Size(), l.latestSize(); size > signed {
		// The previous run ended without its final checkpoint (killed), or
		// checkpoints were deleted: sign what is there now rather than
		// leave it open to rewriting for another interval. Verify reports
		// an unsigned tail as untrusted until then.
		l.opts.Logger.Warn("audit entries found unsigned at start; signing them", "from", signed, "to", size-1)
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), writeTimeout)
		if _, _, err := l.checkpoint(wctx); err != nil {
			l.opts.Logger.Error("audit checkpoint failed", "err", err)
		}
		cancel()
	}
	tick := time.NewTicker(l.opts.CheckpointInterval)
	defer tick.Stop()
	batch := make([]*request, 0, l.opts.MaxBatch)
	last := 0                // size of the previous batch: how many appenders run at once
	var spread time.Duration // how long the previous batch took to arrive
	var linger *time.Timer
	for {
		select {
		case <-ctx.Done():
			for {
				batch = l.fill(batch[:0])
				if len(batch) == 0 {
					break
				}
				l.commit(ctx, batch)
			}
			wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), writeTimeout)
			defer cancel()
			if _, _, err := l.checkpoint(wctx); err != nil {
				return fmt.Errorf("audit: final checkpoint: %w", err)
			}
			return nil
		case r := <-l.queue:
			batch = l.fill(append(batch[:0], r))
			if last > 1 && len(batch) < last && l.opts.CommitDelay > 0 {
				wait := l.lingerFor(spread)
				if linger == nil {
					linger = time.NewTimer(wait)
				} else {
					linger.Reset(wait)
				}
				batch = l.gather(ctx, batch, last, linger.C)
				linger.Stop()
			}
			l.commit(ctx, batch)
			last, spread = len(batch), arrivalSpread(batch)
		case <-tick.C:
			if l.Size() > l.latestSize() {
				wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), writeTimeout)
				if _, _, err := l.checkpoint(wctx); err != nil {
					l.opts.Logger.Error("audit checkpoint failed", "err", err)
				}
				cancel()
			}
		}
	}
}

// lingerFor is how long a batch may wait for company, given how long the
// previous batch took to arrive: twice that, at least a tenth of
// CommitDelay and at most all of it. Appenders that keep many requests in
// flight spread their arrivals over hundreds of µs and get the whole wait;
// two appends made side by side by one client (a record and its outcome)
// arrive within µs of each other, and the client's next lone append then
// waits a tenth of the delay, not all of it, for company that is not
// coming.
func (l *Log) lingerFor(spread time.Duration) time.Duration {
	return min(l.opts.CommitDelay, max(2*spread, l.opts.CommitDelay/10))
}

// arrivalSpread is the time between the first and the last append of a
// batch to be queued.
func arrivalSpread(batch []*request) time.Duration {
	first, last := batch[0].at, batch[0].at
	for _, r := range batch[1:] {
		if r.at.Before(first) {
			first = r.at
		}
		if r.at.After(last) {
			last = r.at
		}
	}
	return last.Sub(first)
}

// fill adds whatever is already queued, up to MaxBatch, without waiting:
// entries that arrive while a batch commits form the next batch, so batches
// grow with load and a lone append is never delayed.
func (l *Log) fill(batch []*request) []*request {
	for len(batch) < l.opts.MaxBatch {
		select {
		case r := <-l.queue:
			batch = append(batch, r)
		default:
			return batch
		}
	}
	return batch
}

// gather waits for appends to join batch until it holds want entries, the
// timer fires, or ctx ends.
func (l *Log) gather(ctx context.Context, batch []*request, want int, timer <-chan time.Time) []*request {
	for len(batch) < want {
		select {
		case r := <-l.queue:
			batch = append(batch, r)
		case <-timer:
			return l.fill(batch)
		case <-ctx.Done():
			return batch
		}
	}
	return batch
}

// commit writes one batch in one transaction, durable once the store's
// AuditAppend has returned, then publishes the tree and answers every
// request in it. On failure every request gets the error and the tree does
// not move.
func (l *Log) commit(ctx context.Context, batch []*request) {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), writeTimeout)
	defer cancel()
	fail := func(err error) {
		l.progress.Store(l.since(time.Now()))
		for _, r := range batch {
			r.res <- result{err: fmt.Errorf("audit: append %s: %w", r.kind, err)}
		}
	}
	if l.stale {
		if err := l.load(wctx); err != nil {
			fail(fmt.Errorf("reload after failed write: %w", err))
			return
		}
		l.stale = false
	}
	if l.Size()-l.latestSize() >= uint64(l.opts.CheckpointEvery) {
		if _, _, err := l.checkpoint(wctx); err != nil {
			l.opts.Logger.Error("audit checkpoint failed", "err", err)
		}
	}
	base := l.rng.End()
	rng, err := factory.NewRange(0, base, slices.Clone(l.rng.Hashes()))
	if err != nil {
		fail(err)
		return
	}
	rows := make([]Row, len(batch))
	nodes := make([]Node, 0, 2*len(batch)+1)
	visit := func(id compact.NodeID, hash []byte) { nodes = append(nodes, Node{ID: id, Hash: hash}) }
	for i, r := range batch {
		idx := base + uint64(i)
		rows[i] = Row{Index: idx, Data: envelope(idx, r.kind, r.record, l.opts.Clock())}
		if err := rng.Append(LeafHash(rows[i].Data), visit); err != nil {
			fail(err)
			return
		}
	}
	if err := l.st.AuditAppend(wctx, rows, nodes); err != nil {
		l.stale = true
		fail(err)
		return
	}
	o := l.opts.Observer
	if o != nil {
		o.Committed(len(batch))
	}
	l.mu.Lock()
	l.rng = rng
	l.size.Store(rng.End())
	l.mu.Unlock()
	l.progress.Store(l.since(time.Now()))
	for i, r := range batch {
		r.res <- result{index: base + uint64(i)}
		if o != nil {
			o.Appended(time.Since(r.at))
		}
	}
}

// epoch is the origin of progress: a monotonic reading, so that a step of
// the wall clock neither hides a stall nor makes one up.
var epoch = time.Now()

func (l *Log) since(t time.Time) int64 { return int64(t.Sub(epoch)) }

// Stalled is how long appends have been waiting at now with none of them
// answered, or 0 when none waits. A store that takes connections but does
// not commit (a database whose tables are locked, or whose synchronous
// standby is gone) shows here first: every append waits up to the write
// timeout, while a ping of the store still succeeds.
func (l *Log) Stalled(now time.Time) time.Duration {
	if l.waiting.Load() == 0 {
		return 0
	}
	return max(0, time.Duration(l.since(now)-l.progress.Load()))
}

func (l *Log) latestSize() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.latest.Note == nil {
		return 0
	}
	return l.latest.Size
}

// checkpoint signs and stores the current tree head unless the latest
// checkpoint already covers it.
func (l *Log) checkpoint(ctx context.Context) ([]byte, uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	size := l.rng.End()
	if l.latest.Note != nil && l.latest.Size == size {
		return l.latest.Note, size, nil
	}
	root, err := rootOf(l.rng)
	if err != nil {
		return nil, 0, err
	}
	msg, err := signCheckpoint(TreeHead{Origin: l.signer.Name(), Size: size, Root: root}, l.signer)
	if err != nil {
		return nil, 0, err
	}
	cp := Checkpoint{Size: size, Note: msg}
	if err := l.st.AuditPutCheckpoint(ctx, cp); err != nil {
		return nil, 0, fmt.Errorf("store checkpoint: %w", err)
	}
	l.latest = cp
	return msg, size, nil
}

// Checkpoint returns the latest signed checkpoint and the tree size it
// covers, first writing one if none covers every acknowledged entry.
func (l *Log) Checkpoint(ctx context.Context) (note []byte, size uint64, err error) {
	msg, size, err := l.checkpoint(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("audit: checkpoint: %w", err)
	}
	return msg, size, nil
}

// Entries returns up to limit entries with an index above after (-1 for the
// start of the log), in order.
func (l *Log) Entries(ctx context.Context, after int64, limit int) ([]Entry, error) {
	return Entries(ctx, l.st, after, limit)
}

// MaxEntriesPage caps one page of Entries.
const MaxEntriesPage = 1000

// Entries reads a page of a stored log without opening it for writing.
func Entries(ctx context.Context, st Store, after int64, limit int) ([]Entry, error) {
	if after < -1 {
		return nil, fmt.Errorf("audit: entries after %d: must be -1 or an index", after)
	}
	if limit <= 0 || limit > MaxEntriesPage {
		limit = MaxEntriesPage
	}
	rows, err := st.AuditRows(ctx, after, limit)
	if err != nil {
		return nil, fmt.Errorf("audit: entries: %w", err)
	}
	out := make([]Entry, len(rows))
	for i, r := range rows {
		e, err := DecodeEntry(r.Data)
		if err != nil {
			return nil, fmt.Errorf("audit: entry %d: %w", r.Index, err)
		}
		if e.Index != r.Index {
			return nil, fmt.Errorf("audit: entry %d: its index field says %d", r.Index, e.Index)
		}
		out[i] = e
	}
	return out, nil
}
