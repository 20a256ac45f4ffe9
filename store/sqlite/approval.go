package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/approval"
)

var _ approval.Store = (*DB)(nil)

// Tickets live in approval_tickets, which replaced the approvals table
// when tickets came to be bound to the whole action. Rows of the old table
// are carried over with no action digest, so that redeeming one is refused
// (action_changed), and without their arguments, which it kept in clear.
// Every statement is idempotent: on a database that never had the old
// table, it is created empty and dropped again.
func init() {
	register("approval",
		`CREATE TABLE IF NOT EXISTS approval_tickets (
			seq            INTEGER PRIMARY KEY AUTOINCREMENT,
			id             TEXT NOT NULL UNIQUE,
			status         TEXT NOT NULL,
			action_digest  TEXT NOT NULL,
			agent_id       TEXT NOT NULL,
			session        TEXT NOT NULL,
			tool_server    TEXT NOT NULL,
			tool_name      TEXT NOT NULL,
			point          TEXT NOT NULL,
			destination    TEXT NOT NULL,
			model          TEXT NOT NULL,
			resource       TEXT NOT NULL,
			args_digest    TEXT NOT NULL,
			content_digest TEXT NOT NULL,
			action         TEXT NOT NULL,
			args           TEXT NOT NULL,
			policy_digest  TEXT NOT NULL,
			rules          TEXT NOT NULL,
			reasons        TEXT NOT NULL,
			approvers      TEXT NOT NULL,
			on_timeout     TEXT NOT NULL,
			decision_id    TEXT NOT NULL,
			created_at     INTEGER NOT NULL,
			expires_at     INTEGER NOT NULL,
			decided_at     INTEGER NOT NULL DEFAULT 0,
			decided_by     TEXT NOT NULL DEFAULT '',
			note           TEXT NOT NULL DEFAULT '',
			redeem_by      INTEGER NOT NULL DEFAULT 0,
			used_at        INTEGER NOT NULL DEFAULT 0,
			used_by        TEXT NOT NULL DEFAULT ''
		)`,
		`CREATE INDEX IF NOT EXISTS approval_tickets_status ON approval_tickets (status, expires_at, seq)`,
		// Where an approval's untrusted values came from (DESIGN §8), for
		// the tickets that have any; a table of its own so that the
		// statement stays idempotent on databases made before it.
		`CREATE TABLE IF NOT EXISTS approval_provenance (id TEXT PRIMARY KEY, provenance TEXT NOT NULL)`,
		`CREATE TABLE IF NOT EXISTS approvals (
			seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, status TEXT NOT NULL,
			agent_id TEXT NOT NULL, session TEXT NOT NULL, tool_server TEXT NOT NULL, tool_name TEXT NOT NULL,
			point TEXT NOT NULL, destination TEXT NOT NULL, model TEXT NOT NULL, resource TEXT NOT NULL,
			args_digest TEXT NOT NULL, args TEXT NOT NULL, policy_digest TEXT NOT NULL, rules TEXT NOT NULL,
			reasons TEXT NOT NULL, approvers TEXT NOT NULL, on_timeout TEXT NOT NULL, decision_id TEXT NOT NULL,
			created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, decided_at INTEGER NOT NULL DEFAULT 0,
			decided_by TEXT NOT NULL DEFAULT '', note TEXT NOT NULL DEFAULT '', redeem_by INTEGER NOT NULL DEFAULT 0,
			used_at INTEGER NOT NULL DEFAULT 0)`,
		`INSERT OR IGNORE INTO approval_tickets (`+ticketColumns+`)
		 SELECT id, status, '', agent_id, session, tool_server, tool_name, point, destination, model,
			resource, args_digest, '', '{}', '{}', policy_digest, rules, reasons, approvers, on_timeout, decision_id,
			created_at, expires_at, decided_at, decided_by, note, redeem_by, used_at, ''
		 FROM approvals ORDER BY seq`,
		`DROP TABLE approvals`)
}

const ticketColumns = `id, status, action_digest, agent_id, session, tool_server, tool_name, point, destination, model,
	resource, args_digest, content_digest, action, args, policy_digest, rules, reasons, approvers, on_timeout, decision_id,
	created_at, expires_at, decided_at, decided_by, note, redeem_by, used_at, used_by`

// ticketSelect is ticketColumns and the ticket's provenance, kept in a
// table of its own (added after tickets were) and empty for most.
const ticketSelect = ticketColumns + `, COALESCE((SELECT p.provenance FROM approval_provenance p WHERE p.id = approval_tickets.id), '')`

