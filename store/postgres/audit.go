package postgres

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/transparency-dev/merkle/compact"

	"github.com/agentgov/agentgov/audit"
	"github.com/agentgov/agentgov/store"
)

var (
	_ audit.Store = (*DB)(nil)
	_ audit.Store = (*replicaLog)(nil)
)

// registerKey records the replica's audit key at its first start, or checks
// that it is the one recorded: a replica restarted with the same id
// continues its log, which only its own key may sign.
func (db *DB) registerKey(ctx context.Context) error {
	if _, err := db.pool.Exec(ctx,
		`INSERT INTO agentgov_replicas (id, audit_key) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING`,
		db.replica, db.opts.AuditKey); err != nil {
		return fmt.Errorf("open store: record replica %s: %w", db.replica, err)
	}
	var have string
	if err := db.pool.QueryRow(ctx, `SELECT audit_key FROM agentgov_replicas WHERE id = $1`, db.replica).Scan(&have); err != nil {
		return fmt.Errorf("open store: record replica %s: %w", db.replica, err)
	}
	if have != db.opts.AuditKey {
		return fmt.Errorf("open store: %w: replica %s signed its audit log with key %s, and this process has %s; a replica restarted with the same id must keep its audit key (audit.key in its data directory, or audit.key_file), and a replica with a new key needs a new id",
			ErrKeyMismatch, db.replica, keyName(have), keyName(db.opts.AuditKey))
	}
	return nil
}

// keyName is the name and hash of a verifier key, without the key.
func keyName(vkey string) string {
	if i := bytes.LastIndexByte([]byte(vkey), '+'); i > 0 {
		return vkey[:i]
	}
	return vkey
}

// replicaLog is one replica's audit log in the shared tables.
type replicaLog struct {
	pool    *pgxpool.Pool
	replica string
}

func (db *DB) log() *replicaLog { return &replicaLog{pool: db.pool, replica: db.replica} }

// AuditAppend implements audit.Store for this replica's log. With
// synchronous_commit on (set on every connection), its commit is durable
// when it returns.
func (db *DB) AuditAppend(ctx context.Context, rows []audit.Row, nodes []audit.Node) error {
	return db.log().AuditAppend(ctx, rows, nodes)
}

// AuditSize implements audit.Store.
func (db *DB) AuditSize(ctx context.Context) (uint64, error) { return db.log().AuditSize(ctx) }

// AuditRows implements audit.Store.
func (db *DB) AuditRows(ctx context.Context, after int64, limit int) ([]audit.Row, error) {
	return db.log().AuditRows(ctx, after, limit)
}

// AuditNodes implements audit.Store.
func (db *DB) AuditNodes(ctx context.Context, ids []compact.NodeID) ([][]byte, error) {
	return db.log().AuditNodes(ctx, ids)
}

// AuditPutCheckpoint implements audit.Store.
func (db *DB) AuditPutCheckpoint(ctx context.Context, c audit.Checkpoint) error {
	return db.log().AuditPutCheckpoint(ctx, c)
}

// AuditCheckpoints implements audit.Store.
func (db *DB) AuditCheckpoints(ctx context.Context, after int64, limit int) ([]audit.Checkpoint, error) {
	return db.log().AuditCheckpoints(ctx, after, limit)
}

// AuditLatestCheckpoint implements audit.Store.
func (db *DB) AuditLatestCheckpoint(ctx context.Context) (audit.Checkpoint, bool, error) {
	return db.log().AuditLatestCheckpoint(ctx)
}

// decisionIDOf is the id of the decision an entry records, "" for an entry
// of another kind. Entries are canonical JSON written by audit.Log; the
// kind is checked on the bytes first, so that only decisions are parsed.
func decisionIDOf(data []byte) string {
	// {"index":N,"kind":"decision","record":...
	i := bytes.Index(data, []byte(`,"kind":"`))
	if i < 0 || !bytes.HasPrefix(data[i+len(`,"kind":"`):], []byte(`decision"`)) {
		return ""
	}
	var e struct {
		Kind   string `json:"kind"`
		Record struct {
			Decision struct {
				ID string `json:"id"`
			} `json:"decision"`
		} `json:"record"`
	}
	if json.Unmarshal(data, &e) != nil || e.Kind != "decision" {
		return ""
	}
	return e.Record.Decision.ID
}

