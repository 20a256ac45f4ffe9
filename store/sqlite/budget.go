package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/agentgov/agentgov/budget"
)

var _ budget.Store = (*DB)(nil)

func init() {
	register("budget",
		`CREATE TABLE IF NOT EXISTS budget_configs (
			id         TEXT PRIMARY KEY,
			config     TEXT NOT NULL
		)`,
		// One row per budget and period key (a calendar period, a rolling
		// bucket, a session, or a rate-throttle bucket).
		`CREATE TABLE IF NOT EXISTS budget_counters (
			budget_id     TEXT NOT NULL,
			period_key    TEXT NOT NULL,
			spent_cost    INTEGER NOT NULL DEFAULT 0,
			spent_tokens  INTEGER NOT NULL DEFAULT 0,
			spent_input   INTEGER NOT NULL DEFAULT 0,
			spent_output  INTEGER NOT NULL DEFAULT 0,
			spent_calls   INTEGER NOT NULL DEFAULT 0,
			res_cost      INTEGER NOT NULL DEFAULT 0,
			res_tokens    INTEGER NOT NULL DEFAULT 0,
			res_input     INTEGER NOT NULL DEFAULT 0,
			res_output    INTEGER NOT NULL DEFAULT 0,
			res_calls     INTEGER NOT NULL DEFAULT 0,
			alerted       INTEGER NOT NULL DEFAULT 0,
			updated_at    INTEGER NOT NULL,
			PRIMARY KEY (budget_id, period_key)
		) WITHOUT ROWID`,
		`CREATE TABLE IF NOT EXISTS budget_reservations (
			decision_id TEXT PRIMARY KEY,
			expires_at  INTEGER NOT NULL,
			expired     INTEGER NOT NULL DEFAULT 0,
			holds       TEXT NOT NULL
		)`,
		`CREATE INDEX IF NOT EXISTS budget_reservations_due ON budget_reservations (expired, expires_at)`,
	)
}

// PutBudget implements budget.Store.
func (db *DB) PutBudget(ctx context.Context, c budget.Config) error {
	raw, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("encode budget: %w", err)
	}
	if _, err := db.write.ExecContext(ctx,
		`INSERT INTO budget_configs (id, config) VALUES (?, ?)
		 ON CONFLICT (id) DO UPDATE SET config = excluded.config`, c.ID, string(raw)); err != nil {
		return fmt.Errorf("store budget: %w", err)
	}
	return nil
}

