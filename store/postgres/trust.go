package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/agentgov/agentgov/trust"
)

var _ trust.Store = (*DB)(nil)

// schemaTrust keeps trust scores, the events that moved them and ring
// elevations. Changes are announced on topic "trust" by the transactions
// that make them.
const schemaTrust = `
INSERT INTO agentgov_changes (topic) VALUES ('trust') ON CONFLICT DO NOTHING;
CREATE TABLE trust_scores (
	agent      text PRIMARY KEY,
	score      integer NOT NULL CHECK (score BETWEEN 0 AND 1000),
	streak     integer NOT NULL DEFAULT 0,
	risen      integer NOT NULL DEFAULT 0,
	rise_window bigint NOT NULL DEFAULT 0,
	updated_at bigint NOT NULL,
	decayed_at bigint NOT NULL
);
CREATE TABLE trust_events (
	seq      bigserial PRIMARY KEY,
	agent    text NOT NULL,
	at       bigint NOT NULL,
	kind     text NOT NULL,
	delta    integer NOT NULL,
	decision text NOT NULL DEFAULT '',
	detail   text NOT NULL DEFAULT '',
	score    integer NOT NULL
);
CREATE INDEX trust_events_agent ON trust_events (agent, seq);
CREATE TABLE ring_elevations (
	ticket     text PRIMARY KEY,
	agent      text NOT NULL,
	ring       integer NOT NULL,
	until      bigint NOT NULL,
	floor      text NOT NULL,
	reason     text NOT NULL,
	granted_by text NOT NULL,
	granted_at bigint NOT NULL,
	ended_at   bigint NOT NULL DEFAULT 0,
	ended      text NOT NULL DEFAULT ''
);
CREATE TRIGGER ring_elevations_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON ring_elevations
	FOR EACH STATEMENT EXECUTE FUNCTION agentgov_changed('trust');
`

// ApplyTrust implements trust.Store: the row is locked, and moved by
// arithmetic in SQL, so that replicas applying events to one agent at the
// same time add up.
func (db *DB) ApplyTrust(ctx context.Context, a trust.Adjustment) (trust.Moved, error) {
	var m trust.Moved
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		at := toNanos(a.At)
		if _, err := tx.Exec(ctx, `INSERT INTO trust_scores (agent, score, streak, updated_at, decayed_at) VALUES ($1, $2, 0, $3, $3) ON CONFLICT (agent) DO NOTHING`,
			a.Agent, a.Initial, at); err != nil {
			return err
		}
		var oldStreak, risen int
		var window int64
		if err := tx.QueryRow(ctx, `SELECT score, streak, risen, rise_window FROM trust_scores WHERE agent = $1 FOR UPDATE`, a.Agent).Scan(&m.From, &oldStreak, &risen, &window); err != nil {
			return err
		}
		// The bonus follows from the streak read under the row lock; the
		// update moves the stored values by arithmetic in SQL.
		m.Bonus = trust.StreakBonus(oldStreak, a)
		rise := a.Rise + m.Bonus
		win := toNanos(a.Window)
		if window != win {
			risen = 0
		}
		m.Withheld = rise - trust.Allowed(rise, risen, a.RiseCap)
		if err := tx.QueryRow(ctx, `UPDATE trust_scores SET
				score = LEAST(1000, GREATEST(0, score + $1::int + (CASE WHEN $3::int <= 0 THEN $2::int ELSE GREATEST(0, LEAST($2::int, $3::int - (CASE WHEN rise_window = $4::bigint THEN risen ELSE 0 END))) END))),
				risen = (CASE WHEN rise_window = $4::bigint THEN risen ELSE 0 END) + (CASE WHEN $3::int <= 0 THEN $2::int ELSE GREATEST(0, LEAST($2::int, $3::int - (CASE WHEN rise_window = $4::bigint THEN risen ELSE 0 END))) END),
				rise_window = $4::bigint,
				streak = (CASE WHEN $5::bool THEN 0 ELSE streak END) + $6::int,
				updated_at = $7
			WHERE agent = $8 RETURNING score, streak`,
			a.Delta, rise, a.RiseCap, win, a.Reset, a.Clean, at, a.Agent).Scan(&m.To, &m.Streak); err != nil {
			return err
		}
		m.Agent = a.Agent
		if err := insertTrustEvents(ctx, tx, a.Agent, trust.AppliedEvents(a, m), m.To); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `SELECT agentgov_bump('trust')`)
		return err
	})
	if err != nil {
		return trust.Moved{}, fmt.Errorf("apply trust: %w", err)
	}
	return m, nil
}

