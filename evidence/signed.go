package evidence

import (
	"bytes"
	"context"
	"crypto"
	"errors"
	"fmt"
	"time"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/agentgov/agentgov/audit"
)

var hasher = rfc6962.New(crypto.SHA256)

// ErrNotSigned says that the entries read are not the ones a signed tree
// head vouches for: the store was changed, or changed between two reads.
var ErrNotSigned = errors.New("the entries read do not have the signed root")

// WalkSigned calls f with the first head.Size entries of st, in order,
// hashing the very bytes it hands to f, and then checks that they have the
// root head signs. Verifying a log and then reading it again proves nothing
// about the second read: an entry changed in between would be counted as
// signed. So f's work stands only when WalkSigned returns nil; on an error
// the caller must discard it. head is a tree head that audit.OpenCheckpoint
// returned, so its signature was checked.
func WalkSigned(ctx context.Context, st audit.Store, head audit.TreeHead, f func(audit.Entry) error) error {
	rng := (&compact.RangeFactory{Hash: hasher.HashChildren}).NewEmptyRange(0)
	after := int64(-1)
	for rng.End() < head.Size {
		rows, err := st.AuditRows(ctx, after, audit.MaxEntriesPage)
		if err != nil {
			return fmt.Errorf("audit: entries: %w", err)
		}
		if len(rows) == 0 {
			return fmt.Errorf("%w: the log ends at %d entries, the checkpoint covers %d", ErrNotSigned, rng.End(), head.Size)
		}
		for _, r := range rows {
			next := rng.End()
			if next == head.Size {
				break
			}
			if r.Index != next {
				return fmt.Errorf("%w: entry %d is missing", ErrNotSigned, next)
			}
			e, err := audit.DecodeEntry(r.Data)
			if err != nil {
				return fmt.Errorf("%w: entry %d: %v", ErrNotSigned, next, err)
			}
			if e.Index != next {
				return fmt.Errorf("%w: entry %d: its index field says %d", ErrNotSigned, next, e.Index)
			}
			if err := rng.Append(hasher.HashLeaf(r.Data), nil); err != nil {
				return err
			}
			if err := f(e); err != nil {
				return err
			}
		}
		after = int64(rows[len(rows)-1].Index)
	}
	root := hasher.EmptyRoot()
	if head.Size > 0 {
		var err error
		if root, err = rng.GetRootHash(nil); err != nil {
			return err
		}
	}
	if !bytes.Equal(root, head.Root) {
		return fmt.Errorf("%w: entries 0..%d were changed after the checkpoint of size %d was signed", ErrNotSigned, head.Size-1, head.Size)
	}
	return nil
}

// LatestHead returns the latest checkpoint of st and the tree head it
// signs, checked with verifier; ok is false when st has no checkpoint. A
// checkpoint stored for another size than it signs is refused.
func LatestHead(ctx context.Context, st audit.Store, verifier note.Verifier) (cp audit.Checkpoint, head audit.TreeHead, ok bool, err error) {
	cp, ok, err = st.AuditLatestCheckpoint(ctx)
	if err != nil || !ok {
		if err != nil {
			err = fmt.Errorf("audit: latest checkpoint: %w", err)
		}
		return cp, head, false, err
	}
	if head, err = audit.OpenCheckpoint(cp.Note, verifier); err != nil {
		return cp, head, false, fmt.Errorf("the latest checkpoint: %w", err)
	}
	if head.Size != cp.Size {
		return cp, head, false, fmt.Errorf("%w: the latest checkpoint is stored for %d entries but signs %d", ErrNotSigned, cp.Size, head.Size)
	}
	return cp, head, true, nil
}

// Signed is what SignedDecisions read from one log.
type Signed struct {
	Decisions []Decision
	// Unsigned counts the decisions among them that come after the latest
	// signed checkpoint: nothing proves them yet.
	Unsigned int
}

// SignedDecisions returns the decisions of st made at or after since (all
// when since is zero), reading the entries the latest checkpoint covers in
// the pass that checks them against its signed root (WalkSigned), and the
// newer ones after them, counted as unsigned. A log whose checkpointed part
// was changed, or whose latest checkpoint is not signed by verifier, is
// refused: reading it would present an edited past as the recorded one.
func SignedDecisions(ctx context.Context, st audit.Store, verifier note.Verifier, since time.Time) (Signed, error) {
	var out Signed
	keep := func(signed bool) func(audit.Entry) error {
		return func(e audit.Entry) error {
			if e.Kind != "decision" || (!since.IsZero() && e.Time.Before(since)) {
				return nil
			}
			d, err := ParseDecision(e)
			if err != nil {
				return err
			}
			out.Decisions = append(out.Decisions, d)
			if !signed {
				out.Unsigned++
			}
			return nil
		}
	}
	after := int64(-1)
	_, head, ok, err := LatestHead(ctx, st, verifier)
	if err != nil {
		return out, err
	}
	if ok {
		if err := WalkSigned(ctx, st, head, keep(true)); err != nil {
			return Signed{}, err
		}
		after = int64(head.Size) - 1
	}
	err = Walk(ctx, func(ctx context.Context, a int64, limit int) ([]audit.Entry, error) {
		if a < after {
			a = after
		}
		return audit.Entries(ctx, st, a, limit)
	}, keep(false))
	if err != nil {
		return Signed{}, err
	}
	return out, nil
}