// AuditAppend writes the batch in one transaction; a row or node that
// exists already fails it whole.
func (l *replicaLog) AuditAppend(ctx context.Context, rows []audit.Row, nodes []audit.Node) error {
	idx := make([]int64, len(rows))
	data := make([][]byte, len(rows))
	ids := make([]*string, len(rows))
	for i, r := range rows {
		idx[i], data[i] = int64(r.Index), r.Data
		if id := decisionIDOf(r.Data); id != "" {
			ids[i] = &id
		}
	}
	levels := make([]int32, len(nodes))
	nidx := make([]int64, len(nodes))
	hashes := make([][]byte, len(nodes))
	for i, n := range nodes {
		levels[i], nidx[i], hashes[i] = int32(n.ID.Level), int64(n.ID.Index), n.Hash
	}
	// Both statements go in one batch, which PostgreSQL runs as one
	// implicit transaction, committed (durably: synchronous_commit is on)
	// before it answers: one round trip per audit batch instead of three
	// with BEGIN and COMMIT of their own, and the writer waits on nothing
	// else.
	b := &pgx.Batch{}
	b.Queue(`INSERT INTO audit_entries (replica, idx, data, decision_id)
		SELECT $1, i, d, dec FROM unnest($2::bigint[], $3::bytea[], $4::text[]) AS r(i, d, dec)`,
		l.replica, idx, data, ids)
	b.Queue(`INSERT INTO audit_nodes (replica, level, idx, hash)
		SELECT $1, lv, i, h FROM unnest($2::integer[], $3::bigint[], $4::bytea[]) AS n(lv, i, h)`,
		l.replica, levels, nidx, hashes)
	if err := l.pool.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("append audit entries: %w", err)
	}
	return nil
}

func (l *replicaLog) AuditSize(ctx context.Context) (uint64, error) {
	var n int64
	if err := l.pool.QueryRow(ctx, `SELECT COALESCE(max(idx) + 1, 0) FROM audit_entries WHERE replica = $1`, l.replica).Scan(&n); err != nil {
		return 0, fmt.Errorf("audit size: %w", err)
	}
	return uint64(n), nil
}