// InsertTicket implements approval.Store.
func (db *DB) InsertTicket(ctx context.Context, t approval.Ticket) error {
	resource, err := json.Marshal(t.Resource)
	if err != nil {
		return fmt.Errorf("insert approval: %w", err)
	}
	shown, err := json.Marshal(t.Action)
	if err != nil {
		return fmt.Errorf("insert approval: %w", err)
	}
	var prov []byte
	if len(t.Provenance) > 0 {
		if prov, err = json.Marshal(t.Provenance); err != nil {
			return fmt.Errorf("insert approval: %w", err)
		}
	}
	lists := make([][]byte, 3)
	for i, l := range [][]string{t.Rules, t.Reasons, t.Approvers} {
		if l == nil {
			l = []string{}
		}
		if lists[i], err = json.Marshal(l); err != nil {
			return fmt.Errorf("insert approval: %w", err)
		}
	}
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("insert approval: %w", err)
	}
	defer tx.Rollback()
	if prov != nil {
		if _, err := tx.ExecContext(ctx, `INSERT INTO approval_provenance (id, provenance) VALUES (?, ?)`, t.ID, string(prov)); err != nil {
			return fmt.Errorf("insert approval: provenance: %w", err)
		}
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO approval_tickets (`+ticketColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		t.ID, string(t.Status), t.ActionDigest, t.AgentID, t.Session, t.Tool.Server, t.Tool.Name, string(t.Point), t.Destination, t.Model,
		string(resource), t.ArgsDigest, t.ContentDigest, string(shown), string(t.Args), t.PolicyDigest,
		string(lists[0]), string(lists[1]), string(lists[2]),
		string(t.OnTimeout), t.DecisionID, toNanos(t.CreatedAt), toNanos(t.ExpiresAt), toNanos(t.DecidedAt), t.DecidedBy,
		t.Note, toNanos(t.RedeemBy), toNanos(t.UsedAt), t.UsedBy)
	if err != nil {
		return fmt.Errorf("insert approval: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("insert approval: %w", err)
	}
	return nil
}

// GetTicket implements approval.Store.
func (db *DB) GetTicket(ctx context.Context, id string) (approval.Ticket, error) {
	t, err := scanTicket(db.read.QueryRowContext(ctx, `SELECT `+ticketSelect+` FROM approval_tickets WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return approval.Ticket{}, fmt.Errorf("%w: %s", approval.ErrNotFound, id)
	}
	if err != nil {
		return approval.Ticket{}, fmt.Errorf("get approval: %w", err)
	}
	return t, nil
}

