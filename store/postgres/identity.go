package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/agentgov/agentgov/identity"
)

var _ identity.Store = (*DB)(nil)

// schemaIdentity is the agent registry, whose changes every replica hears
// of (a revocation is in force on each as soon as it reads it again), the
// JWT ids seen until they expire, and the delegations issued, by the hash
// of their token.
const schemaIdentity = `
INSERT INTO agentgov_changes (topic) VALUES ('agent') ON CONFLICT DO NOTHING;
CREATE TABLE identity_agents (
	id         text PRIMARY KEY,
	spiffe_id  text NOT NULL DEFAULT '',
	record     jsonb NOT NULL,
	revoked_at bigint NOT NULL DEFAULT 0
);
-- One agent per SPIFFE ID: a JWT-SVID must name one agent.
CREATE UNIQUE INDEX identity_agents_spiffe ON identity_agents (spiffe_id) WHERE spiffe_id <> '';
CREATE TRIGGER identity_agents_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON identity_agents
	FOR EACH STATEMENT EXECUTE FUNCTION agentgov_changed('agent');
CREATE TABLE identity_jtis (
	issuer     text NOT NULL,
	jti        text NOT NULL,
	expires_at bigint NOT NULL,
	PRIMARY KEY (issuer, jti)
);
CREATE INDEX identity_jtis_expiry ON identity_jtis (expires_at);
CREATE TABLE identity_delegations (
	token_sha256 text PRIMARY KEY,
	record       jsonb NOT NULL,
	expires_at   bigint NOT NULL
);
`

// CreateAgent implements identity.Store.
func (db *DB) CreateAgent(ctx context.Context, a identity.Agent) error {
	a.RevokedAt = nil
	b, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("register agent: %w", err)
	}
	tag, err := db.pool.Exec(ctx, `INSERT INTO identity_agents (id, spiffe_id, record) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`, a.ID, a.SPIFFEID, b)
	if err != nil {
		return fmt.Errorf("register agent: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%w: %s (or its spiffe_id %q is another agent's)", identity.ErrExists, a.ID, a.SPIFFEID)
	}
	return nil
}

// ListAgents implements identity.Store.
func (db *DB) ListAgents(ctx context.Context) ([]identity.Agent, error) {
	rows, err := db.pool.Query(ctx, `SELECT record, revoked_at FROM identity_agents ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list agents: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (identity.Agent, error) { return scanAgent(r) })
	if err != nil {
		return nil, fmt.Errorf("list agents: %w", err)
	}
	return out, nil
}

func scanAgent(r pgx.Row) (identity.Agent, error) {
	var rec []byte
	var revoked int64
	if err := r.Scan(&rec, &revoked); err != nil {
		return identity.Agent{}, err
	}
	var a identity.Agent
	if err := json.Unmarshal(rec, &a); err != nil {
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
	if _, err := db.pool.Exec(ctx, `UPDATE identity_agents SET revoked_at = $1 WHERE id = $2 AND revoked_at = 0`, toNanos(at), id); err != nil {
		return identity.Agent{}, fmt.Errorf("revoke agent: %w", err)
	}
	a, err := scanAgent(db.pool.QueryRow(ctx, `SELECT record, revoked_at FROM identity_agents WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return identity.Agent{}, fmt.Errorf("%w: %s", identity.ErrNotFound, id)
	}
	if err != nil {
		return identity.Agent{}, fmt.Errorf("revoke agent: %w", err)
	}
	return a, nil
}

// UseJTI implements identity.Store: one statement, so that two replicas
// offered the same token cannot both take it.
func (db *DB) UseJTI(ctx context.Context, issuer, jti string, expires, now time.Time) (bool, error) {
	if now.UnixNano()%64 == 0 {
		if _, err := db.pool.Exec(ctx, `DELETE FROM identity_jtis WHERE expires_at < $1`, toNanos(now)); err != nil {
			return false, fmt.Errorf("sweep jwt ids: %w", err)
		}
	}
	tag, err := db.pool.Exec(ctx,
		`INSERT INTO identity_jtis (issuer, jti, expires_at) VALUES ($1, $2, $3)
		 ON CONFLICT (issuer, jti) DO UPDATE SET expires_at = excluded.expires_at WHERE identity_jtis.expires_at < $4`,
		issuer, jti, toNanos(expires), toNanos(now))
	if err != nil {
		return false, fmt.Errorf("record jwt id: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}

// PutDelegation implements identity.Store.
func (db *DB) PutDelegation(ctx context.Context, hash string, d identity.Delegation) error {
	b, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("keep delegation: %w", err)
	}
	if _, err := db.pool.Exec(ctx, `INSERT INTO identity_delegations (token_sha256, record, expires_at) VALUES ($1, $2, $3)`,
		hash, b, toNanos(d.Last().ExpiresAt)); err != nil {
		return fmt.Errorf("keep delegation: %w", err)
	}
	return nil
}

// GetDelegation implements identity.Store.
func (db *DB) GetDelegation(ctx context.Context, hash string) (identity.Delegation, error) {
	var rec []byte
	err := db.pool.QueryRow(ctx, `SELECT record FROM identity_delegations WHERE token_sha256 = $1`, hash).Scan(&rec)
	if errors.Is(err, pgx.ErrNoRows) {
		return identity.Delegation{}, identity.ErrNotFound
	}
	if err != nil {
		return identity.Delegation{}, fmt.Errorf("get delegation: %w", err)
	}
	var d identity.Delegation
	if err := json.Unmarshal(rec, &d); err != nil {
		return identity.Delegation{}, fmt.Errorf("delegation record: %w", err)
	}
	return d, nil
}
