// Package postgres is the backend of agentgov's state for several replicas
// sharing one PostgreSQL database: sessions, kill switches, approvals,
// budgets, outcomes and idempotency keys are shared, while each replica
// keeps its own Merkle audit log (its own tree, checkpoints and signing
// key) in the same tables, keyed by its replica id. The schema is brought
// up to date at start by versioned migrations, one replica at a time.
//
// Changes to state that replicas hold in memory (kill switches, budget
// configs, session states, the policy set) are announced by the database
// itself, in the transaction that makes them: a trigger bumps the topic's
// version in agentgov_changes and sends a notification. Each replica
// LISTENs for those and also reads the versions periodically, so that a
// notification lost with a connection is made up for within a poll
// interval (Run). Each concept's storage interface is declared by the
// package that consumes it; this package implements them, one file per
// concept, and passes the same conformance suite as store/sqlite
// (store/storetest).
package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/agentgov/agentgov/store"
)

// Defaults of Options.
const (
	DefaultMaxConns       = 10
	DefaultConnectTimeout = 5 * time.Second
	DefaultPollInterval   = 500 * time.Millisecond
)

// Options configure Open.
type Options struct {
	// Replica is this process's id among the replicas sharing the
	// database: its audit log is kept under it, and no two live processes
	// may use the same one. Required.
	Replica string
	// AuditKey is the verifier key (note format, "NAME+HASH+KEY") of the
	// replica's audit log. It is recorded for the replica at its first
	// start, so that the database alone is enough to verify every
	// replica's log; a later start must bring the same key. Required.
	AuditKey string
	// MaxConns and MinConns size the connection pool (default 10 and 0).
	// The replica's own connection, which holds its id and listens for
	// changes, is not counted.
	MaxConns int32
	MinConns int32
	// MaxConnLifetime and MaxConnIdleTime recycle pooled connections
	// (default 1h and 30m).
	MaxConnLifetime time.Duration
	MaxConnIdleTime time.Duration
	// ConnectTimeout bounds one attempt to connect (default 5s): while the
	// database is unreachable, each store call fails after at most this.
	ConnectTimeout time.Duration
	// PollInterval is how often Run reads the change versions, whether or
	// not a notification came (default 500ms).
	PollInterval time.Duration
	// Logger receives what has no caller to return to: a lost listening
	// connection, a failed reload (default: discarded).
	Logger *slog.Logger
}

// ValidReplica reports why id cannot name a replica, or nil.
func ValidReplica(id string) error { return store.ValidReplica(id) }

