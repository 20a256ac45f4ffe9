package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/agentgov/agentgov/session"
)

var (
	_ session.Store      = (*DB)(nil)
	_ session.ChangeFeed = (*DB)(nil)
)

const sessionColumns = `agent_id, id, state, operator_hold, created_at, updated_at, updated_by, version`

// InsertSession implements session.Store. The version is the database's.
func (db *DB) InsertSession(ctx context.Context, s session.Session) (session.Session, bool, error) {
	var v int64
	err := db.pool.QueryRow(ctx,
		`INSERT INTO agent_sessions (agent_id, id, state, operator_hold, created_at, updated_at, updated_by)
		 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (agent_id, id) DO NOTHING RETURNING version`,
		s.AgentID, s.ID, string(s.State), s.OperatorHold, toNanos(s.CreatedAt), toNanos(s.UpdatedAt), s.UpdatedBy).Scan(&v)
	switch {
	case err == nil:
		s.Version = uint64(v)
		return s, true, nil
	case !errors.Is(err, pgx.ErrNoRows):
		return session.Session{}, false, fmt.Errorf("insert session: %w", err)
	}
	// Sessions are never deleted, so the row that won is still there.
	got, err := db.GetSession(ctx, s.AgentID, s.ID)
	return got, false, err
}

// GetSession implements session.Store.
func (db *DB) GetSession(ctx context.Context, agentID, id string) (session.Session, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+sessionColumns+` FROM agent_sessions WHERE agent_id = $1 AND id = $2`, agentID, id)
	if err != nil {
		return session.Session{}, fmt.Errorf("get session: %w", err)
	}
	s, err := pgx.CollectExactlyOneRow(rows, scanSession)
	if errors.Is(err, pgx.ErrNoRows) {
		return session.Session{}, fmt.Errorf("%w: %s", session.ErrNotFound, id)
	}
	if err != nil {
		return session.Session{}, fmt.Errorf("get session: %w", err)
	}
	return s, nil
}

// FindSessions implements session.Store.
func (db *DB) FindSessions(ctx context.Context, id string) ([]session.Session, error) {
	return db.sessions(ctx, "find sessions", `SELECT `+sessionColumns+` FROM agent_sessions WHERE id = $1 ORDER BY agent_id`, id)
}

func (db *DB) sessions(ctx context.Context, what, q string, args ...any) ([]session.Session, error) {
	rows, err := db.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	out, err := pgx.CollectRows(rows, scanSession)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}

// UpdateSession implements session.Store: the WHERE on the current state
// and hold makes the transition atomic across replicas.
func (db *DB) UpdateSession(ctx context.Context, from, to session.Session) (bool, error) {
	tag, err := db.pool.Exec(ctx,
		`UPDATE agent_sessions SET state = $1, operator_hold = $2, updated_at = $3, updated_by = $4
		 WHERE agent_id = $5 AND id = $6 AND state = $7 AND operator_hold = $8`,
		string(to.State), to.OperatorHold, toNanos(to.UpdatedAt), to.UpdatedBy, from.AgentID, from.ID, string(from.State), from.OperatorHold)
	return changedOne(tag, err, "update session")
}

// SessionVersion implements session.ChangeFeed: the session topic's
// version, which no session's exceeds.
func (db *DB) SessionVersion(ctx context.Context) (uint64, error) {
	var v int64
	if err := db.pool.QueryRow(ctx, `SELECT version FROM agentgov_changes WHERE topic = 'session'`).Scan(&v); err != nil {
		return 0, fmt.Errorf("session version: %w", err)
	}
	return uint64(v), nil
}

// SessionsChangedAfter implements session.ChangeFeed.
func (db *DB) SessionsChangedAfter(ctx context.Context, after uint64, limit int) ([]session.Session, error) {
	return db.sessions(ctx, "changed sessions",
		`SELECT `+sessionColumns+` FROM agent_sessions WHERE version > $1 ORDER BY version LIMIT $2`, int64(after), limit)
}

func scanSession(r pgx.CollectableRow) (session.Session, error) {
	var s session.Session
	var state string
	var created, updated, version int64
	if err := r.Scan(&s.AgentID, &s.ID, &state, &s.OperatorHold, &created, &updated, &s.UpdatedBy, &version); err != nil {
		return session.Session{}, err
	}
	s.State = session.State(state)
	s.CreatedAt = fromNanos(created)
	s.UpdatedAt = fromNanos(updated)
	s.Version = uint64(version)
	return s, nil
}
