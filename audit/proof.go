package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/transparency-dev/merkle/proof"
	"golang.org/x/mod/sumdb/note"

	"github.com/agentgov/agentgov/jcs"
)

// InclusionProof returns the RFC 6962 audit path of entry index in the tree
// of the first treeSize entries.
func (l *Log) InclusionProof(ctx context.Context, index, treeSize uint64) ([][]byte, error) {
	if treeSize > l.Size() {
		return nil, fmt.Errorf("audit: inclusion proof: tree size %d is beyond the log's %d entries", treeSize, l.Size())
	}
	return inclusionProof(ctx, l.st, index, treeSize)
}

// ConsistencyProof returns the RFC 6962 proof that the tree of the first
// `from` entries is a prefix of the tree of the first `to`.
func (l *Log) ConsistencyProof(ctx context.Context, from, to uint64) ([][]byte, error) {
	if to > l.Size() {
		return nil, fmt.Errorf("audit: consistency proof: tree size %d is beyond the log's %d entries", to, l.Size())
	}
	if from > to {
		return nil, fmt.Errorf("audit: consistency proof: from %d is after to %d", from, to)
	}
	nodes, err := proof.Consistency(from, to)
	if err != nil {
		return nil, fmt.Errorf("audit: consistency proof: %w", err)
	}
	return fetchProof(ctx, l.st, nodes)
}

func inclusionProof(ctx context.Context, st Store, index, treeSize uint64) ([][]byte, error) {
	if index >= treeSize {
		return nil, fmt.Errorf("audit: inclusion proof: index %d is not in a tree of size %d", index, treeSize)
	}
	nodes, err := proof.Inclusion(index, treeSize)
	if err != nil {
		return nil, fmt.Errorf("audit: inclusion proof: %w", err)
	}
	return fetchProof(ctx, st, nodes)
}

func fetchProof(ctx context.Context, st Store, nodes proof.Nodes) ([][]byte, error) {
	hashes, err := st.AuditNodes(ctx, nodes.IDs)
	if err != nil {
		return nil, fmt.Errorf("audit: proof: %w", err)
	}
	for i, h := range hashes {
		if h == nil {
			return nil, fmt.Errorf("audit: proof: tree node (level %d, index %d) is missing", nodes.IDs[i].Level, nodes.IDs[i].Index)
		}
	}
	p, err := nodes.Rehash(hashes, hasher.HashChildren)
	if err != nil {
		return nil, fmt.Errorf("audit: proof: %w", err)
	}
	return p, nil
}

// Proof shows that one entry is in the log as of a signed checkpoint. It is
// self-contained: VerifyProof needs only it and the log's verifier key.
type Proof struct {
	Index      uint64          `json:"index"`
	TreeSize   uint64          `json:"tree_size"`
	LeafHash   []byte          `json:"leaf_hash"`
	Proof      [][]byte        `json:"proof"`
	Checkpoint string          `json:"checkpoint"`
	Entry      json.RawMessage `json:"entry"`
}

// Prove returns the inclusion proof of entry index against the latest
// checkpoint, first writing a checkpoint if none covers the log yet. The
// proof is verified before it is returned.
func (l *Log) Prove(ctx context.Context, index uint64) (Proof, error) {
	if _, _, err := l.Checkpoint(ctx); err != nil {
		return Proof{}, err
	}
	return Prove(ctx, l.st, l.verifier, index)
}

// Prove returns the inclusion proof of entry index against the latest
// stored checkpoint of st, without writing anything: an entry appended after
// that checkpoint cannot be proven yet. The proof is verified before it is
// returned, so an error also means the stored log does not support it.
func Prove(ctx context.Context, st Store, verifier note.Verifier, index uint64) (Proof, error) {
	cp, ok, err := st.AuditLatestCheckpoint(ctx)
	if err != nil {
		return Proof{}, fmt.Errorf("audit: prove %d: %w", index, err)
	}
	if !ok {
		return Proof{}, fmt.Errorf("audit: prove %d: the log has no signed checkpoint yet", index)
	}
	head, err := OpenCheckpoint(cp.Note, verifier)
	if err != nil {
		return Proof{}, fmt.Errorf("audit: prove %d: latest checkpoint: %w", index, err)
	}
	if index >= head.Size {
		return Proof{}, fmt.Errorf("audit: prove %d: the latest signed checkpoint covers only indices below %d", index, head.Size)
	}
	rows, err := st.AuditRows(ctx, int64(index)-1, 1)
	if err != nil {
		return Proof{}, fmt.Errorf("audit: prove %d: %w", index, err)
	}
	if len(rows) == 0 || rows[0].Index != index {
		return Proof{}, fmt.Errorf("audit: prove %d: entry %d is missing from the store", index, index)
	}
	path, err := inclusionProof(ctx, st, index, head.Size)
	if err != nil {
		return Proof{}, err
	}
	p := Proof{
		Index:      index,
		TreeSize:   head.Size,
		LeafHash:   LeafHash(rows[0].Data),
		Proof:      path,
		Checkpoint: string(cp.Note),
		Entry:      json.RawMessage(rows[0].Data),
	}
	if err := VerifyProof(p, verifier); err != nil {
		return Proof{}, fmt.Errorf("audit: prove %d: %w", index, err)
	}
	return p, nil
}

// VerifyProof checks a Proof: the checkpoint is signed by verifier, the
// entry (when present) hashes to the leaf hash once canonicalized, and the path leads from that
// leaf to the signed root.
func VerifyProof(p Proof, verifier note.Verifier) error {
	head, err := OpenCheckpoint([]byte(p.Checkpoint), verifier)
	if err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	if head.Size != p.TreeSize {
		return fmt.Errorf("proof is for tree size %d but the checkpoint signs size %d", p.TreeSize, head.Size)
	}
	if p.Entry != nil {
		// The entry may have been re-formatted on the way (pretty-printed
		// JSON); its canonical form is what was hashed.
		data, err := jcs.Transform(p.Entry)
		if err != nil {
			return fmt.Errorf("entry: %w", err)
		}
		if !bytes.Equal(LeafHash(data), p.LeafHash) {
			return errors.New("entry does not hash to the leaf hash")
		}
		e, err := DecodeEntry(data)
		if err != nil {
			return fmt.Errorf("entry: %w", err)
		}
		if e.Index != p.Index {
			return fmt.Errorf("entry's index field is %d, not %d", e.Index, p.Index)
		}
	}
	if err := proof.VerifyInclusion(hasher, p.Index, p.TreeSize, p.LeafHash, p.Proof, head.Root); err != nil {
		return fmt.Errorf("inclusion of %d in tree of size %d: %w", p.Index, p.TreeSize, err)
	}
	return nil
}

// VerifyConsistency checks that the checkpoint newer extends older, given
// the consistency proof between their sizes. This is what a monitor runs to
// know that the log was only appended to in between.
func VerifyConsistency(older, newer []byte, consistency [][]byte, verifier note.Verifier) error {
	a, err := OpenCheckpoint(older, verifier)
	if err != nil {
		return fmt.Errorf("older checkpoint: %w", err)
	}
	b, err := OpenCheckpoint(newer, verifier)
	if err != nil {
		return fmt.Errorf("newer checkpoint: %w", err)
	}
	if err := proof.VerifyConsistency(hasher, a.Size, b.Size, consistency, a.Root, b.Root); err != nil {
		return fmt.Errorf("consistency of %d and %d: %w", a.Size, b.Size, err)
	}
	return nil
}