func insertTrustEvents(ctx context.Context, tx pgx.Tx, agent string, evs []trust.Event, score int) error {
	if len(evs) == 0 {
		return nil
	}
	for _, e := range evs {
		if _, err := tx.Exec(ctx, `INSERT INTO trust_events (agent, at, kind, delta, decision, detail, score) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			agent, toNanos(e.At), e.Kind, e.Delta, e.Decision, e.Detail, score); err != nil {
			return err
		}
	}
	_, err := tx.Exec(ctx, `DELETE FROM trust_events WHERE agent = $1 AND seq <= (
		SELECT seq FROM trust_events WHERE agent = $1 ORDER BY seq DESC LIMIT 1 OFFSET $2)`, agent, trust.KeptEvents)
	return err
}

// DecayTrust implements trust.Store.
func (db *DB) DecayTrust(ctx context.Context, initial, step int, before, at time.Time) ([]trust.Moved, error) {
	var out []trust.Moved
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT agent, score FROM trust_scores WHERE decayed_at <= $1 AND score <> $2 ORDER BY agent FOR UPDATE`, toNanos(before), initial)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (trust.Moved, error) {
			var m trust.Moved
			return m, r.Scan(&m.Agent, &m.From)
		})
		if err != nil {
			return err
		}
		for i := range out {
			m := &out[i]
			if err := tx.QueryRow(ctx, `UPDATE trust_scores SET
					score = CASE WHEN score > $1::int THEN GREATEST($1::int, score - $2::int) ELSE LEAST($1::int, score + $2::int) END,
					decayed_at = $3
				WHERE agent = $4 RETURNING score, streak`, initial, step, toNanos(at), m.Agent).Scan(&m.To, &m.Streak); err != nil {
				return err
			}
			if err := insertTrustEvents(ctx, tx, m.Agent, []trust.Event{{At: at, Kind: trust.KindDecay, Delta: m.To - m.From}}, m.To); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, `UPDATE trust_scores SET decayed_at = $1 WHERE decayed_at <= $2`, toNanos(at), toNanos(before)); err != nil {
			return err
		}
		if len(out) > 0 {
			_, err = tx.Exec(ctx, `SELECT agentgov_bump('trust')`)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("decay trust: %w", err)
	}
	return out, nil
}

// TrustScores implements trust.Store.
func (db *DB) TrustScores(ctx context.Context) ([]trust.Score, error) {
	rows, err := db.pool.Query(ctx, `SELECT agent, score, streak, updated_at FROM trust_scores ORDER BY agent`)
	if err != nil {
		return nil, fmt.Errorf("trust scores: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (trust.Score, error) {
		var s trust.Score
		var at int64
		err := r.Scan(&s.Agent, &s.Score, &s.Streak, &at)
		s.UpdatedAt = fromNanos(at)
		return s, err
	})
	if err != nil {
		return nil, fmt.Errorf("trust scores: %w", err)
	}
	return out, nil
}

// TrustEvents implements trust.Store.
func (db *DB) TrustEvents(ctx context.Context, agent string, limit int) ([]trust.Event, error) {
	rows, err := db.pool.Query(ctx, `SELECT at, kind, delta, decision, detail, score FROM trust_events WHERE agent = $1 ORDER BY seq DESC LIMIT $2`, agent, limit)
	if err != nil {
		return nil, fmt.Errorf("trust events: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (trust.Event, error) {
		var e trust.Event
		var at int64
		err := r.Scan(&at, &e.Kind, &e.Delta, &e.Decision, &e.Detail, &e.Score)
		e.At = fromNanos(at)
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("trust events: %w", err)
	}
	return out, nil
}

// PutElevation implements trust.Store.
func (db *DB) PutElevation(ctx context.Context, e trust.Elevation) error {
	_, err := db.pool.Exec(ctx, `INSERT INTO ring_elevations (ticket, agent, ring, until, floor, reason, granted_by, granted_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		e.Ticket, e.Agent, e.Ring, toNanos(e.Until), string(e.Floor), e.Reason, e.By, toNanos(e.GrantedAt))
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" {
		return fmt.Errorf("%w: ticket %s granted an elevation already", trust.ErrConflict, e.Ticket)
	}
	if err != nil {
		return fmt.Errorf("put elevation: %w", err)
	}
	return nil
}

// Elevations implements trust.Store.
func (db *DB) Elevations(ctx context.Context) ([]trust.Elevation, error) {
	rows, err := db.pool.Query(ctx, `SELECT ticket, agent, ring, until, floor, reason, granted_by, granted_at FROM ring_elevations WHERE ended_at = 0 ORDER BY granted_at, ticket`)
	if err != nil {
		return nil, fmt.Errorf("elevations: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (trust.Elevation, error) {
		var e trust.Elevation
		var until, at int64
		var floor string
		err := r.Scan(&e.Ticket, &e.Agent, &e.Ring, &until, &floor, &e.Reason, &e.By, &at)
		e.Until, e.GrantedAt, e.Floor = fromNanos(until), fromNanos(at), trust.Tier(floor)
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("elevations: %w", err)
	}
	return out, nil
}

// EndElevation implements trust.Store.
func (db *DB) EndElevation(ctx context.Context, ticket string, at time.Time, why string) (bool, error) {
	tag, err := db.pool.Exec(ctx, `UPDATE ring_elevations SET ended_at = $1, ended = $2 WHERE ticket = $3 AND ended_at = 0`, toNanos(at), why, ticket)
	return changedOne(tag, err, "end elevation")
}
