package sqlite

import (
	"context"
	"fmt"
	"time"
)

// Each decision's outcome is recorded once: the first claim of a decision
// id wins, and the engine gives the claim back only when the outcome could
// not be recorded.
func init() {
	register("outcome", `CREATE TABLE IF NOT EXISTS outcomes (
		decision_id TEXT PRIMARY KEY,
		claimed_at  INTEGER NOT NULL
	)`)
}

// ClaimOutcome implements govern.OutcomeLedger.
func (db *DB) ClaimOutcome(ctx context.Context, decisionID string, at time.Time) (bool, error) {
	res, err := db.write.ExecContext(ctx,
		`INSERT INTO outcomes (decision_id, claimed_at) VALUES (?, ?) ON CONFLICT (decision_id) DO NOTHING`,
		decisionID, toNanos(at))
	return changedOne(res, err, "claim outcome")
}

// ReleaseOutcome implements govern.OutcomeLedger.
func (db *DB) ReleaseOutcome(ctx context.Context, decisionID string) error {
	if _, err := db.write.ExecContext(ctx, `DELETE FROM outcomes WHERE decision_id = ?`, decisionID); err != nil {
		return fmt.Errorf("release outcome: %w", err)
	}
	return nil
}
