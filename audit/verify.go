package audit

import (
	"bytes"
	"context"
	"fmt"

	"github.com/transparency-dev/merkle/compact"
	"golang.org/x/mod/sumdb/note"
)

// Report is the outcome of Verify.
type Report struct {
	// Origin is the log's name (its key's).
	Origin string
	// Entries is the number of entries checked.
	Entries uint64
	// Checkpoints is the number of signed checkpoints that verified.
	Checkpoints int
	// Signed is the tree size covered by the last checkpoint (or head)
	// that verified: no entry from Signed on is vouched for by a signature.
	Signed uint64
	// Unsigned is how many entries from Signed on passed every check but
	// are covered by no checkpoint that verified: anyone able to write the
	// store could have written them. It is nonzero only when that is all
	// that is wrong, and then FirstBad is Signed.
	Unsigned uint64
	// Head is the tree head of VerifyOptions.Head once the entries before
	// it matched its signed root; nil without one, or if they did not.
	Head *TreeHead
	// FirstBad is the first index that cannot be trusted, -1 if none.
	FirstBad int64
	// Reason says what is wrong at FirstBad.
	Reason string
}

// VerifyOptions are what Verify is told beyond the store and the key.
type VerifyOptions struct {
	// Head is a signed checkpoint note kept away from the store (the note
	// text of GET /v1/audit/checkpoint, saved elsewhere): the log must
	// hold at least its entries and have its root at its size. Stored
	// checkpoints can be deleted with the entries they cover; a head kept
	// elsewhere cannot.
	Head []byte
}

// OK reports whether the log verified.
func (r Report) OK() bool { return r.FirstBad < 0 }

// verifyPage is how many rows Verify reads at a time.
const verifyPage = 1000

// Verify recomputes the whole log from its stored bytes: each entry must be
// the canonical envelope of its own position, indices must be contiguous,
// the stored tree (which proofs are served from) must match the entries,
// every stored checkpoint must be signed by verifier over the root the
// entries give at its size, and every entry must be covered by one of them
// (or by opts.Head): an entry no signature covers could have been written
// by anyone. It names the first index that fails and why. An error means
// the store could not be read, not that the log is bad.
func Verify(ctx context.Context, st Store, verifier note.Verifier, opts VerifyOptions) (Report, error) {
	v := &verification{st: st, key: verifier, rng: factory.NewEmptyRange(0)}
	v.rep = Report{Origin: verifier.Name(), FirstBad: -1}
	if opts.Head != nil {
		head, err := OpenCheckpoint(opts.Head, verifier)
		if err != nil {
			// Not this log's head, or the key is not the one that signed
			// it: a verifier key replaced beside the log looks like this.
			v.fail(problem{0, 0, rankCheckpoint, fmt.Sprintf("the head given: %v", err)})
			return v.rep, nil
		}
		v.head = &head
	}
	if err := v.run(ctx); err != nil {
		return Report{}, fmt.Errorf("audit: verify: %w", err)
	}
	if v.headOK {
		v.rep.Head = v.head
	}
	if v.rep.OK() && v.rep.Signed < v.rep.Entries {
		v.rep.Unsigned = v.rep.Entries - v.rep.Signed
		v.rep.FirstBad = int64(v.rep.Signed)
		v.rep.Reason = fmt.Sprintf("not signed: entries %d..%d passed every check, but no signed checkpoint covers them, so nothing shows that they were not rewritten",
			v.rep.Signed, v.rep.Entries-1)
	}
	return v.rep, nil
}

type verification struct {
	st  Store
	key note.Verifier
	rng *compact.Range
	rep Report

	good    []uint64     // sizes of the checkpoints that verified, in order
	head    *TreeHead    // the head given, once its signature verified
	headOK  bool         // the entries matched the head
	headNew bool         // and it vouched for more than the stored checkpoints
	cps     []Checkpoint // a page of checkpoints not yet checked
	cpAfter int64        // size of the last checkpoint read
	cpDone  bool         // no more checkpoints in the store
}

// problem is one failure. at is the entry whose check exposed it: every
// entry before at passed every check, so the earliest exposure is the first
// failure, and the nodes above a changed leaf, which fail at later entries,
// are consequences rather than causes. rank orders failures exposed by the
// same entry. index is what the report names: the entry itself, or for a
// bad node or checkpoint the first entry no longer vouched for.
type problem struct {
	index  uint64
	at     uint64
	rank   int
	reason string
}

const (
	rankCheckpoint = iota // checked before the entry at its size
	rankRow
	rankLeaf
	rankNode
)

