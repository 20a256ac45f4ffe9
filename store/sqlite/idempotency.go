package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/agentgov/agentgov/store"
)

func init() {
	register("idempotency",
		`CREATE TABLE IF NOT EXISTS idempotency (
			scope   TEXT NOT NULL,
			key     TEXT NOT NULL,
			request TEXT NOT NULL,
			status  INTEGER NOT NULL,
			body    BLOB NOT NULL,
			created INTEGER NOT NULL,
			PRIMARY KEY (scope, key)
		) WITHOUT ROWID`)
}

// IdempotencyGet returns the stored answer for (scope, key), or ok=false.
func (db *DB) IdempotencyGet(ctx context.Context, scope, key string) (store.Replay, bool, error) {
	var r store.Replay
	err := db.read.QueryRowContext(ctx, `SELECT request, status, body FROM idempotency WHERE scope = ? AND key = ?`, scope, key).Scan(&r.Request, &r.Status, &r.Body)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Replay{}, false, nil
	}
	if err != nil {
		return store.Replay{}, false, fmt.Errorf("idempotency %s: %w", key, err)
	}
	return r, true, nil
}

// IdempotencyPut stores the answer for (scope, key); the first answer wins.
func (db *DB) IdempotencyPut(ctx context.Context, scope, key string, r store.Replay, now time.Time) error {
	_, err := db.write.ExecContext(ctx, `INSERT INTO idempotency (scope, key, request, status, body, created) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (scope, key) DO NOTHING`, scope, key, r.Request, r.Status, r.Body, now.UnixMilli())
	if err != nil {
		return fmt.Errorf("idempotency %s: %w", key, err)
	}
	return nil
}
