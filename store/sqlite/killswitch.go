package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/agentgov/agentgov/killswitch"
)

var _ killswitch.Store = (*DB)(nil)

// Switches live in kill_switches_v2, which replaced kill_switches when a
// session switch came to name its agent (session ids are per agent). Rows
// of the old table are carried over with no agent, so that a session switch
// engaged before still stops that session id for every agent. Every
// statement is idempotent.
func init() {
	register("killswitch",
		`CREATE TABLE IF NOT EXISTS kill_switches_v2 (
			seq         INTEGER PRIMARY KEY AUTOINCREMENT,
			id          TEXT NOT NULL UNIQUE,
			scope       TEXT NOT NULL,
			target      TEXT NOT NULL,
			agent       TEXT NOT NULL DEFAULT '',
			reason      TEXT NOT NULL,
			engaged_by  TEXT NOT NULL,
			engaged_at  INTEGER NOT NULL,
			released_at INTEGER NOT NULL DEFAULT 0,
			released_by TEXT NOT NULL DEFAULT ''
		)`,
		`CREATE INDEX IF NOT EXISTS kill_switches_v2_engaged ON kill_switches_v2 (released_at, seq)`,
		`CREATE TABLE IF NOT EXISTS kill_switches (
			seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, scope TEXT NOT NULL, target TEXT NOT NULL,
			reason TEXT NOT NULL, engaged_by TEXT NOT NULL, engaged_at INTEGER NOT NULL,
			released_at INTEGER NOT NULL DEFAULT 0, released_by TEXT NOT NULL DEFAULT '')`,
		`INSERT OR IGNORE INTO kill_switches_v2 (`+switchColumns+`)
		 SELECT id, scope, target, '', reason, engaged_by, engaged_at, released_at, released_by FROM kill_switches ORDER BY seq`,
		`DROP TABLE kill_switches`)
}

const switchColumns = `id, scope, target, agent, reason, engaged_by, engaged_at, released_at, released_by`

// InsertSwitch implements killswitch.Store.
func (db *DB) InsertSwitch(ctx context.Context, s killswitch.Switch) error {
	_, err := db.write.ExecContext(ctx,
		`INSERT INTO kill_switches_v2 (`+switchColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		s.ID, string(s.Scope), s.Target, s.Agent, s.Reason, s.By, toNanos(s.EngagedAt), toNanos(s.ReleasedAt), s.ReleasedBy)
	if err != nil {
		return fmt.Errorf("insert kill switch: %w", err)
	}
	return nil
}

// ReleaseSwitch implements killswitch.Store.
func (db *DB) ReleaseSwitch(ctx context.Context, id, by string, at time.Time) (bool, error) {
	res, err := db.write.ExecContext(ctx,
		`UPDATE kill_switches_v2 SET released_at = ?, released_by = ? WHERE id = ? AND released_at = 0`,
		toNanos(at), by, id)
	if err != nil {
		return false, fmt.Errorf("release kill switch: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("release kill switch: %w", err)
	}
	return n == 1, nil
}

// GetSwitch implements killswitch.Store.
func (db *DB) GetSwitch(ctx context.Context, id string) (killswitch.Switch, error) {
	s, err := scanSwitch(db.read.QueryRowContext(ctx, `SELECT `+switchColumns+` FROM kill_switches_v2 WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return killswitch.Switch{}, fmt.Errorf("%w: %s", killswitch.ErrNotFound, id)
	}
	if err != nil {
		return killswitch.Switch{}, fmt.Errorf("get kill switch: %w", err)
	}
	return s, nil
}

// ListSwitches implements killswitch.Store.
func (db *DB) ListSwitches(ctx context.Context, includeReleased bool) ([]killswitch.Switch, error) {
	q := `SELECT ` + switchColumns + ` FROM kill_switches_v2 WHERE released_at = 0 ORDER BY seq`
	if includeReleased {
		q = `SELECT ` + switchColumns + ` FROM kill_switches_v2 ORDER BY released_at <> 0, seq`
	}
	rows, err := db.read.QueryContext(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("list kill switches: %w", err)
	}
	defer rows.Close()
	var out []killswitch.Switch
	for rows.Next() {
		s, err := scanSwitch(rows)
		if err != nil {
			return nil, fmt.Errorf("list kill switches: %w", err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list kill switches: %w", err)
	}
	return out, nil
}

func scanSwitch(r interface{ Scan(...any) error }) (killswitch.Switch, error) {
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
