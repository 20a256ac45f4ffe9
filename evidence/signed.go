package evidence

import (
	"bytes"
	"context"
	"crypto"
	"errors"
	"fmt"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"

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
