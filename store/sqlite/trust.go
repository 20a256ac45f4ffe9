package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/agentgov/agentgov/trust"
)

var _ trust.Store = (*DB)(nil)

func init() {
	register("trust",
		`CREATE TABLE IF NOT EXISTS trust_scores (
			agent      TEXT PRIMARY KEY,
			score      INTEGER NOT NULL,
			streak     INTEGER NOT NULL DEFAULT 0,
			risen      INTEGER NOT NULL DEFAULT 0,
			rise_window INTEGER NOT NULL DEFAULT 0,
			updated_at INTEGER NOT NULL,
			decayed_at INTEGER NOT NULL
		)`,
		`CREATE TABLE IF NOT EXISTS trust_events (
			seq      INTEGER PRIMARY KEY AUTOINCREMENT,
			agent    TEXT NOT NULL,
			at       INTEGER NOT NULL,
			kind     TEXT NOT NULL,
			delta    INTEGER NOT NULL,
			decision TEXT NOT NULL DEFAULT '',
			detail   TEXT NOT NULL DEFAULT '',
			score    INTEGER NOT NULL
		)`,
		`CREATE INDEX IF NOT EXISTS trust_events_agent ON trust_events (agent, seq)`,
		`CREATE TABLE IF NOT EXISTS ring_elevations (
			ticket     TEXT PRIMARY KEY,
			agent      TEXT NOT NULL,
			ring       INTEGER NOT NULL,
			until      INTEGER NOT NULL,
			floor      TEXT NOT NULL,
			reason     TEXT NOT NULL,
			granted_by TEXT NOT NULL,
			granted_at INTEGER NOT NULL,
			ended_at   INTEGER NOT NULL DEFAULT 0,
			ended      TEXT NOT NULL DEFAULT ''
		)`)
}

// ApplyTrust implements trust.Store. The write connection is the only
// writer, and the transaction holds it: the score read and the update that
// moves it by arithmetic in SQL are one step.
func (db *DB) ApplyTrust(ctx context.Context, a trust.Adjustment) (trust.Moved, error) {
	var m trust.Moved
	err := db.trustTx(ctx, func(tx *sql.Tx) error {
		at := toNanos(a.At)
		if _, err := tx.ExecContext(ctx, `INSERT INTO trust_scores (agent, score, streak, updated_at, decayed_at) VALUES (?, ?, 0, ?, ?) ON CONFLICT (agent) DO NOTHING`,
			a.Agent, a.Initial, at, at); err != nil {
			return err
		}
		var oldStreak, risen int
		var window int64
		if err := tx.QueryRowContext(ctx, `SELECT score, streak, risen, rise_window FROM trust_scores WHERE agent = ?`, a.Agent).Scan(&m.From, &oldStreak, &risen, &window); err != nil {
			return err
		}
		// The bonus follows from the streak read under the write lock; the
		// update moves the stored values by arithmetic in SQL.
		m.Bonus = trust.StreakBonus(oldStreak, a)
		rise := a.Rise + m.Bonus
		win := toNanos(a.Window)
		if window != win {
			risen = 0
		}
		m.Withheld = rise - trust.Allowed(rise, risen, a.RiseCap)
		if err := tx.QueryRowContext(ctx, `UPDATE trust_scores SET
				score = MIN(1000, MAX(0, score + ?1 + (CASE WHEN ?3 <= 0 THEN ?2 ELSE MAX(0, MIN(?2, ?3 - (CASE WHEN rise_window = ?4 THEN risen ELSE 0 END))) END))),
				risen = (CASE WHEN rise_window = ?4 THEN risen ELSE 0 END) + (CASE WHEN ?3 <= 0 THEN ?2 ELSE MAX(0, MIN(?2, ?3 - (CASE WHEN rise_window = ?4 THEN risen ELSE 0 END))) END),
				rise_window = ?4,
				streak = (CASE WHEN ?5 THEN 0 ELSE streak END) + ?6,
				updated_at = ?7
			WHERE agent = ?8 RETURNING score, streak`,
			a.Delta, rise, a.RiseCap, win, a.Reset, a.Clean, at, a.Agent).Scan(&m.To, &m.Streak); err != nil {
			return err
		}
		m.Agent = a.Agent
		return insertTrustEvents(ctx, tx, a.Agent, trust.AppliedEvents(a, m), m.To)
	})
	if err != nil {
		return trust.Moved{}, fmt.Errorf("apply trust: %w", err)
	}
	return m, nil
}

