package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/agentgov/agentgov/store"
)

// changesChannel is where agentgov_bump notifies, with "SCHEMA TOPIC" as
// payload.
const changesChannel = "agentgov_changes"

// watcher runs the handlers of topics whose version moved. Versions, not
// notifications, are what count: a notification only says "look now", so
// one lost with a connection delays a change by at most a poll interval.
type watcher struct {
	mu       sync.Mutex
	handlers map[store.Topic][]func(context.Context) error
	seen     map[store.Topic]int64
	running  bool
}

func (w *watcher) init() {
	w.handlers = map[store.Topic][]func(context.Context) error{}
	w.seen = map[store.Topic]int64{}
}

// start notes the versions as they are before anything is loaded into
// memory: a change after this is one Run passes on.
func (w *watcher) start(ctx context.Context, pool *pgxpool.Pool) error {
	vs, err := versions(ctx, pool)
	if err != nil {
		return fmt.Errorf("read change versions: %w", err)
	}
	w.mu.Lock()
	w.seen = vs
	w.mu.Unlock()
	return nil
}

func versions(ctx context.Context, pool *pgxpool.Pool) (map[store.Topic]int64, error) {
	rows, err := pool.Query(ctx, `SELECT topic, version FROM agentgov_changes`)
	if err != nil {
		return nil, err
	}
	out := map[store.Topic]int64{}
	var topic string
	var v int64
	_, err = pgx.ForEachRow(rows, []any{&topic, &v}, func() error {
		out[store.Topic(topic)] = v
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Watch implements store.Watcher.
func (db *DB) Watch(topic store.Topic, fn func(ctx context.Context) error) {
	db.watch.mu.Lock()
	defer db.watch.mu.Unlock()
	db.watch.handlers[topic] = append(db.watch.handlers[topic], fn)
}

// Announce implements store.Watcher: it bumps topic's version and
// notifies every replica.
func (db *DB) Announce(ctx context.Context, topic store.Topic) error {
	if _, err := db.pool.Exec(ctx, `SELECT agentgov_bump($1)`, string(topic)); err != nil {
		return fmt.Errorf("announce %s change: %w", topic, err)
	}
	return nil
}

// Sync runs the handlers of every topic whose version moved since they
// last ran, in the order of store.Topics. A handler that fails runs again
// at the next round. Run calls it; it is exported for tests and for a
// caller that must be current before it goes on.
func (db *DB) Sync(ctx context.Context) error {
	vs, err := versions(ctx, db.pool)
	if err != nil {
		return fmt.Errorf("read change versions: %w", err)
	}
	db.watch.mu.Lock()
	defer db.watch.mu.Unlock()
	var errs []error
	for _, t := range store.Topics {
		v, ok := vs[t]
		if !ok || v == db.watch.seen[t] {
			continue
		}
		failed := false
		for _, fn := range db.watch.handlers[t] {
			if err := fn(ctx); err != nil {
				errs = append(errs, fmt.Errorf("reload %s: %w", t, err))
				failed = true
			}
		}
		if !failed {
			db.watch.seen[t] = v
		}
	}
	return errors.Join(errs...)
}

// Run implements store.Watcher. It listens on the replica's own connection
// and reads the change versions at each notification and at least every
// PollInterval. When the connection is lost, Ping reports it, the versions
// are still read through the pool, and the connection is made again; if
// another process has claimed the replica id meanwhile, Run returns an
// error wrapping ErrReplicaInUse, and this process must stop.
func (db *DB) Run(ctx context.Context) error {
	db.watch.mu.Lock()
	if db.watch.running {
		db.watch.mu.Unlock()
		return errors.New("store: Run called twice")
	}
	db.watch.running = true
	db.watch.mu.Unlock()

	listening, failing := false, false
	for {
		if ctx.Err() != nil {
			return nil
		}
		if !listening {
			if err := db.listen(ctx); err != nil {
				if errors.Is(err, ErrReplicaInUse) {
					return err
				}
				if ctx.Err() != nil {
					return nil
				}
				db.lose(err)
			} else {
				listening = true
			}
		}
		if listening {
			if err := db.wait(ctx); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				db.opts.Logger.Warn("store: replica connection lost; reading changes by polling until it is back", "replica", db.replica, "err", err)
				db.lose(err)
				listening = false
			}
		} else {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(db.opts.PollInterval):
			}
		}
		// A failure is logged once, not at every poll of an outage, and
		// so is the recovery.
		switch err := db.Sync(ctx); {
		case err != nil && ctx.Err() == nil && !failing:
			failing = true
			db.opts.Logger.Error("store: applying other replicas' changes failed; retrying", "replica", db.replica, "err", err)
		case err == nil && failing:
			failing = false
			db.opts.Logger.Info("store: applying other replicas' changes again", "replica", db.replica)
		}
	}
}

// listen makes sure the replica's own connection is up, holds the replica
// lock, and listens for changes.
func (db *DB) listen(ctx context.Context) error {
	db.ownMu.Lock()
	conn := db.own
	db.ownMu.Unlock()
	if conn == nil || conn.IsClosed() {
		if err := db.claim(ctx); err != nil {
			return err
		}
		db.opts.Logger.Info("store: replica connection restored", "replica", db.replica)
		db.ownMu.Lock()
		conn = db.own
		db.ownMu.Unlock()
	}
	if _, err := conn.Exec(ctx, `LISTEN `+changesChannel); err != nil {
		return err
	}
	return nil
}

// wait waits up to a poll interval for a notification of this schema.
func (db *DB) wait(ctx context.Context) error {
	db.ownMu.Lock()
	conn := db.own
	db.ownMu.Unlock()
	if conn == nil {
		return errors.New("no connection")
	}
	deadline := time.Now().Add(db.opts.PollInterval)
	for {
		wctx, cancel := context.WithDeadline(ctx, deadline)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		if err != nil {
			if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) && !conn.IsClosed() {
				return nil // the poll interval passed
			}
			return err
		}
		if schema, _, _ := strings.Cut(n.Payload, " "); schema == db.schema {
			return nil
		}
	}
}

// lose closes the replica's own connection after a failure, so that the
// next attempt starts afresh, and records why for Ping.
func (db *DB) lose(err error) {
	db.ownMu.Lock()
	defer db.ownMu.Unlock()
	if db.own != nil {
		db.own.Close(context.Background())
		db.own = nil
	}
	db.ownDown = err
}
