package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/agentgov/agentgov/killswitch"
)

var _ killswitch.Store = (*DB)(nil)

const switchColumns = `id, scope, target, agent, reason, engaged_by, engaged_at, released_at, released_by`

// InsertSwitch implements killswitch.Store. The table's trigger announces
// the change to every replica.
func (db *DB) InsertSwitch(ctx context.Context, s killswitch.Switch) error {
	_, err := db.pool.Exec(ctx,
		`INSERT INTO kill_switches (`+switchColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		s.ID, string(s.Scope), s.Target, s.Agent, s.Reason, s.By, toNanos(s.EngagedAt), toNanos(s.ReleasedAt), s.ReleasedBy)
	if err != nil {
		return fmt.Errorf("insert kill switch: %w", err)
	}
	return nil
}

// ReleaseSwitch implements killswitch.Store.
func (db *DB) ReleaseSwitch(ctx context.Context, id, by string, at time.Time) (bool, error) {
	tag, err := db.pool.Exec(ctx,
		`UPDATE kill_switches SET released_at = $1, released_by = $2 WHERE id = $3 AND released_at = 0`,
		toNanos(at), by, id)
	return changedOne(tag, err, "release kill switch")
}

// GetSwitch implements killswitch.Store.
func (db *DB) GetSwitch(ctx context.Context, id string) (killswitch.Switch, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+switchColumns+` FROM kill_switches WHERE id = $1`, id)
	if err != nil {
		return killswitch.Switch{}, fmt.Errorf("get kill switch: %w", err)
	}
	s, err := pgx.CollectExactlyOneRow(rows, scanSwitch)
	if errors.Is(err, pgx.ErrNoRows) {
		return killswitch.Switch{}, fmt.Errorf("%w: %s", killswitch.ErrNotFound, id)
	}
	if err != nil {
		return killswitch.Switch{}, fmt.Errorf("get kill switch: %w", err)
	}
	return s, nil
}

// ListSwitches implements killswitch.Store.
func (db *DB) ListSwitches(ctx context.Context, includeReleased bool) ([]killswitch.Switch, error) {
	q := `SELECT ` + switchColumns + ` FROM kill_switches WHERE released_at = 0 ORDER BY seq`
	if includeReleased {
		q = `SELECT ` + switchColumns + ` FROM kill_switches ORDER BY released_at <> 0, seq`
	}
	rows, err := db.pool.Query(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("list kill switches: %w", err)
	}
	out, err := pgx.CollectRows(rows, scanSwitch)
	if err != nil {
		return nil, fmt.Errorf("list kill switches: %w", err)
	}
	return out, nil
}

func scanSwitch(r pgx.CollectableRow) (killswitch.Switch, error) {
	var s killswitch.Switch
	var scope string
	var engaged, released int64
	if err := r.Scan(&s.ID, &scope, &s.Target, &s.Agent, &s.Reason, &s.By, &engaged, &released, &s.ReleasedBy); err != nil {
		return killswitch.Switch{}, err
	}
	s.Scope = killswitch.Scope(scope)
	s.EngagedAt = fromNanos(engaged)
	s.ReleasedAt = fromNanos(released)
	return s, nil
}
