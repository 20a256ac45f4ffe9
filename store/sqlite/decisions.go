package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/agentgov/agentgov/store"
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

// FindDecision returns the audit entry of the decision with id; the data
// directory's one log is named "".
func (db *DB) FindDecision(ctx context.Context, id string) (store.Decision, error) {
	var idx int64
	var data []byte
	err := db.read.QueryRowContext(ctx,
		`SELECT idx, data FROM audit_entries WHERE `+decisionRef+` = ? ORDER BY idx LIMIT 1`, id).Scan(&idx, &data)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Decision{}, fmt.Errorf("%w: %s", store.ErrNoDecision, id)
	}
	if err != nil {
		return store.Decision{}, fmt.Errorf("find decision %s: %w", id, err)
	}
	if idx < 0 {
		return store.Decision{}, fmt.Errorf("find decision %s: negative index %d", id, idx)
	}
	return store.Decision{Index: uint64(idx), Data: data}, nil
}
