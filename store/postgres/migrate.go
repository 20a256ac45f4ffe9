package postgres

import (
	"context"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// migration is one version of the schema. Versions are applied in order,
// each once, and never edited once released: a change is a new version.
type migration struct {
	version int
	name    string
	sql     string
}

var migrations = []migration{
	{1, "initial schema", schemaV1},
	{2, "spend without budgets", schemaSpend},
	{3, "agent identity", schemaIdentity},
	{4, "trust scores and ring elevations", schemaTrust},
	{5, "approval provenance", `CREATE TABLE approval_provenance (id text PRIMARY KEY, provenance text NOT NULL)`},
}

// migrate applies the missing migrations in one transaction, under an
// advisory lock per schema: replicas starting together wait for the first,
// then find nothing left to do. A database migrated by a newer agentgov is
// refused rather than written with an older idea of its tables.
func migrate(ctx context.Context, pool *pgxpool.Pool) error {
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('agentgov:migrate:' || current_schema(), 0))`); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS agentgov_migrations (
			version    integer PRIMARY KEY,
			name       text NOT NULL,
			applied_at timestamptz NOT NULL DEFAULT now()
		)`); err != nil {
			return err
		}
		// Versions are applied by the set recorded, not by the highest: a
		// version numbered below one already applied (added by a release
		// that merged work numbered in parallel) is still applied.
		rows, err := tx.Query(ctx, `SELECT version FROM agentgov_migrations`)
		if err != nil {
			return err
		}
		have, err := pgx.CollectRows(rows, pgx.RowTo[int32])
		if err != nil {
			return err
		}
		applied := map[int]bool{}
		for _, v := range have {
			if !slices.ContainsFunc(migrations, func(m migration) bool { return m.version == int(v) }) {
				return fmt.Errorf("the database's schema has version %d, which this agentgov does not know (it knows up to %d): run a release at least as new", v, migrations[len(migrations)-1].version)
			}
			applied[int(v)] = true
		}
		for _, m := range migrations {
			if applied[m.version] {
				continue
			}
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return fmt.Errorf("version %d (%s): %w", m.version, m.name, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO agentgov_migrations (version, name) VALUES ($1, $2)`, m.version, m.name); err != nil {
				return fmt.Errorf("version %d (%s): %w", m.version, m.name, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("open store: migrate schema: %w", err)
	}
	return nil
}

// SchemaVersion is the newest schema version this agentgov knows.
func SchemaVersion() int { return migrations[len(migrations)-1].version }

// SchemaMigrations is how many schema versions this agentgov knows.
func SchemaMigrations() int { return len(migrations) }

// schemaV1 is every table of the first release. Times are Unix
// nanoseconds (0 for never), as in store/sqlite, so that both backends
// give back exactly what they were given.
const schemaV1 = `
-- Changes that replicas keep copies of: a trigger bumps the topic's
-- version and notifies, in the transaction of the change.
CREATE TABLE agentgov_changes (
	topic   text PRIMARY KEY,
	version bigint NOT NULL DEFAULT 0
);
INSERT INTO agentgov_changes (topic) VALUES ('kill'), ('budget'), ('session'), ('policy');

CREATE FUNCTION agentgov_bump(t text) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE v bigint;
BEGIN
	UPDATE agentgov_changes SET version = version + 1 WHERE topic = t RETURNING version INTO v;
	IF v IS NULL THEN
		RAISE EXCEPTION 'unknown change topic %', t;
	END IF;
	PERFORM pg_notify('agentgov_changes', current_schema() || ' ' || t);
	RETURN v;
END $$;

CREATE FUNCTION agentgov_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	PERFORM agentgov_bump(TG_ARGV[0]);
	RETURN NULL;
END $$;

CREATE FUNCTION agentgov_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END $$;

-- Replicas and the public keys of their audit logs, recorded at first
-- start and never changed.
CREATE TABLE agentgov_replicas (
	id         text PRIMARY KEY,
	audit_key  text NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TRIGGER agentgov_replicas_append_only BEFORE UPDATE OR DELETE ON agentgov_replicas
	FOR EACH ROW EXECUTE FUNCTION agentgov_append_only();
CREATE TRIGGER agentgov_replicas_no_truncate BEFORE TRUNCATE ON agentgov_replicas
	FOR EACH STATEMENT EXECUTE FUNCTION agentgov_append_only();

-- One Merkle log per replica. decision_id indexes decision entries, so
-- that any replica finds any replica's decision.
CREATE TABLE audit_entries (
	replica     text NOT NULL REFERENCES agentgov_replicas (id),
	idx         bigint NOT NULL CHECK (idx >= 0),
	data        bytea NOT NULL,
	decision_id text,
	PRIMARY KEY (replica, idx)
);
CREATE INDEX audit_entries_decision ON audit_entries (decision_id) WHERE decision_id IS NOT NULL;
CREATE TABLE audit_nodes (
	replica text NOT NULL,
	level   integer NOT NULL,
	idx     bigint NOT NULL,
	hash    bytea NOT NULL,
	PRIMARY KEY (replica, level, idx)
);
CREATE TABLE audit_checkpoints (
	replica text NOT NULL,
	size    bigint NOT NULL CHECK (size >= 0),
	note    bytea NOT NULL,
	PRIMARY KEY (replica, size)
);
CREATE TRIGGER audit_entries_append_only BEFORE UPDATE OR DELETE ON audit_entries
	FOR EACH ROW EXECUTE FUNCTION agentgov_append_only();
CREATE TRIGGER audit_entries_no_truncate BEFORE TRUNCATE ON audit_entries
	FOR EACH STATEMENT EXECUTE FUNCTION agentgov_append_only();
CREATE TRIGGER audit_nodes_append_only BEFORE UPDATE OR DELETE ON audit_nodes
	FOR EACH ROW EXECUTE FUNCTION agentgov_append_only();
CREATE TRIGGER audit_nodes_no_truncate BEFORE TRUNCATE ON audit_nodes
	FOR EACH STATEMENT EXECUTE FUNCTION agentgov_append_only();
CREATE TRIGGER audit_checkpoints_append_only BEFORE UPDATE OR DELETE ON audit_checkpoints
	FOR EACH ROW EXECUTE FUNCTION agentgov_append_only();
CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints
	FOR EACH STATEMENT EXECUTE FUNCTION agentgov_append_only();

CREATE TABLE approval_tickets (
	seq            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	id             text NOT NULL UNIQUE,
	status         text NOT NULL,
	action_digest  text NOT NULL,
	agent_id       text NOT NULL,
	session        text NOT NULL,
	tool_server    text NOT NULL,
	tool_name      text NOT NULL,
	point          text NOT NULL,
	destination    text NOT NULL,
	model          text NOT NULL,
	resource       text NOT NULL,
	args_digest    text NOT NULL,
	content_digest text NOT NULL,
	action         text NOT NULL,
	args           text NOT NULL,
	policy_digest  text NOT NULL,
	rules          text NOT NULL,
	reasons        text NOT NULL,
	approvers      text NOT NULL,
	on_timeout     text NOT NULL,
	decision_id    text NOT NULL,
	created_at     bigint NOT NULL,
	expires_at     bigint NOT NULL,
	decided_at     bigint NOT NULL DEFAULT 0,
	decided_by     text NOT NULL DEFAULT '',
	note           text NOT NULL DEFAULT '',
	redeem_by      bigint NOT NULL DEFAULT 0,
	used_at        bigint NOT NULL DEFAULT 0,
	used_by        text NOT NULL DEFAULT ''
);
CREATE INDEX approval_tickets_status ON approval_tickets (status, expires_at, seq);

CREATE TABLE kill_switches (
	seq         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	id          text NOT NULL UNIQUE,
	scope       text NOT NULL,
	target      text NOT NULL,
	agent       text NOT NULL DEFAULT '',
	reason      text NOT NULL,
	engaged_by  text NOT NULL,
	engaged_at  bigint NOT NULL,
	released_at bigint NOT NULL DEFAULT 0,
	released_by text NOT NULL DEFAULT ''
);
CREATE INDEX kill_switches_engaged ON kill_switches (released_at, seq);
CREATE TRIGGER kill_switches_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON kill_switches
	FOR EACH STATEMENT EXECUTE FUNCTION agentgov_changed('kill');

-- A session's version is the session topic's version of its last change:
-- taken under the topic row's lock, so versions commit in order and a
-- replica can ask for every change after the last it saw.
CREATE TABLE agent_sessions (
	agent_id      text NOT NULL,
	id            text NOT NULL,
	state         text NOT NULL,
	operator_hold boolean NOT NULL DEFAULT false,
	created_at    bigint NOT NULL,
	updated_at    bigint NOT NULL,
	updated_by    text NOT NULL DEFAULT '',
	version       bigint NOT NULL DEFAULT 0,
	PRIMARY KEY (agent_id, id)
);
CREATE INDEX agent_sessions_id ON agent_sessions (id);
CREATE INDEX agent_sessions_version ON agent_sessions (version);
CREATE FUNCTION agentgov_session_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	NEW.version := agentgov_bump('session');
	RETURN NEW;
END $$;
CREATE TRIGGER agent_sessions_version BEFORE INSERT OR UPDATE ON agent_sessions
	FOR EACH ROW EXECUTE FUNCTION agentgov_session_version();

CREATE TABLE budget_configs (
	id     text PRIMARY KEY,
	config text NOT NULL
);
CREATE TRIGGER budget_configs_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON budget_configs
	FOR EACH STATEMENT EXECUTE FUNCTION agentgov_changed('budget');
CREATE TABLE budget_counters (
	budget_id    text NOT NULL,
	period_key   text NOT NULL,
	spent_cost   bigint NOT NULL DEFAULT 0,
	spent_tokens bigint NOT NULL DEFAULT 0,
	spent_input  bigint NOT NULL DEFAULT 0,
	spent_output bigint NOT NULL DEFAULT 0,
	spent_calls  bigint NOT NULL DEFAULT 0,
	res_cost     bigint NOT NULL DEFAULT 0,
	res_tokens   bigint NOT NULL DEFAULT 0,
	res_input    bigint NOT NULL DEFAULT 0,
	res_output   bigint NOT NULL DEFAULT 0,
	res_calls    bigint NOT NULL DEFAULT 0,
	alerted      boolean NOT NULL DEFAULT false,
	updated_at   bigint NOT NULL,
	PRIMARY KEY (budget_id, period_key)
);
CREATE TABLE budget_reservations (
	decision_id text PRIMARY KEY,
	expires_at  bigint NOT NULL,
	expired     boolean NOT NULL DEFAULT false,
	holds       text NOT NULL
);
CREATE INDEX budget_reservations_due ON budget_reservations (expired, expires_at);

CREATE TABLE outcomes (
	decision_id text PRIMARY KEY,
	claimed_at  bigint NOT NULL
);

CREATE TABLE idempotency (
	scope   text NOT NULL,
	key     text NOT NULL,
	request text NOT NULL,
	status  integer NOT NULL,
	body    bytea NOT NULL,
	created bigint NOT NULL,
	PRIMARY KEY (scope, key)
);
`
