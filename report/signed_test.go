package report

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"slices"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/transparency-dev/merkle/compact"
	"golang.org/x/mod/sumdb/note"

	"github.com/agentgov/agentgov/audit"
	"github.com/agentgov/agentgov/evidence"
	"github.com/agentgov/agentgov/jcs"
	"github.com/agentgov/agentgov/policy"
)

// memStore is an audit store held in memory.
type memStore struct {
	mu    sync.Mutex
	rows  []audit.Row
	nodes map[compact.NodeID][]byte
	cps   []audit.Checkpoint
}

func (m *memStore) AuditAppend(_ context.Context, rows []audit.Row, nodes []audit.Node) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.nodes == nil {
		m.nodes = map[compact.NodeID][]byte{}
	}
	m.rows = append(m.rows, rows...)
	for _, n := range nodes {
		m.nodes[n.ID] = n.Hash
	}
	return nil
}

func (m *memStore) AuditSize(context.Context) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return uint64(len(m.rows)), nil
}

func (m *memStore) AuditRows(_ context.Context, after int64, limit int) ([]audit.Row, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	start := int(after + 1)
	if start >= len(m.rows) {
		return nil, nil
	}
	return slices.Clone(m.rows[start:min(len(m.rows), start+limit)]), nil
}

func (m *memStore) AuditNodes(_ context.Context, ids []compact.NodeID) ([][]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([][]byte, len(ids))
	for i, id := range ids {
		out[i] = m.nodes[id]
	}
	return out, nil
}

func (m *memStore) AuditPutCheckpoint(_ context.Context, c audit.Checkpoint) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cps = append(m.cps, c)
	return nil
}

func (m *memStore) AuditCheckpoints(_ context.Context, after int64, limit int) ([]audit.Checkpoint, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []audit.Checkpoint
	for _, c := range m.cps {
		if int64(c.Size) > after && len(out) < limit {
			out = append(out, c)
		}
	}
	return out, nil
}

func (m *memStore) AuditLatestCheckpoint(context.Context) (audit.Checkpoint, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.cps) == 0 {
		return audit.Checkpoint{}, false, nil
	}
	return m.cps[len(m.cps)-1], true, nil
}

