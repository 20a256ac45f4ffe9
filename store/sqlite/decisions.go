package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// Decisions are not stored twice: the audit log holds each one whole, and an
// index on its id finds it there. What the API returns is then exactly what
// the tamper-evident log says.
//
// The indexed expression checks json_valid first: an entry whose bytes were
// tampered with must not stop the database from opening (verify has to name
// it), it simply is not found by id.
func init() {
	register("decisions",
		`DROP INDEX IF EXISTS audit_decision_id`,
		`CREATE INDEX IF NOT EXISTS audit_decision_ref ON audit_entries (`+decisionRef+`)`)
}

const decisionRef = `iif(json_valid(CAST(data AS TEXT)), json_extract(CAST(data AS TEXT), '$.record.decision.id'), NULL)`

// ErrNoDecision is returned for a decision id the log does not hold.
var ErrNoDecision = errors.New("decision not found")

// DecisionEntry returns the audit index of the decision entry with id.
func (db *DB) DecisionEntry(ctx context.Context, id string) (uint64, error) {
	var idx int64
	err := db.read.QueryRowContext(ctx,
		`SELECT idx FROM audit_entries WHERE `+decisionRef+` = ? LIMIT 1`, id).Scan(&idx)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, ErrNoDecision
	}
	if err != nil {
		return 0, fmt.Errorf("find decision %s: %w", id, err)
	}
	return uint64(idx), nil
}