func (o *Options) fill() {
	if o.MaxConns == 0 {
		o.MaxConns = DefaultMaxConns
	}
	if o.ConnectTimeout == 0 {
		o.ConnectTimeout = DefaultConnectTimeout
	}
	if o.PollInterval == 0 {
		o.PollInterval = DefaultPollInterval
	}
	if o.MaxConnLifetime == 0 {
		o.MaxConnLifetime = time.Hour
	}
	if o.MaxConnIdleTime == 0 {
		o.MaxConnIdleTime = 30 * time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

func (o *Options) check() error {
	switch {
	case o.MaxConns < 1:
		return fmt.Errorf("max_conns %d: at least 1", o.MaxConns)
	case o.MinConns < 0 || o.MinConns > o.MaxConns:
		return fmt.Errorf("min_conns %d: between 0 and max_conns (%d)", o.MinConns, o.MaxConns)
	case o.ConnectTimeout < 0 || o.PollInterval < 0 || o.MaxConnLifetime < 0 || o.MaxConnIdleTime < 0:
		return errors.New("durations must not be negative")
	}
	return nil
}

// ErrReplicaInUse is wrapped by the error of Open, and of Run, when another
// live process holds the replica id: two processes writing one audit log
// would each sign a tree the other keeps changing.
var ErrReplicaInUse = errors.New("replica id is in use")

// ErrKeyMismatch is wrapped by the error of Open when the replica's audit
// log was signed with another key than the one given.
var ErrKeyMismatch = errors.New("replica's audit key differs from the recorded one")

// DB is an open agentgov database for one replica.
type DB struct {
	pool    *pgxpool.Pool
	replica string
	opts    Options
	schema  string
	// connCfg opens the replica's own connection.
	connCfg *pgx.ConnConfig
	// budgetLock and replicaLock are advisory lock keys, per schema.
	budgetLock  int64
	replicaLock int64

	// own is the replica's own connection: it holds the replica's
	// advisory lock and, while Run runs, listens for changes. ownMu
	// guards it; ownDown is set while it is lost.
	ownMu   sync.Mutex
	own     *pgx.Conn
	ownDown error
	// ownPID is the server process of the last own connection: after the
	// connection is lost, that process may hold the replica id for a while
	// yet (still exiting, or not yet aware the client is gone).
	ownPID uint32

	watch watcher
}

// Open connects to the database at dsn, brings its schema up to date,
// claims opts.Replica for this process (refusing with an error wrapping
// ErrReplicaInUse while another live process holds it) and records the
// replica's audit key at its first start (refusing one that differs with
// ErrKeyMismatch). The dsn is a PostgreSQL URL or key=value string; a
// password belongs in PGPASSWORD or a password file, not in it.
func Open(ctx context.Context, dsn string, opts Options) (*DB, error) {
	opts.fill()
	if err := opts.check(); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	if err := ValidReplica(opts.Replica); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	if opts.AuditKey == "" {
		return nil, errors.New("open store: the replica's audit verifier key is required")
	}
	pool, connCfg, err := connect(ctx, dsn, opts, false)
	if err != nil {
		return nil, err
	}
	db := &DB{pool: pool, replica: opts.Replica, opts: opts, connCfg: connCfg}
	db.watch.init()
	if err := migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, err
	}
	err = pool.QueryRow(ctx, `SELECT current_schema(),
			hashtextextended('agentgov:budget:' || current_schema(), 0),
			hashtextextended('agentgov:replica:' || current_schema() || ':' || $1, 0)`,
		opts.Replica).Scan(&db.schema, &db.budgetLock, &db.replicaLock)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("open store: %w", err)
	}
	if err := db.claim(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	if err := db.registerKey(ctx); err != nil {
		db.Close()
		return nil, err
	}
	// What is in memory is loaded after this: changes from here on are
	// the ones Run must pass on.
	if err := db.watch.start(ctx, pool); err != nil {
		db.Close()
		return nil, fmt.Errorf("open store: %w", err)
	}
	return db, nil
}

// connect opens a pool on dsn. A read-only pool refuses every write, for
// verifying.
func connect(ctx context.Context, dsn string, opts Options, readOnly bool) (*pgxpool.Pool, *pgx.ConnConfig, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, nil, fmt.Errorf("open store: %w", err)
	}
	if cfg.ConnConfig.Password != "" {
		return nil, nil, errors.New("open store: the connection string holds a password; give it in PGPASSWORD or a password file (PGPASSFILE, ~/.pgpass) instead, so that it is not kept in configuration or shown in process lists")
	}
	cfg.MaxConns, cfg.MinConns = opts.MaxConns, opts.MinConns
	cfg.MaxConnLifetime, cfg.MaxConnIdleTime = opts.MaxConnLifetime, opts.MaxConnIdleTime
	cfg.ConnConfig.ConnectTimeout = opts.ConnectTimeout
	// A commit is durable before it returns, whatever the server's
	// default: an acknowledged audit entry must survive a crash.
	cfg.ConnConfig.RuntimeParams["synchronous_commit"] = "on"
	if readOnly {
		cfg.ConnConfig.RuntimeParams["default_transaction_read_only"] = "on"
	}
	cfg.ConnConfig.RuntimeParams["application_name"] = "agentgov"
	if opts.Replica != "" {
		cfg.ConnConfig.RuntimeParams["application_name"] = "agentgov " + opts.Replica
	}
	// A session the server ended (a restart, a failover, an operator's
	// pg_terminate_backend) is found out only when it is next used; the
	// server has usually ended the pool's other sessions too. The first
	// connection to find out drops them all, so that the calls after it
	// connect afresh instead of failing one by one, each with the batch of
	// decisions it carried. The replica's own connection, made from the
	// same configuration, does the same when it is the first to find out.
	var self atomic.Pointer[pgxpool.Pool]
	cfg.ConnConfig.OnPgError = func(_ *pgconn.PgConn, pe *pgconn.PgError) bool {
		if !strings.EqualFold(pe.Severity, "FATAL") {
			return true
		}
		if sessionEnded(pe) {
			if p := self.Load(); p != nil {
				p.Reset()
			}
		}
		return false // a FATAL error ends the connection, as pgx's default
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("open store: %w", err)
	}
	self.Store(pool)
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, nil, fmt.Errorf("open store: %w", err)
	}
	if err := checkSchema(ctx, pool, cfg.ConnConfig.Database); err != nil {
		pool.Close()
		return nil, nil, err
	}
	return pool, cfg.ConnConfig.Copy(), nil
}

// sessionEnded reports whether err is the server ending the session from
// outside it: an operator's command, a shutdown or a crash (SQLSTATE class
// 57P), or a connection failure (class 08).
func sessionEnded(pe *pgconn.PgError) bool {
	return strings.HasPrefix(pe.Code, "57P") || strings.HasPrefix(pe.Code, "08")
}