func insertTrustEvents(ctx context.Context, tx *sql.Tx, agent string, evs []trust.Event, score int) error {
	for _, e := range evs {
		if _, err := tx.ExecContext(ctx, `INSERT INTO trust_events (agent, at, kind, delta, decision, detail, score) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			agent, toNanos(e.At), e.Kind, e.Delta, e.Decision, e.Detail, score); err != nil {
			return err
		}
	}
	if len(evs) == 0 {
		return nil
	}
	_, err := tx.ExecContext(ctx, `DELETE FROM trust_events WHERE agent = ?1 AND seq <= (
		SELECT seq FROM trust_events WHERE agent = ?1 ORDER BY seq DESC LIMIT 1 OFFSET ?2)`, agent, trust.KeptEvents)
	return err
}

// DecayTrust implements trust.Store.
func (db *DB) DecayTrust(ctx context.Context, initial, step int, before, at time.Time) ([]trust.Moved, error) {
	var out []trust.Moved
	err := db.trustTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT agent, score FROM trust_scores WHERE decayed_at <= ? AND score <> ? ORDER BY agent`, toNanos(before), initial)
		if err != nil {
			return err
		}
		for rows.Next() {
			var m trust.Moved
			if err := rows.Scan(&m.Agent, &m.From); err != nil {
				rows.Close()
				return err
			}
			out = append(out, m)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for i := range out {
			m := &out[i]
			if err := tx.QueryRowContext(ctx, `UPDATE trust_scores SET
					score = CASE WHEN score > ?1 THEN MAX(?1, score - ?2) ELSE MIN(?1, score + ?2) END,
					decayed_at = ?3
				WHERE agent = ?4 RETURNING score, streak`, initial, step, toNanos(at), m.Agent).Scan(&m.To, &m.Streak); err != nil {
				return err
			}
			if err := insertTrustEvents(ctx, tx, m.Agent, []trust.Event{{At: at, Kind: trust.KindDecay, Delta: m.To - m.From}}, m.To); err != nil {
				return err
			}
		}
		_, err = tx.ExecContext(ctx, `UPDATE trust_scores SET decayed_at = ? WHERE decayed_at <= ?`, toNanos(at), toNanos(before))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("decay trust: %w", err)
	}
	return out, nil
}

// TrustScores implements trust.Store.
func (db *DB) TrustScores(ctx context.Context) ([]trust.Score, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT agent, score, streak, updated_at FROM trust_scores ORDER BY agent`)
	if err != nil {
		return nil, fmt.Errorf("trust scores: %w", err)
	}
	defer rows.Close()
	var out []trust.Score
	for rows.Next() {
		var s trust.Score
		var at int64
		if err := rows.Scan(&s.Agent, &s.Score, &s.Streak, &at); err != nil {
			return nil, fmt.Errorf("trust scores: %w", err)
		}
		s.UpdatedAt = fromNanos(at)
		out = append(out, s)
	}
	return out, rows.Err()
}

// TrustEvents implements trust.Store.
func (db *DB) TrustEvents(ctx context.Context, agent string, limit int) ([]trust.Event, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT at, kind, delta, decision, detail, score FROM trust_events WHERE agent = ? ORDER BY seq DESC LIMIT ?`, agent, limit)
	if err != nil {
		return nil, fmt.Errorf("trust events: %w", err)
	}
	defer rows.Close()
	var out []trust.Event
	for rows.Next() {
		var e trust.Event
		var at int64
		if err := rows.Scan(&at, &e.Kind, &e.Delta, &e.Decision, &e.Detail, &e.Score); err != nil {
			return nil, fmt.Errorf("trust events: %w", err)
		}
		e.At = fromNanos(at)
		out = append(out, e)
	}
	return out, rows.Err()
}

// PutElevation implements trust.Store.
func (db *DB) PutElevation(ctx context.Context, e trust.Elevation) error {
	_, err := db.write.ExecContext(ctx, `INSERT INTO ring_elevations (ticket, agent, ring, until, floor, reason, granted_by, granted_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		e.Ticket, e.Agent, e.Ring, toNanos(e.Until), string(e.Floor), e.Reason, e.By, toNanos(e.GrantedAt))
	if err != nil && strings.Contains(err.Error(), "UNIQUE") {
		return fmt.Errorf("%w: ticket %s granted an elevation already", trust.ErrConflict, e.Ticket)
	}
	if err != nil {
		return fmt.Errorf("put elevation: %w", err)
	}
	return nil
}

// Elevations implements trust.Store.
func (db *DB) Elevations(ctx context.Context) ([]trust.Elevation, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT ticket, agent, ring, until, floor, reason, granted_by, granted_at FROM ring_elevations WHERE ended_at = 0 ORDER BY granted_at, ticket`)
	if err != nil {
		return nil, fmt.Errorf("elevations: %w", err)
	}
	defer rows.Close()
	var out []trust.Elevation
	for rows.Next() {
		var e trust.Elevation
		var until, at int64
		var floor string
		if err := rows.Scan(&e.Ticket, &e.Agent, &e.Ring, &until, &floor, &e.Reason, &e.By, &at); err != nil {
			return nil, fmt.Errorf("elevations: %w", err)
		}
		e.Until, e.GrantedAt, e.Floor = fromNanos(until), fromNanos(at), trust.Tier(floor)
		out = append(out, e)
	}
	return out, rows.Err()
}

// EndElevation implements trust.Store.
func (db *DB) EndElevation(ctx context.Context, ticket string, at time.Time, why string) (bool, error) {
	res, err := db.write.ExecContext(ctx, `UPDATE ring_elevations SET ended_at = ?, ended = ? WHERE ticket = ? AND ended_at = 0`, toNanos(at), why, ticket)
	if err != nil {
		return false, fmt.Errorf("end elevation: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("end elevation: %w", err)
	}
	return n == 1, nil
}

// trustTx runs fn in a transaction on the write connection.
func (db *DB) trustTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		return errors.Join(err, tx.Rollback())
	}
	return tx.Commit()
}
