package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/approval"
)

var _ approval.Store = (*DB)(nil)

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
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("insert approval: %w", err)
	}
	defer tx.Rollback(ctx)
	if prov != nil {
		if _, err := tx.Exec(ctx, `INSERT INTO approval_provenance (id, provenance) VALUES ($1, $2)`, t.ID, string(prov)); err != nil {
			return fmt.Errorf("insert approval: provenance: %w", err)
		}
	}
	_, err = tx.Exec(ctx, `INSERT INTO approval_tickets (`+ticketColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29)`,
		t.ID, string(t.Status), t.ActionDigest, t.AgentID, t.Session, t.Tool.Server, t.Tool.Name, string(t.Point), t.Destination, t.Model,
		string(resource), t.ArgsDigest, t.ContentDigest, string(shown), string(t.Args), t.PolicyDigest,
		string(lists[0]), string(lists[1]), string(lists[2]),
		string(t.OnTimeout), t.DecisionID, toNanos(t.CreatedAt), toNanos(t.ExpiresAt), toNanos(t.DecidedAt), t.DecidedBy,
		t.Note, toNanos(t.RedeemBy), toNanos(t.UsedAt), t.UsedBy)
	if err != nil {
		return fmt.Errorf("insert approval: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("insert approval: %w", err)
	}
	return nil
}

// GetTicket implements approval.Store.
func (db *DB) GetTicket(ctx context.Context, id string) (approval.Ticket, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+ticketSelect+` FROM approval_tickets WHERE id = $1`, id)
	if err != nil {
		return approval.Ticket{}, fmt.Errorf("get approval: %w", err)
	}
	t, err := pgx.CollectExactlyOneRow(rows, scanTicket)
	if errors.Is(err, pgx.ErrNoRows) {
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
	var args []any
	if len(statuses) > 0 {
		ss := make([]string, len(statuses))
		for i, s := range statuses {
			ss[i] = string(s)
		}
		q += ` WHERE status = ANY($1)`
		args = append(args, ss)
	}
	return db.tickets(ctx, "list approvals", q+` ORDER BY seq`, args...)
}

func (db *DB) tickets(ctx context.Context, what, q string, args ...any) ([]approval.Ticket, error) {
	rows, err := db.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	out, err := pgx.CollectRows(rows, scanTicket)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}

// DecideTicket implements approval.Store: one UPDATE conditional on the
// ticket being pending and unexpired.
func (db *DB) DecideTicket(ctx context.Context, id string, to approval.Status, by, note string, now, redeemBy time.Time) (bool, error) {
	if to != approval.Approved && to != approval.Denied {
		return false, fmt.Errorf("decide approval: cannot decide to %q", to)
	}
	tag, err := db.pool.Exec(ctx,
		`UPDATE approval_tickets SET status = $1, decided_at = $2, decided_by = $3, note = $4, redeem_by = $5
		 WHERE id = $6 AND status = 'pending' AND expires_at > $2`,
		string(to), toNanos(now), by, note, toNanos(redeemBy), id)
	return changedOne(tag, err, "decide approval")
}

// RedeemTicket implements approval.Store: one UPDATE that consumes the
// ticket only while it is redeemable. Of concurrent redemptions, from any
// replica, the second waits for the first's row lock and then finds the
// ticket used.
func (db *DB) RedeemTicket(ctx context.Context, id string, now time.Time, usedBy string) (bool, error) {
	n := toNanos(now)
	tag, err := db.pool.Exec(ctx,
		`UPDATE approval_tickets SET status = 'used', used_at = $1, used_by = $2,
		   decided_by = CASE WHEN status = 'approved' THEN decided_by ELSE $3 END,
		   decided_at = CASE WHEN status = 'approved' THEN decided_at ELSE expires_at END
		 WHERE id = $4 AND (
		   (status = 'approved' AND redeem_by > $1) OR
		   (status IN ('pending', 'expired') AND on_timeout = 'allow' AND expires_at <= $1))`,
		n, usedBy, approval.DecidedByTimeout, id)
	return changedOne(tag, err, "redeem approval")
}

// UnredeemTicket implements approval.Store.
func (db *DB) UnredeemTicket(ctx context.Context, id, usedBy string) (bool, error) {
	tag, err := db.pool.Exec(ctx,
		`UPDATE approval_tickets SET used_at = 0, used_by = '',
		   status = CASE WHEN redeem_by = 0 THEN 'expired' ELSE 'approved' END,
		   decided_by = CASE WHEN redeem_by = 0 THEN '' ELSE decided_by END,
		   decided_at = CASE WHEN redeem_by = 0 THEN 0 ELSE decided_at END
		 WHERE id = $1 AND status = 'used' AND used_by = $2`,
		id, usedBy)
	return changedOne(tag, err, "give back approval")
}

// DeleteTicket implements approval.Store.
func (db *DB) DeleteTicket(ctx context.Context, id string) (bool, error) {
	tag, err := db.pool.Exec(ctx, `DELETE FROM approval_tickets WHERE id = $1 AND status = 'pending'`, id)
	changed, err := changedOne(tag, err, "delete approval")
	if changed {
		// What is left of a deleted ticket's provenance is never read.
		_, _ = db.pool.Exec(ctx, `DELETE FROM approval_provenance WHERE id = $1`, id)
	}
	return changed, err
}

// DueTickets implements approval.Store.
func (db *DB) DueTickets(ctx context.Context, now time.Time) ([]approval.Ticket, error) {
	return db.tickets(ctx, "due approvals",
		`SELECT `+ticketSelect+` FROM approval_tickets WHERE status = 'pending' AND expires_at <= $1 ORDER BY seq`, toNanos(now))
}

// CountPendingTickets implements approval.Store.
func (db *DB) CountPendingTickets(ctx context.Context, agentID string, now time.Time) (int, error) {
	var n int
	err := db.pool.QueryRow(ctx,
		`SELECT count(*) FROM approval_tickets WHERE status = 'pending' AND agent_id = $1 AND expires_at > $2`, agentID, toNanos(now)).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count pending approvals: %w", err)
	}
	return n, nil
}

// ExpireTicket implements approval.Store.
func (db *DB) ExpireTicket(ctx context.Context, id string, now time.Time) (bool, error) {
	tag, err := db.pool.Exec(ctx,
		`UPDATE approval_tickets SET status = 'expired' WHERE id = $1 AND status = 'pending' AND expires_at <= $2`,
		id, toNanos(now))
	return changedOne(tag, err, "expire approval")
}

func changedOne(tag pgconn.CommandTag, err error, what string) (bool, error) {
	if err != nil {
		return false, fmt.Errorf("%s: %w", what, err)
	}
	return tag.RowsAffected() == 1, nil
}

func scanTicket(r pgx.CollectableRow) (approval.Ticket, error) {
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
