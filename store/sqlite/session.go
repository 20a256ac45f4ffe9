package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/agentgov/agentgov/session"
)

var _ session.Store = (*DB)(nil)

// Sessions live in agent_sessions, keyed by agent and id together, which
// replaced the sessions table (keyed by id alone, so that one agent's id
// could shut out, or reveal, another's). Rows of the old table are carried
// over; every statement is idempotent.
func init() {
	register("session",
		`CREATE TABLE IF NOT EXISTS agent_sessions (
			agent_id      TEXT NOT NULL,
			id            TEXT NOT NULL,
			state         TEXT NOT NULL,
			operator_hold INTEGER NOT NULL DEFAULT 0,
			created_at    INTEGER NOT NULL,
			updated_at    INTEGER NOT NULL,
			updated_by    TEXT NOT NULL DEFAULT '',
			PRIMARY KEY (agent_id, id)
		)`,
		`CREATE INDEX IF NOT EXISTS agent_sessions_id ON agent_sessions (id)`,
		`CREATE TABLE IF NOT EXISTS sessions (
			id TEXT PRIMARY KEY, agent_id TEXT NOT NULL, state TEXT NOT NULL,
			created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, updated_by TEXT NOT NULL DEFAULT '')`,
		`INSERT OR IGNORE INTO agent_sessions (agent_id, id, state, created_at, updated_at, updated_by)
		 SELECT agent_id, id, state, created_at, updated_at, updated_by FROM sessions`,
		`DROP TABLE sessions`)
}

const sessionColumns = `agent_id, id, state, operator_hold, created_at, updated_at, updated_by`

// InsertSession implements session.Store.
func (db *DB) InsertSession(ctx context.Context, s session.Session) (session.Session, bool, error) {
	res, err := db.write.ExecContext(ctx,
		`INSERT INTO agent_sessions (`+sessionColumns+`)
		 VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (agent_id, id) DO NOTHING`,
		s.AgentID, s.ID, string(s.State), s.OperatorHold, toNanos(s.CreatedAt), toNanos(s.UpdatedAt), s.UpdatedBy)
	if err != nil {
		return session.Session{}, false, fmt.Errorf("insert session: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return session.Session{}, false, fmt.Errorf("insert session: %w", err)
	} else if n == 1 {
		return s, true, nil
	}
	// Sessions are never deleted, so the row that won is still there.
	got, err := getSession(ctx, db.write, s.AgentID, s.ID)
	return got, false, err
}

// GetSession implements session.Store.
func (db *DB) GetSession(ctx context.Context, agentID, id string) (session.Session, error) {
	return getSession(ctx, db.read, agentID, id)
}

func getSession(ctx context.Context, q *sql.DB, agentID, id string) (session.Session, error) {
	s, err := scanSession(q.QueryRowContext(ctx,
		`SELECT `+sessionColumns+` FROM agent_sessions WHERE agent_id = ? AND id = ?`, agentID, id))
	if errors.Is(err, sql.ErrNoRows) {
		return session.Session{}, fmt.Errorf("%w: %s", session.ErrNotFound, id)
	}
	if err != nil {
		return session.Session{}, fmt.Errorf("get session: %w", err)
	}
	return s, nil
}

// FindSessions implements session.Store.
func (db *DB) FindSessions(ctx context.Context, id string) ([]session.Session, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT `+sessionColumns+` FROM agent_sessions WHERE id = ? ORDER BY agent_id`, id)
	if err != nil {
		return nil, fmt.Errorf("find sessions: %w", err)
	}
	defer rows.Close()
	var out []session.Session
	for rows.Next() {
		s, err := scanSession(rows)
		if err != nil {
			return nil, fmt.Errorf("find sessions: %w", err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("find sessions: %w", err)
	}
	return out, nil
}

func scanSession(r interface{ Scan(...any) error }) (session.Session, error) {
	var s session.Session
	var state string
	var created, updated int64
	if err := r.Scan(&s.AgentID, &s.ID, &state, &s.OperatorHold, &created, &updated, &s.UpdatedBy); err != nil {
		return session.Session{}, err
	}
	s.State = session.State(state)
	s.CreatedAt = fromNanos(created)
	s.UpdatedAt = fromNanos(updated)
	return s, nil
}

// UpdateSession implements session.Store: the WHERE on the current state
// and hold makes the transition atomic.
func (db *DB) UpdateSession(ctx context.Context, from, to session.Session) (bool, error) {
	res, err := db.write.ExecContext(ctx,
		`UPDATE agent_sessions SET state = ?, operator_hold = ?, updated_at = ?, updated_by = ?
		 WHERE agent_id = ? AND id = ? AND state = ? AND operator_hold = ?`,
		string(to.State), to.OperatorHold, toNanos(to.UpdatedAt), to.UpdatedBy, from.AgentID, from.ID, string(from.State), from.OperatorHold)
	if err != nil {
		return false, fmt.Errorf("update session: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("update session: %w", err)
	}
	return n == 1, nil
}

// fromNanos turns a stored Unix nanosecond time back into a UTC time; zero
// stands for "never".
func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// toNanos stores the zero time as 0, so that "never" survives a round trip.
func toNanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}