// checkSchema refuses a search_path none of whose schemas exists, naming
// it: PostgreSQL itself would only say "no schema has been selected to
// create in" at the first migration, or that a table does not exist.
func checkSchema(ctx context.Context, pool *pgxpool.Pool, database string) error {
	var current *string
	var path string
	if err := pool.QueryRow(ctx, `SELECT current_schema(), current_setting('search_path')`).Scan(&current, &path); err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	if current != nil {
		return nil
	}
	first, _, _ := strings.Cut(path, ",")
	first = strings.Trim(strings.TrimSpace(first), `"`)
	if first == "" || strings.HasPrefix(first, "$") {
		return fmt.Errorf("open store: no schema of the search_path (%s) exists in database %q: name an existing schema with search_path in the store URL, or create one", path, database)
	}
	return fmt.Errorf("open store: schema %q (the search_path of the store URL) does not exist in database %q: create it first, as a user allowed to, with CREATE SCHEMA %s AUTHORIZATION <the user agentgov connects as>; or name an existing schema in search_path",
		first, database, pgx.Identifier{first}.Sanitize())
}

// claim opens the replica's own connection and takes the replica id's
// advisory lock on it: the lock lasts as long as the connection.
func (db *DB) claim(ctx context.Context) error {
	conn, err := pgx.ConnectConfig(ctx, db.connCfg)
	if err != nil {
		return fmt.Errorf("open store: replica %s: %w", db.replica, err)
	}
	var ok bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, db.replicaLock).Scan(&ok); err != nil {
		conn.Close(context.Background())
		return fmt.Errorf("open store: replica %s: %w", db.replica, err)
	}
	if !ok {
		err := db.heldByOwnPast(ctx, conn)
		conn.Close(context.Background())
		return err
	}
	db.ownMu.Lock()
	db.own, db.ownDown, db.ownPID = conn, nil, conn.PgConn().PID()
	db.ownMu.Unlock()
	return nil
}

// heldByOwnPast says why the replica id could not be claimed. If the
// server process of this replica's own lost connection still holds it,
// that process is ended and the error is one to retry; if another holds
// it, the error wraps ErrReplicaInUse.
func (db *DB) heldByOwnPast(ctx context.Context, conn *pgx.Conn) error {
	db.ownMu.Lock()
	past := db.ownPID
	db.ownMu.Unlock()
	if past != 0 {
		var holder uint32
		err := conn.QueryRow(ctx, `SELECT pid FROM pg_locks
			WHERE locktype = 'advisory' AND granted AND objsubid = 1
			AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
			AND classid::bigint = ($1::bigint >> 32) & 4294967295 AND objid::bigint = $1::bigint & 4294967295`, db.replicaLock).Scan(&holder)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return fmt.Errorf("store: replica %s: the replica id was released as it was claimed; trying again", db.replica)
		case err != nil:
			return fmt.Errorf("store: replica %s: %w", db.replica, err)
		case holder == past:
			conn.Exec(ctx, `SELECT pg_terminate_backend($1)`, int64(past))
			return fmt.Errorf("store: replica %s: its lost connection (server process %d) still holds the replica id; ending it and trying again", db.replica, past)
		}
	}
	return fmt.Errorf("open store: %w: another live agentgov process is replica %s on this database; give each replica its own id (replica: in the configuration)", ErrReplicaInUse, db.replica)
}

// Replica is the id this DB was opened for.
func (db *DB) Replica() string { return db.replica }

// Ping reports whether the database answers reads of agentgov's own
// tables and the replica still holds its own connection (its id and the
// changes it listens for). A bare ping is answered by a database whose
// tables are locked (a migration, a VACUUM FULL, an operator's LOCK
// TABLE), while every decision waits on them; reading a table the
// decisions write waits with them, until ctx ends.
func (db *DB) Ping(ctx context.Context) error {
	db.ownMu.Lock()
	down := db.ownDown
	db.ownMu.Unlock()
	if down != nil {
		return fmt.Errorf("store: replica %s lost its own connection: %w", db.replica, down)
	}
	var one int
	err := db.pool.QueryRow(ctx, `SELECT 1 FROM audit_entries LIMIT 1`).Scan(&one)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("store: reading audit_entries: %w", err)
	}
	return nil
}

// Close closes the pool and the replica's own connection, which releases
// the replica id. Stop Run (cancel its context and wait for it) first:
// the connection is Run's while it runs.
func (db *DB) Close() error {
	db.ownMu.Lock()
	if db.own != nil {
		db.own.Close(context.Background())
		db.own = nil
	}
	db.ownMu.Unlock()
	db.pool.Close()
	return nil
}

// retryable reports whether a transaction failed only because it ran
// beside another one, and may simply run again.
func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01")
}

var _ store.Watcher = (*DB)(nil)

func isNoRows(err error) bool { return errors.Is(err, pgx.ErrNoRows) }