// ListTickets implements approval.Store.
func (db *DB) ListTickets(ctx context.Context, statuses ...approval.Status) ([]approval.Ticket, error) {
	q := `SELECT ` + ticketSelect + ` FROM approval_tickets`
	args := make([]any, len(statuses))
	if len(statuses) > 0 {
		for i, s := range statuses {
			args[i] = string(s)
		}
		q += ` WHERE status IN (?` + strings.Repeat(", ?", len(statuses)-1) + `)`
	}
	rows, err := db.read.QueryContext(ctx, q+` ORDER BY seq`, args...)
	if err != nil {
		return nil, fmt.Errorf("list approvals: %w", err)
	}
	defer rows.Close()
	var out []approval.Ticket
	for rows.Next() {
		t, err := scanTicket(rows)
		if err != nil {
			return nil, fmt.Errorf("list approvals: %w", err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list approvals: %w", err)
	}
	return out, nil
}

// DecideTicket implements approval.Store: one UPDATE conditional on the
// ticket being pending and unexpired.
func (db *DB) DecideTicket(ctx context.Context, id string, to approval.Status, by, note string, now, redeemBy time.Time) (bool, error) {
	if to != approval.Approved && to != approval.Denied {
		return false, fmt.Errorf("decide approval: cannot decide to %q", to)
	}
	res, err := db.write.ExecContext(ctx,
		`UPDATE approval_tickets SET status = ?, decided_at = ?, decided_by = ?, note = ?, redeem_by = ?
		 WHERE id = ? AND status = 'pending' AND expires_at > ?`,
		string(to), toNanos(now), by, note, toNanos(redeemBy), id, toNanos(now))
	return changedOne(res, err, "decide approval")
}

// RedeemTicket implements approval.Store: one UPDATE that consumes the
// ticket only while it is redeemable, so concurrent redemptions of one
// ticket cannot both succeed.
func (db *DB) RedeemTicket(ctx context.Context, id string, now time.Time, usedBy string) (bool, error) {
	n := toNanos(now)
	res, err := db.write.ExecContext(ctx,
		`UPDATE approval_tickets SET status = 'used', used_at = ?, used_by = ?,
		   decided_by = CASE WHEN status = 'approved' THEN decided_by ELSE ? END,
		   decided_at = CASE WHEN status = 'approved' THEN decided_at ELSE expires_at END
		 WHERE id = ? AND (
		   (status = 'approved' AND redeem_by > ?) OR
		   (status IN ('pending', 'expired') AND on_timeout = 'allow' AND expires_at <= ?))`,
		n, usedBy, approval.DecidedByTimeout, id, n, n)
	return changedOne(res, err, "redeem approval")
}

// UnredeemTicket implements approval.Store. A ticket approved by a human
// keeps its redeem_by; one that its timeout let through had none, and goes
// back to expired and undecided.
func (db *DB) UnredeemTicket(ctx context.Context, id, usedBy string) (bool, error) {
	res, err := db.write.ExecContext(ctx,
		`UPDATE approval_tickets SET used_at = 0, used_by = '',
		   status = CASE WHEN redeem_by = 0 THEN 'expired' ELSE 'approved' END,
		   decided_by = CASE WHEN redeem_by = 0 THEN '' ELSE decided_by END,
		   decided_at = CASE WHEN redeem_by = 0 THEN 0 ELSE decided_at END
		 WHERE id = ? AND status = 'used' AND used_by = ?`,
		id, usedBy)
	return changedOne(res, err, "give back approval")
}

// DeleteTicket implements approval.Store.
func (db *DB) DeleteTicket(ctx context.Context, id string) (bool, error) {
	res, err := db.write.ExecContext(ctx, `DELETE FROM approval_tickets WHERE id = ? AND status = 'pending'`, id)
	changed, err := changedOne(res, err, "delete approval")
	if changed {
		// What is left of a deleted ticket's provenance is never read.
		_, _ = db.write.ExecContext(ctx, `DELETE FROM approval_provenance WHERE id = ?`, id)
	}
	return changed, err
}

// DueTickets implements approval.Store.
func (db *DB) DueTickets(ctx context.Context, now time.Time) ([]approval.Ticket, error) {
	rows, err := db.read.QueryContext(ctx,
		`SELECT `+ticketSelect+` FROM approval_tickets WHERE status = 'pending' AND expires_at <= ? ORDER BY seq`,
		toNanos(now))
	if err != nil {
		return nil, fmt.Errorf("due approvals: %w", err)
	}
	defer rows.Close()
	var out []approval.Ticket
	for rows.Next() {
		t, err := scanTicket(rows)
		if err != nil {
			return nil, fmt.Errorf("due approvals: %w", err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("due approvals: %w", err)
	}
	return out, nil
}

// CountPendingTickets implements approval.Store.
func (db *DB) CountPendingTickets(ctx context.Context, agentID string, now time.Time) (int, error) {
	var n int
	err := db.read.QueryRowContext(ctx,
		`SELECT count(*) FROM approval_tickets WHERE status = 'pending' AND agent_id = ? AND expires_at > ?`, agentID, toNanos(now)).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count pending approvals: %w", err)
	}
	return n, nil
}

// ExpireTicket implements approval.Store.
func (db *DB) ExpireTicket(ctx context.Context, id string, now time.Time) (bool, error) {
	res, err := db.write.ExecContext(ctx,
		`UPDATE approval_tickets SET status = 'expired' WHERE id = ? AND status = 'pending' AND expires_at <= ?`,
		id, toNanos(now))
	return changedOne(res, err, "expire approval")
}

func changedOne(res sql.Result, err error, what string) (bool, error) {
	if err != nil {
		return false, fmt.Errorf("%s: %w", what, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("%s: %w", what, err)
	}
	return n == 1, nil
}

func scanTicket(r interface{ Scan(...any) error }) (approval.Ticket, error) {
	var t approval.Ticket
	var status, point, resource, shown, args, rules, reasons, approvers, onTimeout, prov string
	var created, expires, decided, redeemBy, used int64
	err := r.Scan(&t.ID, &status, &t.ActionDigest, &t.AgentID, &t.Session, &t.Tool.Server, &t.Tool.Name, &point, &t.Destination, &t.Model,
		&resource, &t.ArgsDigest, &t.ContentDigest, &shown, &args, &t.PolicyDigest, &rules, &reasons, &approvers, &onTimeout, &t.DecisionID,
		&created, &expires, &decided, &t.DecidedBy, &t.Note, &redeemBy, &used, &t.UsedBy, &prov)
	if err != nil {
		return approval.Ticket{}, err
	}
	if prov != "" {
		if err := json.Unmarshal([]byte(prov), &t.Provenance); err != nil {
			return approval.Ticket{}, fmt.Errorf("approval %s: provenance: %w", t.ID, err)
		}
	}
	t.Status = approval.Status(status)
	t.Point = action.Point(point)
	t.OnTimeout = approval.OnTimeout(onTimeout)
	t.Args = json.RawMessage(args)
	if err := json.Unmarshal([]byte(resource), &t.Resource); err != nil {
		return approval.Ticket{}, fmt.Errorf("approval %s: resource: %w", t.ID, err)
	}
	if t.Action, err = action.DecodeStored([]byte(shown)); err != nil {
		return approval.Ticket{}, fmt.Errorf("approval %s: action: %w", t.ID, err)
	}
	for _, f := range []struct {
		raw string
		dst *[]string
	}{{rules, &t.Rules}, {reasons, &t.Reasons}, {approvers, &t.Approvers}} {
		if err := json.Unmarshal([]byte(f.raw), f.dst); err != nil {
			return approval.Ticket{}, fmt.Errorf("approval %s: %w", t.ID, err)
		}
		if len(*f.dst) == 0 {
			*f.dst = nil
		}
	}
	t.CreatedAt = fromNanos(created)
	t.ExpiresAt = fromNanos(expires)
	t.DecidedAt = fromNanos(decided)
	t.RedeemBy = fromNanos(redeemBy)
	t.UsedAt = fromNanos(used)
	return t, nil
}