// signedLog writes three decisions, two of them denials, and a checkpoint
// over them.
func signedLog(t *testing.T) (*memStore, note.Verifier, string) {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, "report-test")
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := note.NewSigner(skey)
	verifier, _ := note.NewVerifier(vkey)
	st := &memStore{}
	ctx, cancel := context.WithCancel(context.Background())
	l, err := audit.Open(ctx, st, signer, verifier, audit.Options{CheckpointInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { l.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	for _, effect := range []string{"deny", "allow", "deny"} {
		rec := map[string]any{
			"decision":      map[string]any{"id": "dec_01JAAAAAAAAAAAAAAAAAAAAAAA", "effect": effect, "rules": []string{"no-etc"}},
			"action":        map[string]any{"agent": map[string]any{"id": "a1"}, "tool": map[string]any{"name": "t"}},
			"policy":        "sha256:x",
			"policy_effect": effect,
		}
		if _, err := l.Append(ctx, "decision", rec); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := l.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	return st, verifier, vkey
}

func reportSet(t *testing.T) *policy.Set {
	t.Helper()
	set, err := policy.LoadFS(fstest.MapFS{"p.yaml": {Data: []byte(`version: agentgov/v1
name: p
default: allow
rules:
  - {id: no-etc, match: {tools: ["t"]}, effect: deny, metadata: {owasp: ASI02}}
`)}}, ".", "test")
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// racing serves the log honestly to the first full read (the
// verification) and then as changed: a write to the store between the
// check and the count.
type racing struct {
	*memStore
	reads  int
	change func(rows []audit.Row) []audit.Row
	latest *audit.Checkpoint
}

func (r *racing) AuditRows(ctx context.Context, after int64, limit int) ([]audit.Row, error) {
	if after == -1 {
		r.reads++
	}
	rows, err := r.memStore.AuditRows(ctx, after, limit)
	if err != nil || r.reads < 2 {
		return rows, err
	}
	return r.change(rows), nil
}

func (r *racing) AuditLatestCheckpoint(ctx context.Context) (audit.Checkpoint, bool, error) {
	if r.latest != nil && r.reads >= 1 {
		return *r.latest, true, nil
	}
	return r.memStore.AuditLatestCheckpoint(ctx)
}

func TestAReportCountsOnlyEntriesItsCheckpointSigns(t *testing.T) {
	st, verifier, vkey := signedLog(t)
	// A denial rewritten as an allow once the log has been verified.
	r := &racing{memStore: st, change: func(rows []audit.Row) []audit.Row {
		for i, row := range rows {
			if row.Index == 2 {
				rows[i].Data = bytes.Replace(row.Data, []byte(`"effect":"deny"`), []byte(`"effect":"allow"`), 1)
			}
		}
		return rows
	}}
	in := Input{Logs: []Log{{Store: r, Verifier: verifier, PublicKey: vkey}}, Set: reportSet(t), Now: time.Now()}
	o, err := ComputeOWASP(context.Background(), in)
	if err == nil {
		t.Fatalf("a report counted an entry changed after verification: %d denials, the log signs 2", o.Totals.Deny)
	}
	if !errors.Is(err, evidence.ErrNotSigned) {
		t.Fatalf("err = %v, want %v", err, evidence.ErrNotSigned)
	}
}

func TestAReportCountsNoEntryBeyondTheCheckpointItPrints(t *testing.T) {
	st, verifier, vkey := signedLog(t)
	cp, _, _ := st.AuditLatestCheckpoint(context.Background())
	// After verification, an entry is added and the latest checkpoint row
	// is made to claim it, with the old note (which signs 3 entries).
	rec, _ := jcs.Marshal(map[string]any{
		"decision": map[string]any{"id": "dec_01JBBBBBBBBBBBBBBBBBBBBBBB", "effect": "allow"},
		"action":   map[string]any{"agent": map[string]any{"id": "a1"}, "tool": map[string]any{"name": "t"}},
		"policy":   "sha256:forged", "policy_effect": "allow",
	})
	forged, err := jcs.Marshal(audit.Entry{Index: 3, Kind: "decision", Time: time.Now().UTC(), Record: rec})
	if err != nil {
		t.Fatal(err)
	}
	r := &racing{memStore: st, latest: &audit.Checkpoint{Size: cp.Size + 1, Note: cp.Note},
		change: func(rows []audit.Row) []audit.Row {
			if len(rows) > 0 && rows[len(rows)-1].Index == 2 {
				rows = append(rows, audit.Row{Index: 3, Data: forged})
			}
			return rows
		}}
	in := Input{Logs: []Log{{Store: r, Verifier: verifier, PublicKey: vkey}}, Set: reportSet(t), Now: time.Now()}
	o, err := ComputeOWASP(context.Background(), in)
	if err == nil && (o.Totals.Decisions != 3 || o.Size != 3) {
		t.Fatalf("the report counted %d decisions at size %d, printing a checkpoint that signs 3", o.Totals.Decisions, o.Size)
	}
}

func TestAReportOverAnUnchangedLogCounts(t *testing.T) {
	st, verifier, vkey := signedLog(t)
	in := Input{Logs: []Log{{Store: st, Verifier: verifier, PublicKey: vkey}}, Set: reportSet(t), Now: time.Now()}
	o, err := ComputeOWASP(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if o.Totals.Decisions != 3 || o.Totals.Deny != 2 || o.Size != 3 || o.Risks["ASI02"].Decisions.Deny != 2 {
		t.Fatalf("totals %+v at size %d, ASI02 %+v", o.Totals, o.Size, o.Risks["ASI02"].Decisions)
	}
}