func (l *replicaLog) AuditRows(ctx context.Context, after int64, limit int) ([]audit.Row, error) {
	rs, err := l.pool.Query(ctx, `SELECT idx, data FROM audit_entries WHERE replica = $1 AND idx > $2 ORDER BY idx LIMIT $3`, l.replica, after, limit)
	if err != nil {
		return nil, fmt.Errorf("read audit entries: %w", err)
	}
	var out []audit.Row
	var i int64
	var data []byte
	_, err = pgx.ForEachRow(rs, []any{&i, &data}, func() error {
		out = append(out, audit.Row{Index: uint64(i), Data: bytes.Clone(data)})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read audit entries: %w", err)
	}
	return out, nil
}

func (l *replicaLog) AuditNodes(ctx context.Context, ids []compact.NodeID) ([][]byte, error) {
	out := make([][]byte, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	levels := make([]int32, len(ids))
	idx := make([]int64, len(ids))
	pos := make(map[compact.NodeID][]int, len(ids))
	for i, id := range ids {
		levels[i], idx[i] = int32(id.Level), int64(id.Index)
		pos[id] = append(pos[id], i)
	}
	rs, err := l.pool.Query(ctx, `SELECT n.level, n.idx, n.hash FROM audit_nodes n
		JOIN unnest($2::integer[], $3::bigint[]) AS w(lv, i) ON n.level = w.lv AND n.idx = w.i
		WHERE n.replica = $1`, l.replica, levels, idx)
	if err != nil {
		return nil, fmt.Errorf("read audit tree nodes: %w", err)
	}
	var lv int32
	var i int64
	var hash []byte
	_, err = pgx.ForEachRow(rs, []any{&lv, &i, &hash}, func() error {
		h := bytes.Clone(hash)
		for _, p := range pos[compact.NewNodeID(uint(lv), uint64(i))] {
			out[p] = h
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read audit tree nodes: %w", err)
	}
	return out, nil
}

func (l *replicaLog) AuditPutCheckpoint(ctx context.Context, c audit.Checkpoint) error {
	tag, err := l.pool.Exec(ctx,
		`INSERT INTO audit_checkpoints (replica, size, note) VALUES ($1, $2, $3) ON CONFLICT (replica, size) DO NOTHING`,
		l.replica, int64(c.Size), c.Note)
	if err != nil {
		return fmt.Errorf("store audit checkpoint: %w", err)
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	var have []byte
	if err := l.pool.QueryRow(ctx, `SELECT note FROM audit_checkpoints WHERE replica = $1 AND size = $2`, l.replica, int64(c.Size)).Scan(&have); err != nil {
		return fmt.Errorf("store audit checkpoint: %w", err)
	}
	if !bytes.Equal(have, c.Note) {
		return fmt.Errorf("store audit checkpoint: a different checkpoint for tree size %d is already stored", c.Size)
	}
	return nil
}

func (l *replicaLog) AuditCheckpoints(ctx context.Context, after int64, limit int) ([]audit.Checkpoint, error) {
	rs, err := l.pool.Query(ctx, `SELECT size, note FROM audit_checkpoints WHERE replica = $1 AND size > $2 ORDER BY size LIMIT $3`, l.replica, after, limit)
	if err != nil {
		return nil, fmt.Errorf("read audit checkpoints: %w", err)
	}
	var out []audit.Checkpoint
	var size int64
	var note []byte
	_, err = pgx.ForEachRow(rs, []any{&size, &note}, func() error {
		out = append(out, audit.Checkpoint{Size: uint64(size), Note: bytes.Clone(note)})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read audit checkpoints: %w", err)
	}
	return out, nil
}

func (l *replicaLog) AuditLatestCheckpoint(ctx context.Context) (audit.Checkpoint, bool, error) {
	var size int64
	var note []byte
	err := l.pool.QueryRow(ctx, `SELECT size, note FROM audit_checkpoints WHERE replica = $1 ORDER BY size DESC LIMIT 1`, l.replica).Scan(&size, &note)
	if errors.Is(err, pgx.ErrNoRows) {
		return audit.Checkpoint{}, false, nil
	}
	if err != nil {
		return audit.Checkpoint{}, false, fmt.Errorf("read latest audit checkpoint: %w", err)
	}
	return audit.Checkpoint{Size: uint64(size), Note: note}, true, nil
}

// FindDecision implements server.Decisions: the decision's entry in the
// log of whichever replica made it.
func (db *DB) FindDecision(ctx context.Context, id string) (store.Decision, error) {
	return findDecision(ctx, db.pool, id)
}

func findDecision(ctx context.Context, pool *pgxpool.Pool, id string) (store.Decision, error) {
	var d store.Decision
	var idx int64
	err := pool.QueryRow(ctx, `SELECT replica, idx, data FROM audit_entries WHERE decision_id = $1 ORDER BY replica, idx LIMIT 1`, id).
		Scan(&d.Log, &idx, &d.Data)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Decision{}, fmt.Errorf("%w: %s", store.ErrNoDecision, id)
	}
	if err != nil {
		return store.Decision{}, fmt.Errorf("find decision %s: %w", id, err)
	}
	d.Index = uint64(idx)
	return d, nil
}

// Replica is one replica as the database records it.
type Replica struct {
	ID string
	// AuditKey is the verifier key of its audit log.
	AuditKey string
	// Since is when it first started.
	Since time.Time
}

// Reader reads every replica's audit log, and writes nothing: it runs no
// migration and every transaction it opens is read-only. It is what
// agentgov audit verify --store opens.
type Reader struct {
	pool *pgxpool.Pool
}

// OpenReader connects to the database at dsn to read it.
func OpenReader(ctx context.Context, dsn string, opts Options) (*Reader, error) {
	opts.fill()
	if err := opts.check(); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	opts.Replica = ""
	pool, _, err := connect(ctx, dsn, opts, true)
	if err != nil {
		return nil, err
	}
	var ok bool
	if err := pool.QueryRow(ctx, `SELECT to_regclass('agentgov_replicas') IS NOT NULL`).Scan(&ok); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open store: %w", err)
	}
	if !ok {
		pool.Close()
		return nil, errors.New("open store: no agentgov tables in this database and schema (check the database name and search_path)")
	}
	return &Reader{pool: pool}, nil
}

// Replicas lists the replicas that ever started on the database, by id.
func (r *Reader) Replicas(ctx context.Context) ([]Replica, error) {
	rs, err := r.pool.Query(ctx, `SELECT id, audit_key, created_at FROM agentgov_replicas ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list replicas: %w", err)
	}
	var out []Replica
	var rep Replica
	_, err = pgx.ForEachRow(rs, []any{&rep.ID, &rep.AuditKey, &rep.Since}, func() error {
		out = append(out, rep)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list replicas: %w", err)
	}
	return out, nil
}

// Orphans lists replica ids that have audit entries, nodes or checkpoints
// but no recorded key: rows no replica of this database wrote.
func (r *Reader) Orphans(ctx context.Context) ([]string, error) {
	rs, err := r.pool.Query(ctx, `SELECT replica FROM (
			SELECT replica FROM audit_entries UNION SELECT replica FROM audit_nodes
			UNION SELECT replica FROM audit_checkpoints) logs
		EXCEPT SELECT id FROM agentgov_replicas ORDER BY 1`)
	if err != nil {
		return nil, fmt.Errorf("list audit logs: %w", err)
	}
	var out []string
	var id string
	_, err = pgx.ForEachRow(rs, []any{&id}, func() error {
		out = append(out, id)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list audit logs: %w", err)
	}
	return out, nil
}

// Log is replica's audit log, to read: its writes fail.
func (r *Reader) Log(replica string) audit.Store {
	return &replicaLog{pool: r.pool, replica: replica}
}

// FindDecision is DB.FindDecision on the reader.
func (r *Reader) FindDecision(ctx context.Context, id string) (store.Decision, error) {
	return findDecision(ctx, r.pool, id)
}

// Close closes the reader's connections.
func (r *Reader) Close() error {
	r.pool.Close()
	return nil
}