func (v *verification) run(ctx context.Context) error {
	v.cpAfter = -1
	after := int64(-1)
	for {
		rows, err := v.st.AuditRows(ctx, after, verifyPage)
		if err != nil {
			return err
		}
		if len(rows) == 0 {
			break
		}
		p, err := v.page(ctx, rows)
		if err != nil {
			return err
		}
		if p != nil {
			v.fail(*p)
			return nil
		}
		after = int64(rows[len(rows)-1].Index)
	}
	// Checkpoints of the whole log, then any that claim more than is stored.
	size := v.rng.End()
	p, err := v.checkpointsAt(ctx, size)
	if err != nil || p != nil {
		if p != nil {
			v.fail(*p)
		}
		return err
	}
	if v.head != nil && v.head.Size > size {
		v.fail(problem{size, size, rankRow, fmt.Sprintf("truncated: the log ends at %d entries but the head given covers %d: entries %d..%d were deleted",
			size, v.head.Size, size, v.head.Size-1)})
		return nil
	}
	cp, ok, err := v.peekCheckpoint(ctx)
	if err != nil {
		return err
	}
	if ok {
		if head, err := OpenCheckpoint(cp.Note, v.key); err != nil || head.Size != cp.Size {
			// The row's size was edited: its note signs another size.
			v.fail(problem{v.rep.Signed, size, rankCheckpoint, fmt.Sprintf("checkpoint stored for tree size %d does not sign that size: the stored checkpoints were edited", cp.Size)})
			return nil
		}
		v.fail(problem{size, size, rankRow, fmt.Sprintf("truncated: the log ends at %d entries but a checkpoint covers %d", size, cp.Size)})
		return nil
	}
	// Entries and their tree nodes are written in one transaction, so the
	// leaf hash of an entry past the end means entries were deleted from
	// the end (with the checkpoints that covered them).
	leaf, err := v.st.AuditNodes(ctx, []compact.NodeID{compact.NewNodeID(0, size)})
	if err != nil {
		return err
	}
	if leaf[0] != nil {
		v.fail(problem{size, size, rankRow, fmt.Sprintf("truncated: the log ends at %d entries but the leaf hash of entry %d is stored: entries from %d on were deleted", size, size, size)})
	}
	return nil
}

// fail records the first failure. A page is checked ahead of its node
// comparison, so the counts are cut back to what was checked before the
// entry that exposed the failure.
func (v *verification) fail(p problem) {
	v.rep.FirstBad = int64(p.index)
	v.rep.Reason = p.reason
	v.rep.Entries = min(v.rep.Entries, p.at)
	for len(v.good) > 0 && v.good[len(v.good)-1] > p.at {
		v.good = v.good[:len(v.good)-1]
	}
	v.rep.Checkpoints = len(v.good)
	if v.headOK && v.head.Size > p.at {
		v.headOK, v.headNew = false, false
	}
	if v.headNew {
		v.rep.Checkpoints-- // the head is not a stored checkpoint
	}
	v.rep.Signed = 0
	if len(v.good) > 0 {
		v.rep.Signed = v.good[len(v.good)-1]
	}
}

// page checks one page of rows. Row and checkpoint checks run in order and
// stop at the first failure; the stored tree nodes of the rows checked are
// then fetched in one query and compared. Of all failures found, the one
// exposed by the earliest entry is the page's.
func (v *verification) page(ctx context.Context, rows []Row) (*problem, error) {
	type computed struct {
		row    uint64 // index of the entry whose append produced the node
		signed uint64 // tree size vouched for by a checkpoint at that point
		node   Node
	}
	var nodes []computed
	var found []problem
	for _, row := range rows {
		next := v.rng.End()
		p, err := v.checkpointsAt(ctx, next)
		if err != nil {
			return nil, err
		}
		if p != nil {
			found = append(found, *p)
			break
		}
		if p := checkRow(next, row); p != nil {
			found = append(found, *p)
			break
		}
		signed := v.rep.Signed
		visit := func(id compact.NodeID, hash []byte) {
			nodes = append(nodes, computed{next, signed, Node{ID: id, Hash: hash}})
		}
		if err := v.rng.Append(LeafHash(row.Data), visit); err != nil {
			return nil, err
		}
		v.rep.Entries++
	}
	ids := make([]compact.NodeID, len(nodes))
	for i, n := range nodes {
		ids[i] = n.node.ID
	}
	stored, err := v.st.AuditNodes(ctx, ids)
	if err != nil {
		return nil, err
	}
	for i, n := range nodes {
		if bytes.Equal(stored[i], n.node.Hash) {
			continue
		}
		id := n.node.ID
		what := "does not match the entries"
		if stored[i] == nil {
			what = "is missing"
		}
		if id.Level == 0 {
			found = append(found, problem{n.row, n.row, rankLeaf, fmt.Sprintf("stored leaf hash %s: the entry bytes were changed", what)})
			continue
		}
		// The entries under the node each match their stored leaf hash, so
		// either one of them and its leaf hash were both rewritten, or the
		// node was; the first entry not already vouched for by a good
		// checkpoint is where trust ends.
		lo, hi := id.Coverage()
		found = append(found, problem{max(lo, n.signed), n.row, rankNode, fmt.Sprintf(
			"stored tree node (level %d, index %d) over entries %d..%d %s: an entry and its leaf hash, or the node, were rewritten",
			id.Level, id.Index, lo, hi-1, what)})
	}
	if len(found) == 0 {
		return nil, nil
	}
	first := found[0]
	for _, p := range found[1:] {
		if p.at < first.at || p.at == first.at && p.rank < first.rank {
			first = p
		}
	}
	return &first, nil
}

