// Package audit is agentgov's tamper-evident record of what it decided and
// what happened: an append-only log whose entries are leaves of an RFC 6962
// Merkle tree, with signed checkpoints of the tree head and inclusion and
// consistency proofs. A decision that is not in this log did not happen, so
// Append returns only once an entry is durable, and Verify can name the first
// entry that was edited, deleted or moved after the fact.
package audit

import (
	"bytes"
	"context"
	"crypto"
	_ "crypto/sha256" // the RFC 6962 hasher uses SHA-256
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/agentgov/agentgov/jcs"
)

// Store keeps the log. Every method is about one table of the log, and
// AuditAppend is the only one that writes entries: it must write all of its
// rows and nodes in one transaction, or none of them, and the transaction
// must be durable when AuditAppend returns: the log acknowledges the batch's
// appends as soon as it has.
type Store interface {
	// AuditAppend writes entries and the tree nodes they complete, atomically.
	// A row or node that already exists is an error, never overwritten.
	AuditAppend(ctx context.Context, rows []Row, nodes []Node) error
	// AuditSize is one past the highest stored index, 0 for an empty log.
	AuditSize(ctx context.Context) (uint64, error)
	// AuditRows returns up to limit rows with an index above after, in order.
	AuditRows(ctx context.Context, after int64, limit int) ([]Row, error)
	// AuditNodes returns the stored hash of each id, nil where none is stored.
	AuditNodes(ctx context.Context, ids []compact.NodeID) ([][]byte, error)
	// AuditPutCheckpoint stores a signed checkpoint.
	AuditPutCheckpoint(ctx context.Context, c Checkpoint) error
	// AuditCheckpoints returns up to limit checkpoints with a tree size above
	// after, smallest first.
	AuditCheckpoints(ctx context.Context, after int64, limit int) ([]Checkpoint, error)
	// AuditLatestCheckpoint returns the checkpoint with the largest tree size.
	AuditLatestCheckpoint(ctx context.Context) (c Checkpoint, ok bool, err error)
}

// Row is one stored entry: its position and the exact bytes that were hashed.
type Row struct {
	Index uint64
	Data  []byte
}

// Node is one hash of the Merkle tree, stored so that proofs need only
// O(log n) reads instead of rehashing the whole log.
type Node struct {
	ID   compact.NodeID
	Hash []byte
}

// Checkpoint is a signed tree head as stored: the tree size it covers and the
// signed note (see FormatCheckpoint for its text).
type Checkpoint struct {
	Size uint64
	Note []byte
}

// Entry is one decoded log entry. Its canonical JSON (jcs.Marshal) is exactly
// the stored, hashed bytes, so a client holding an Entry can recompute its
// leaf hash.
type Entry struct {
	Index  uint64          `json:"index"`
	Kind   string          `json:"kind"`
	Time   time.Time       `json:"time"`
	Record json.RawMessage `json:"record"`
}

// hasher is the RFC 6962 SHA-256 tree hasher every part of the log agrees on.
var hasher = rfc6962.New(crypto.SHA256)

var factory = &compact.RangeFactory{Hash: hasher.HashChildren}

// LeafHash is the RFC 6962 leaf hash of an entry's stored bytes.
func LeafHash(data []byte) []byte { return hasher.HashLeaf(data) }

const maxKindLen = 64

// checkKind keeps kinds to short lowercase identifiers, so that they never
// need escaping inside the envelope and always read well in reports.
func checkKind(kind string) error {
	if kind == "" {
		return errors.New("audit: empty entry kind")
	}
	if len(kind) > maxKindLen {
		return fmt.Errorf("audit: entry kind %.20q... longer than %d bytes", kind, maxKindLen)
	}
	for _, c := range []byte(kind) {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_' || c == '.' || c == '-') {
			return fmt.Errorf("audit: entry kind %q: only a-z, 0-9, '_', '.' and '-' are allowed", kind)
		}
	}
	return nil
}

// envelope assembles the canonical JSON of an entry from an already
// canonical record. Keys are in RFC 8785 order (index, kind, record, time),
// kind needs no escaping (checkKind) and integers below 2^53 print as digits,
// so the result equals jcs.Marshal of the same Entry without re-parsing the
// record inside the single writer.
func envelope(index uint64, kind string, record []byte, t time.Time) []byte {
	b := make([]byte, 0, len(record)+len(kind)+80)
	b = append(b, `{"index":`...)
	b = strconv.AppendUint(b, index, 10)
	b = append(b, `,"kind":"`...)
	b = append(b, kind...)
	b = append(b, `","record":`...)
	b = append(b, record...)
	b = append(b, `,"time":"`...)
	b = t.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `"}`...)
	return b
}

// maxIndex is the largest index that JSON numbers (doubles) carry exactly.
const maxIndex = 1<<53 - 1

// DecodeEntry parses stored entry bytes and checks that they are the
// canonical envelope the log writes: exactly the four fields, canonical JSON,
// a valid kind and a UTC timestamp.
func DecodeEntry(data []byte) (Entry, error) {
	canon, err := jcs.Transform(data)
	if err != nil {
		return Entry{}, fmt.Errorf("not valid JSON: %w", err)
	}
	if !bytes.Equal(canon, data) {
		return Entry{}, errors.New("not canonical JSON (RFC 8785)")
	}
	var raw struct {
		Index  *json.Number    `json:"index"`
		Kind   *string         `json:"kind"`
		Time   *string         `json:"time"`
		Record json.RawMessage `json:"record"` // a JSON null stays "null"; absent stays empty
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	dec.DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil {
		return Entry{}, fmt.Errorf("not an entry envelope: %w", err)
	}
	if raw.Index == nil || raw.Kind == nil || raw.Time == nil || len(raw.Record) == 0 {
		return Entry{}, errors.New("not an entry envelope: index, kind, time and record are all required")
	}
	idx, err := strconv.ParseUint(raw.Index.String(), 10, 64)
	if err != nil || idx > maxIndex {
		return Entry{}, fmt.Errorf("index %s is not a valid entry index", raw.Index)
	}
	if err := checkKind(*raw.Kind); err != nil {
		return Entry{}, err
	}
	t, err := time.Parse(time.RFC3339Nano, *raw.Time)
	if err != nil {
		return Entry{}, fmt.Errorf("time %q: %w", *raw.Time, err)
	}
	if _, off := t.Zone(); off != 0 || t.Format(time.RFC3339Nano) != *raw.Time {
		return Entry{}, fmt.Errorf("time %q is not in canonical RFC 3339 UTC form", *raw.Time)
	}
	return Entry{Index: idx, Kind: *raw.Kind, Time: t.UTC(), Record: raw.Record}, nil
}
