package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/agentgov/agentgov/identity"
)

var _ identity.Store = (*DB)(nil)

// The agent registry, the JWT ids seen (until they expire) and the
// delegations issued (by the hash of their token).
func init() {
	register("identity",
		`CREATE TABLE IF NOT EXISTS identity_agents (
			id         TEXT PRIMARY KEY,
			spiffe_id  TEXT NOT NULL DEFAULT '',
			record     TEXT NOT NULL,
			revoked_at INTEGER NOT NULL DEFAULT 0
		)`,
		// One agent per SPIFFE ID: a JWT-SVID must name one agent.
		`CREATE UNIQUE INDEX IF NOT EXISTS identity_agents_spiffe ON identity_agents (spiffe_id) WHERE spiffe_id <> ''`,
		`CREATE TABLE IF NOT EXISTS identity_jtis (
			issuer     TEXT NOT NULL,
			jti        TEXT NOT NULL,
			expires_at INTEGER NOT NULL,
			PRIMARY KEY (issuer, jti)
		)`,
		`CREATE INDEX IF NOT EXISTS identity_jtis_expiry ON identity_jtis (expires_at)`,
		`CREATE TABLE IF NOT EXISTS identity_delegations (
			token_sha256 TEXT PRIMARY KEY,
			record       TEXT NOT NULL,
			expires_at   INTEGER NOT NULL
		)`)
}

// CreateAgent implements identity.Store.
func (db *DB) CreateAgent(ctx context.Context, a identity.Agent) error {
	a.RevokedAt = nil
	b, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("register agent: %w", err)
	}
	res, err := db.write.ExecContext(ctx, `INSERT INTO identity_agents (id, spiffe_id, record) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`, a.ID, a.SPIFFEID, string(b))
	if err != nil {
		return fmt.Errorf("register agent: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("register agent: %w", err)
	} else if n == 0 {
		return fmt.Errorf("%w: %s (or its spiffe_id %q is another agent's)", identity.ErrExists, a.ID, a.SPIFFEID)
	}
	return nil
}

// ListAgents implements identity.Store.
func (db *DB) ListAgents(ctx context.Context) ([]identity.Agent, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT record, revoked_at FROM identity_agents ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list agents: %w", err)
	}
	defer rows.Close()
	var out []identity.Agent
	for rows.Next() {
		a, err := scanAgent(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

func scanAgent(r interface{ Scan(...any) error }) (identity.Agent, error) {
	var rec string
	var revoked int64
	if err := r.Scan(&rec, &revoked); err != nil {
		return identity.Agent{}, err
	}
	var a identity.Agent
	if err := json.Unmarshal([]byte(rec), &a); err != nil {
		return identity.Agent{}, fmt.Errorf("agent record: %w", err)
	}
	a.RevokedAt = nil
	if revoked != 0 {
		t := fromNanos(revoked)
		a.RevokedAt = &t
	}
	return a, nil
}

// RevokeAgent implements identity.Store.
func (db *DB) RevokeAgent(ctx context.Context, id string, at time.Time) (identity.Agent, error) {
	if _, err := db.write.ExecContext(ctx, `UPDATE identity_agents SET revoked_at = ? WHERE id = ? AND revoked_at = 0`, toNanos(at), id); err != nil {
		return identity.Agent{}, fmt.Errorf("revoke agent: %w", err)
	}
	a, err := scanAgent(db.write.QueryRowContext(ctx, `SELECT record, revoked_at FROM identity_agents WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return identity.Agent{}, fmt.Errorf("%w: %s", identity.ErrNotFound, id)
	}
	if err != nil {
		return identity.Agent{}, fmt.Errorf("revoke agent: %w", err)
	}
	return a, nil
}

// UseJTI implements identity.Store. Expired ids are swept now and then by
// the same statement's caller, cheaply by their index.
func (db *DB) UseJTI(ctx context.Context, issuer, jti string, expires, now time.Time) (bool, error) {
	if now.UnixNano()%64 == 0 {
		if _, err := db.write.ExecContext(ctx, `DELETE FROM identity_jtis WHERE expires_at < ?`, toNanos(now)); err != nil {
			return false, fmt.Errorf("sweep jwt ids: %w", err)
		}
	}
	res, err := db.write.ExecContext(ctx,
		`INSERT INTO identity_jtis (issuer, jti, expires_at) VALUES (?, ?, ?)
		 ON CONFLICT (issuer, jti) DO UPDATE SET expires_at = excluded.expires_at WHERE identity_jtis.expires_at < ?`,
		issuer, jti, toNanos(expires), toNanos(now))
	if err != nil {
		return false, fmt.Errorf("record jwt id: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("record jwt id: %w", err)
	}
	return n == 1, nil
}

// PutDelegation implements identity.Store.
func (db *DB) PutDelegation(ctx context.Context, hash string, d identity.Delegation) error {
	b, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("keep delegation: %w", err)
	}
	if _, err := db.write.ExecContext(ctx, `INSERT INTO identity_delegations (token_sha256, record, expires_at) VALUES (?, ?, ?)`,
		hash, string(b), toNanos(d.Last().ExpiresAt)); err != nil {
		return fmt.Errorf("keep delegation: %w", err)
	}
	return nil
}

// GetDelegation implements identity.Store.
func (db *DB) GetDelegation(ctx context.Context, hash string) (identity.Delegation, error) {
	var rec string
	err := db.read.QueryRowContext(ctx, `SELECT record FROM identity_delegations WHERE token_sha256 = ?`, hash).Scan(&rec)
	if errors.Is(err, sql.ErrNoRows) {
		return identity.Delegation{}, identity.ErrNotFound
	}
	if err != nil {
		return identity.Delegation{}, fmt.Errorf("get delegation: %w", err)
	}
	var d identity.Delegation
	if err := json.Unmarshal([]byte(rec), &d); err != nil {
		return identity.Delegation{}, fmt.Errorf("delegation record: %w", err)
	}
	return d, nil
}