// checkRow checks that the row stored for position next is there and is the
// canonical entry envelope of that position.
func checkRow(next uint64, row Row) *problem {
	if row.Index != next {
		return &problem{next, next, rankRow, fmt.Sprintf("missing: the next stored entry is %d", row.Index)}
	}
	e, err := DecodeEntry(row.Data)
	if err != nil {
		return &problem{next, next, rankRow, fmt.Sprintf("entry is not valid: %v", err)}
	}
	if e.Index != next {
		return &problem{next, next, rankRow, fmt.Sprintf("entry's own index field is %d: entries were moved or swapped", e.Index)}
	}
	return nil
}

// checkpointsAt checks every stored checkpoint for a tree of exactly size
// entries, which are the entries verified so far. A bad checkpoint is
// reported at the first index it should newly vouch for (the size of the
// last good checkpoint): entries before that are covered by a good
// signature, entries from it on are not.
func (v *verification) checkpointsAt(ctx context.Context, size uint64) (*problem, error) {
	for {
		cp, ok, err := v.peekCheckpoint(ctx)
		if err != nil {
			return nil, err
		}
		if !ok || cp.Size > size {
			return v.headAt(size)
		}
		v.cps = v.cps[1:]
		bad := func(format string, args ...any) (*problem, error) {
			r := fmt.Sprintf("checkpoint for tree size %d: ", cp.Size) + fmt.Sprintf(format, args...)
			return &problem{v.rep.Signed, size, rankCheckpoint, r}, nil
		}
		if cp.Size < size {
			// Only possible if the store returns checkpoints out of order.
			return bad("stored out of order")
		}
		head, err := OpenCheckpoint(cp.Note, v.key)
		if err != nil {
			return bad("%v", err)
		}
		if head.Size != cp.Size {
			return bad("the note signs tree size %d", head.Size)
		}
		root, err := rootOf(v.rng)
		if err != nil {
			return nil, err
		}
		if !bytes.Equal(root, head.Root) {
			return bad("the entries do not have the signed root hash: an entry from %d to %d was changed", v.rep.Signed, size-1)
		}
		v.good = append(v.good, size)
		v.rep.Checkpoints++
		v.rep.Signed = size
	}
}

// headAt checks the head given, when size is its size, as it checks a
// stored checkpoint; one that matches vouches for the entries before it.
func (v *verification) headAt(size uint64) (*problem, error) {
	if v.head == nil || v.head.Size != size {
		return nil, nil
	}
	root, err := rootOf(v.rng)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(root, v.head.Root) {
		if v.rep.Signed == size {
			// Only the log's key could have signed that stored checkpoint.
			return &problem{0, size, rankCheckpoint, fmt.Sprintf(
				"re-signed: a stored checkpoint for tree size %d verifies, but the head given signs another root at that size: the log was rewritten and signed again with its own key, so none of its stored checkpoints can be trusted",
				size)}, nil
		}
		return &problem{v.rep.Signed, size, rankCheckpoint, fmt.Sprintf(
			"rewritten: the entries before %d do not have the root of the head given: an entry from %d to %d was changed",
			size, v.rep.Signed, size-1)}, nil
	}
	v.headOK = true
	if size > v.rep.Signed {
		v.good = append(v.good, size)
		v.rep.Signed = size
		v.headNew = true
	}
	return nil, nil
}

func (v *verification) peekCheckpoint(ctx context.Context) (Checkpoint, bool, error) {
	if len(v.cps) == 0 && !v.cpDone {
		cps, err := v.st.AuditCheckpoints(ctx, v.cpAfter, verifyPage)
		if err != nil {
			return Checkpoint{}, false, err
		}
		if len(cps) == 0 {
			v.cpDone = true
		} else {
			v.cps = cps
			v.cpAfter = int64(cps[len(cps)-1].Size)
		}
	}
	if len(v.cps) == 0 {
		return Checkpoint{}, false, nil
	}
	return v.cps[0], true, nil
}
