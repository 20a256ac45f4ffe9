package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/agentgov/agentgov/store"
)

// ClaimOutcome implements govern.OutcomeLedger: the first claim of a
// decision id, from any replica, wins.
func (db *DB) ClaimOutcome(ctx context.Context, decisionID string, at time.Time) (bool, error) {
	tag, err := db.pool.Exec(ctx,
		`INSERT INTO outcomes (decision_id, claimed_at) VALUES ($1, $2) ON CONFLICT (decision_id) DO NOTHING`,
		decisionID, toNanos(at))
	return changedOne(tag, err, "claim outcome")
}

// ReleaseOutcome implements govern.OutcomeLedger.
func (db *DB) ReleaseOutcome(ctx context.Context, decisionID string) error {
	if _, err := db.pool.Exec(ctx, `DELETE FROM outcomes WHERE decision_id = $1`, decisionID); err != nil {
		return fmt.Errorf("release outcome: %w", err)
	}
	return nil
}

// IdempotencyGet implements server.Idempotency.
func (db *DB) IdempotencyGet(ctx context.Context, scope, key string) (store.Replay, bool, error) {
	var r store.Replay
	err := db.pool.QueryRow(ctx, `SELECT request, status, body FROM idempotency WHERE scope = $1 AND key = $2`, scope, key).
		Scan(&r.Request, &r.Status, &r.Body)
	if isNoRows(err) {
		return store.Replay{}, false, nil
	}
	if err != nil {
		return store.Replay{}, false, fmt.Errorf("idempotency %s: %w", key, err)
	}
	return r, true, nil
}

// IdempotencyPut implements server.Idempotency; the first answer wins.
func (db *DB) IdempotencyPut(ctx context.Context, scope, key string, r store.Replay, now time.Time) error {
	_, err := db.pool.Exec(ctx, `INSERT INTO idempotency (scope, key, request, status, body, created) VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (scope, key) DO NOTHING`, scope, key, r.Request, r.Status, r.Body, now.UnixMilli())
	if err != nil {
		return fmt.Errorf("idempotency %s: %w", key, err)
	}
	return nil
}
