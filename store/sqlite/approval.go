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

func init() {
	register("approval",
		`CREATE TABLE IF NOT EXISTS approvals (
			seq           INTEGER PRIMARY KEY AUTOINCREMENT,
			id            TEXT NOT NULL UNIQUE,
			status        TEXT NOT NULL,
			agent_id      TEXT NOT NULL,
			session       TEXT NOT NULL,
			tool_server   TEXT NOT NULL,
			tool_name     TEXT NOT NULL,
			point         TEXT NOT NULL,
			destination   TEXT NOT NULL,
			model         TEXT NOT NULL,
			resource      TEXT NOT NULL,
			args_digest   TEXT NOT NULL,
			args          TEXT NOT NULL,
			policy_digest TEXT NOT NULL,
			rules         TEXT NOT NULL,
			reasons       TEXT NOT NULL,
			approvers     TEXT NOT NULL,
			on_timeout    TEXT NOT NULL,
			decision_id   TEXT NOT NULL,
			created_at    INTEGER NOT NULL,
			expires_at    INTEGER NOT NULL,
			decided_at    INTEGER NOT NULL DEFAULT 0,
			decided_by    TEXT NOT NULL DEFAULT '',
			note          TEXT NOT NULL DEFAULT '',
			redeem_by     INTEGER NOT NULL DEFAULT 0,
			used_at       INTEGER NOT NULL DEFAULT 0
		)`,
		`CREATE INDEX IF NOT EXISTS approvals_status ON approvals (status, seq)`)
}

const ticketColumns = `id, status, agent_id, session, tool_server, tool_name, point, destination, model,
	resource, args_digest, args, policy_digest, rules, reasons, approvers, on_timeout, decision_id,
	created_at, expires_at, decided_at, decided_by, note, redeem_by, used_at`

// InsertTicket implements approval.Store.
func (db *DB) InsertTicket(ctx context.Context, t approval.Ticket) error {
	resource, err := json.Marshal(t.Resource)
	if err != nil {
		return fmt.Errorf("insert approval: %w", err)
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
	_, err = db.write.ExecContext(ctx, `INSERT INTO approvals (`+ticketColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		t.ID, string(t.Status), t.AgentID, t.Session, t.Tool.Server, t.Tool.Name, string(t.Point), t.Destination, t.Model,
		string(resource), t.ArgsDigest, string(t.Args), t.PolicyDigest, string(lists[0]), string(lists[1]), string(lists[2]),
		string(t.OnTimeout), t.DecisionID, toNanos(t.CreatedAt), toNanos(t.ExpiresAt), toNanos(t.DecidedAt), t.DecidedBy,
		t.Note, toNanos(t.RedeemBy), toNanos(t.UsedAt))
	if err != nil {
		return fmt.Errorf("insert approval: %w", err)
	}
	return nil
}

// GetTicket implements approval.Store.
func (db *DB) GetTicket(ctx context.Context, id string) (approval.Ticket, error) {
	t, err := scanTicket(db.read.QueryRowContext(ctx, `SELECT `+ticketColumns+` FROM approvals WHERE id = ?`, id))
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
	q := `SELECT ` + ticketColumns + ` FROM approvals`
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
		`UPDATE approvals SET status = ?, decided_at = ?, decided_by = ?, note = ?, redeem_by = ?
		 WHERE id = ? AND status = 'pending' AND expires_at > ?`,
		string(to), toNanos(now), by, note, toNanos(redeemBy), id, toNanos(now))
	return changedOne(res, err, "decide approval")
}

// RedeemTicket implements approval.Store: one UPDATE that consumes the
// ticket only while it is redeemable, so concurrent redemptions of one
// ticket cannot both succeed.
func (db *DB) RedeemTicket(ctx context.Context, id string, now time.Time) (bool, error) {
	n := toNanos(now)
	res, err := db.write.ExecContext(ctx,
		`UPDATE approvals SET status = 'used', used_at = ?,
		   decided_by = CASE WHEN status = 'approved' THEN decided_by ELSE ? END,
		   decided_at = CASE WHEN status = 'approved' THEN decided_at ELSE expires_at END
		 WHERE id = ? AND (
		   (status = 'approved' AND redeem_by > ?) OR
		   (status IN ('pending', 'expired') AND on_timeout = 'allow' AND expires_at <= ?))`,
		n, approval.DecidedByTimeout, id, n, n)
	return changedOne(res, err, "redeem approval")
}

// ExpireTickets implements approval.Store.
func (db *DB) ExpireTickets(ctx context.Context, now time.Time) ([]approval.Ticket, error) {
	rows, err := db.write.QueryContext(ctx,
		`UPDATE approvals SET status = 'expired' WHERE status = 'pending' AND expires_at <= ?
		 RETURNING `+ticketColumns, toNanos(now))
	if err != nil {
		return nil, fmt.Errorf("expire approvals: %w", err)
	}
	defer rows.Close()
	var out []approval.Ticket
	for rows.Next() {
		t, err := scanTicket(rows)
		if err != nil {
			return nil, fmt.Errorf("expire approvals: %w", err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("expire approvals: %w", err)
	}
	return out, nil
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
	var status, point, resource, args, rules, reasons, approvers, onTimeout string
	var created, expires, decided, redeemBy, used int64
	err := r.Scan(&t.ID, &status, &t.AgentID, &t.Session, &t.Tool.Server, &t.Tool.Name, &point, &t.Destination, &t.Model,
		&resource, &t.ArgsDigest, &args, &t.PolicyDigest, &rules, &reasons, &approvers, &onTimeout, &t.DecisionID,
		&created, &expires, &decided, &t.DecidedBy, &t.Note, &redeemBy, &used)
	if err != nil {
		return approval.Ticket{}, err
	}
	t.Status = approval.Status(status)
	t.Point = action.Point(point)
	t.OnTimeout = approval.OnTimeout(onTimeout)
	t.Args = json.RawMessage(args)
	if err := json.Unmarshal([]byte(resource), &t.Resource); err != nil {
		return approval.Ticket{}, fmt.Errorf("approval %s: resource: %w", t.ID, err)
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
