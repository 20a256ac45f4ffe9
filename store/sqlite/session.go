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

func init() {
	register("session", `CREATE TABLE IF NOT EXISTS sessions (
		id         TEXT PRIMARY KEY,
		agent_id   TEXT NOT NULL,
		state      TEXT NOT NULL,
		created_at INTEGER NOT NULL,
		updated_at INTEGER NOT NULL,
		updated_by TEXT NOT NULL DEFAULT ''
	)`)
}

// InsertSession implements session.Store.
func (db *DB) InsertSession(ctx context.Context, s session.Session) (session.Session, bool, error) {
	res, err := db.write.ExecContext(ctx,
		`INSERT INTO sessions (id, agent_id, state, created_at, updated_at, updated_by)
		 VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
		s.ID, s.AgentID, string(s.State), toNanos(s.CreatedAt), toNanos(s.UpdatedAt), s.UpdatedBy)
	if err != nil {
		return session.Session{}, false, fmt.Errorf("insert session: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return session.Session{}, false, fmt.Errorf("insert session: %w", err)
	} else if n == 1 {
		return s, true, nil
	}
	// Sessions are never deleted, so the row that won is still there.
	got, err := getSession(ctx, db.write, s.ID)
	return got, false, err
}

// GetSession implements session.Store.
func (db *DB) GetSession(ctx context.Context, id string) (session.Session, error) {
	return getSession(ctx, db.read, id)
}

func getSession(ctx context.Context, q *sql.DB, id string) (session.Session, error) {
	var s session.Session
	var state string
	var created, updated int64
	err := q.QueryRowContext(ctx,
		`SELECT id, agent_id, state, created_at, updated_at, updated_by FROM sessions WHERE id = ?`, id).
		Scan(&s.ID, &s.AgentID, &state, &created, &updated, &s.UpdatedBy)
	if errors.Is(err, sql.ErrNoRows) {
		return session.Session{}, fmt.Errorf("%w: %s", session.ErrNotFound, id)
	}
	if err != nil {
		return session.Session{}, fmt.Errorf("get session: %w", err)
	}
	s.State = session.State(state)
	s.CreatedAt = fromNanos(created)
	s.UpdatedAt = fromNanos(updated)
	return s, nil
}

// UpdateSessionState implements session.Store: the WHERE on the current
// state makes the transition atomic.
func (db *DB) UpdateSessionState(ctx context.Context, id string, from, to session.State, by string, at time.Time) (bool, error) {
	res, err := db.write.ExecContext(ctx,
		`UPDATE sessions SET state = ?, updated_at = ?, updated_by = ? WHERE id = ? AND state = ?`,
		string(to), at.UnixNano(), by, id, string(from))
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