// DeleteBudget implements budget.Store. Reservations that still hold against
// the budget are left alone: settling them later finds no budget and skips it.
func (db *DB) DeleteBudget(ctx context.Context, id string) error {
	return db.UpdateBudgets(ctx, func(tx budget.Tx) error {
		q := tx.(*budgetTx).q
		res, err := q.ExecContext(ctx, `DELETE FROM budget_configs WHERE id = ?`, id)
		if err != nil {
			return fmt.Errorf("delete budget: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("delete budget: %w", err)
		} else if n == 0 {
			return fmt.Errorf("%w: %s", budget.ErrNotFound, id)
		}
		if _, err := q.ExecContext(ctx, `DELETE FROM budget_counters WHERE budget_id = ?`, id); err != nil {
			return fmt.Errorf("delete budget counters: %w", err)
		}
		return nil
	})
}

// ListBudgets implements budget.Store.
func (db *DB) ListBudgets(ctx context.Context) ([]budget.Config, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT id, config FROM budget_configs ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list budgets: %w", err)
	}
	defer rows.Close()
	var out []budget.Config
	for rows.Next() {
		var id, raw string
		if err := rows.Scan(&id, &raw); err != nil {
			return nil, fmt.Errorf("list budgets: %w", err)
		}
		var c budget.Config
		if err := json.Unmarshal([]byte(raw), &c); err != nil {
			return nil, fmt.Errorf("list budgets: stored budget %s: %w", id, err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list budgets: %w", err)
	}
	return out, nil
}

// UpdateBudgets implements budget.Store. BEGIN IMMEDIATE takes SQLite's write
// lock before the first read, so a check-and-reserve cannot interleave with
// another one, from this process or any other that opened the same file.
func (db *DB) UpdateBudgets(ctx context.Context, fn func(tx budget.Tx) error) error {
	conn, err := db.write.Conn(ctx)
	if err != nil {
		return fmt.Errorf("budget transaction: %w", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `BEGIN IMMEDIATE`); err != nil {
		return fmt.Errorf("budget transaction: %w", err)
	}
	// COMMIT and ROLLBACK must run even when ctx has ended, or the pooled
	// connection would stay inside the transaction.
	bg := context.WithoutCancel(ctx)
	rollback := func() {
		if _, err := conn.ExecContext(bg, `ROLLBACK`); err != nil {
			_ = conn.Raw(func(any) error { return driver.ErrBadConn }) // discard the connection
		}
	}
	if err := fn(&budgetTx{q: conn}); err != nil {
		rollback()
		return err
	}
	if _, err := conn.ExecContext(bg, `COMMIT`); err != nil {
		rollback()
		return fmt.Errorf("commit budget transaction: %w", err)
	}
	return nil
}

// ViewBudgets implements budget.Store on the read pool, beside the writer.
func (db *DB) ViewBudgets(ctx context.Context, fn func(tx budget.Tx) error) error {
	tx, err := db.read.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("budget snapshot: %w", err)
	}
	defer tx.Rollback()
	return fn(&budgetTx{q: tx, readOnly: true})
}

type budgetQueryer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

type budgetTx struct {
	q        budgetQueryer
	readOnly bool
}

var errBudgetReadOnly = errors.New("write in a read-only budget snapshot")

const budgetCounterCols = `budget_id, period_key, spent_cost, spent_tokens, spent_input, spent_output, spent_calls,
	res_cost, res_tokens, res_input, res_output, res_calls, alerted`

func scanBudgetCounters(rows *sql.Rows) ([]budget.Counter, error) {
	defer rows.Close()
	var out []budget.Counter
	for rows.Next() {
		var c budget.Counter
		if err := rows.Scan(&c.Budget, &c.Key,
			&c.Spent.CostMicros, &c.Spent.Tokens, &c.Spent.InputTokens, &c.Spent.OutputTokens, &c.Spent.Calls,
			&c.Reserved.CostMicros, &c.Reserved.Tokens, &c.Reserved.InputTokens, &c.Reserved.OutputTokens, &c.Reserved.Calls,
			&c.Alerted); err != nil {
			return nil, fmt.Errorf("read budget counters: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read budget counters: %w", err)
	}
	return out, nil
}

func (t *budgetTx) Counters(ctx context.Context, id string, keys []string) ([]budget.Counter, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	args := make([]any, 0, len(keys)+1)
	args = append(args, id)
	for _, k := range keys {
		args = append(args, k)
	}
	rows, err := t.q.QueryContext(ctx,
		`SELECT `+budgetCounterCols+` FROM budget_counters WHERE budget_id = ? AND period_key IN (?`+
			strings.Repeat(", ?", len(keys)-1)+`)`, args...)
	if err != nil {
		return nil, fmt.Errorf("read budget counters: %w", err)
	}
	return scanBudgetCounters(rows)
}

func (t *budgetTx) CountersWithPrefix(ctx context.Context, id, prefix string, limit int) ([]budget.Counter, error) {
	rows, err := t.q.QueryContext(ctx,
		`SELECT `+budgetCounterCols+` FROM budget_counters
		 WHERE budget_id = ? AND substr(period_key, 1, ?) = ?
		 ORDER BY updated_at DESC, period_key LIMIT ?`, id, len(prefix), prefix, limit)
	if err != nil {
		return nil, fmt.Errorf("read budget counters: %w", err)
	}
	return scanBudgetCounters(rows)
}

func (t *budgetTx) AddCounter(ctx context.Context, id, key string, spent, reserved budget.Amounts, alerted bool, at time.Time) error {
	if t.readOnly {
		return errBudgetReadOnly
	}
	_, err := t.q.ExecContext(ctx,
		`INSERT INTO budget_counters (`+budgetCounterCols+`, updated_at)
		 SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, max(0, ?8), max(0, ?9), max(0, ?10), max(0, ?11), max(0, ?12), ?13, ?14
		 WHERE EXISTS (SELECT 1 FROM budget_configs WHERE id = ?1)
		 ON CONFLICT (budget_id, period_key) DO UPDATE SET
			spent_cost   = spent_cost + ?3,
			spent_tokens = spent_tokens + ?4,
			spent_input  = spent_input + ?5,
			spent_output = spent_output + ?6,
			spent_calls  = spent_calls + ?7,
			res_cost     = max(0, res_cost + ?8),
			res_tokens   = max(0, res_tokens + ?9),
			res_input    = max(0, res_input + ?10),
			res_output   = max(0, res_output + ?11),
			res_calls    = max(0, res_calls + ?12),
			alerted      = max(alerted, ?13),
			updated_at   = ?14`,
		id, key,
		spent.CostMicros, spent.Tokens, spent.InputTokens, spent.OutputTokens, spent.Calls,
		reserved.CostMicros, reserved.Tokens, reserved.InputTokens, reserved.OutputTokens, reserved.Calls,
		alerted, at.UnixNano())
	if err != nil {
		return fmt.Errorf("update budget counter: %w", err)
	}
	return nil
}

func (t *budgetTx) InsertReservation(ctx context.Context, r budget.Reservation) error {
	if t.readOnly {
		return errBudgetReadOnly
	}
	holds, err := json.Marshal(r.Holds)
	if err != nil {
		return fmt.Errorf("encode reservation: %w", err)
	}
	res, err := t.q.ExecContext(ctx,
		`INSERT INTO budget_reservations (decision_id, expires_at, expired, holds) VALUES (?, ?, ?, ?)
		 ON CONFLICT (decision_id) DO NOTHING`,
		r.DecisionID, r.ExpiresAt.UnixNano(), r.Expired, string(holds))
	if err != nil {
		return fmt.Errorf("insert reservation: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("insert reservation: %w", err)
	} else if n == 0 {
		return budget.ErrDuplicate
	}
	return nil
}

func scanBudgetReservation(sc interface{ Scan(...any) error }) (budget.Reservation, error) {
	var r budget.Reservation
	var exp int64
	var holds string
	if err := sc.Scan(&r.DecisionID, &exp, &r.Expired, &holds); err != nil {
		return budget.Reservation{}, err
	}
	r.ExpiresAt = time.Unix(0, exp)
	if err := json.Unmarshal([]byte(holds), &r.Holds); err != nil {
		return budget.Reservation{}, fmt.Errorf("stored reservation %s: %w", r.DecisionID, err)
	}
	return r, nil
}

func (t *budgetTx) Reservation(ctx context.Context, decisionID string) (budget.Reservation, bool, error) {
	r, err := scanBudgetReservation(t.q.QueryRowContext(ctx,
		`SELECT decision_id, expires_at, expired, holds FROM budget_reservations WHERE decision_id = ?`, decisionID))
	if errors.Is(err, sql.ErrNoRows) {
		return budget.Reservation{}, false, nil
	}
	if err != nil {
		return budget.Reservation{}, false, fmt.Errorf("read reservation: %w", err)
	}
	return r, true, nil
}

func (t *budgetTx) DeleteReservation(ctx context.Context, decisionID string) error {
	if t.readOnly {
		return errBudgetReadOnly
	}
	if _, err := t.q.ExecContext(ctx, `DELETE FROM budget_reservations WHERE decision_id = ?`, decisionID); err != nil {
		return fmt.Errorf("delete reservation: %w", err)
	}
	return nil
}

func (t *budgetTx) DueReservations(ctx context.Context, now time.Time, limit int) ([]budget.Reservation, error) {
	rows, err := t.q.QueryContext(ctx,
		`SELECT decision_id, expires_at, expired, holds FROM budget_reservations
		 WHERE expired = 0 AND expires_at <= ? ORDER BY expires_at LIMIT ?`, now.UnixNano(), limit)
	if err != nil {
		return nil, fmt.Errorf("read due reservations: %w", err)
	}
	defer rows.Close()
	var out []budget.Reservation
	for rows.Next() {
		r, err := scanBudgetReservation(rows)
		if err != nil {
			return nil, fmt.Errorf("read due reservations: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read due reservations: %w", err)
	}
	return out, nil
}

func (t *budgetTx) MarkExpired(ctx context.Context, decisionID string) error {
	if t.readOnly {
		return errBudgetReadOnly
	}
	if _, err := t.q.ExecContext(ctx, `UPDATE budget_reservations SET expired = 1 WHERE decision_id = ?`, decisionID); err != nil {
		return fmt.Errorf("expire reservation: %w", err)
	}
	return nil
}

func (t *budgetTx) PurgeExpired(ctx context.Context, cutoff time.Time) (int, error) {
	if t.readOnly {
		return 0, errBudgetReadOnly
	}
	res, err := t.q.ExecContext(ctx, `DELETE FROM budget_reservations WHERE expired = 1 AND expires_at < ?`, cutoff.UnixNano())
	if err != nil {
		return 0, fmt.Errorf("purge reservations: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("purge reservations: %w", err)
	}
	if _, err := t.q.ExecContext(ctx, `DELETE FROM budget_counters WHERE substr(period_key, 1, 2) = 'q:' AND updated_at < ?`, cutoff.UnixNano()); err != nil {
		return 0, fmt.Errorf("purge rate counters: %w", err)
	}
	return int(n), nil
}
