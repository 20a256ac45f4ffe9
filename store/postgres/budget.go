package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/agentgov/agentgov/budget"
)

var _ budget.Store = (*DB)(nil)

// maxBudgetAttempts bounds how often a budget transaction runs again after
// a deadlock or serialization failure.
const maxBudgetAttempts = 5

// PutBudget implements budget.Store. The table's trigger announces the
// change to every replica.
func (db *DB) PutBudget(ctx context.Context, c budget.Config) error {
	raw, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("encode budget: %w", err)
	}
	if _, err := db.pool.Exec(ctx,
		`INSERT INTO budget_configs (id, config) VALUES ($1, $2)
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
		tag, err := q.Exec(ctx, `DELETE FROM budget_configs WHERE id = $1`, id)
		if err != nil {
			return fmt.Errorf("delete budget: %w", err)
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("%w: %s", budget.ErrNotFound, id)
		}
		if _, err := q.Exec(ctx, `DELETE FROM budget_counters WHERE budget_id = $1`, id); err != nil {
			return fmt.Errorf("delete budget counters: %w", err)
		}
		return nil
	})
}

// ListBudgets implements budget.Store.
func (db *DB) ListBudgets(ctx context.Context) ([]budget.Config, error) {
	rows, err := db.pool.Query(ctx, `SELECT id, config FROM budget_configs ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list budgets: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (budget.Config, error) {
		var id, raw string
		if err := r.Scan(&id, &raw); err != nil {
			return budget.Config{}, err
		}
		var c budget.Config
		if err := json.Unmarshal([]byte(raw), &c); err != nil {
			return budget.Config{}, fmt.Errorf("stored budget %s: %w", id, err)
		}
		return c, nil
	})
	if err != nil {
		return nil, fmt.Errorf("list budgets: %w", err)
	}
	return out, nil
}

// UpdateBudgets implements budget.Store. Every budget transaction, from
// every replica, first takes one transaction-level advisory lock, so that
// a check-and-reserve never interleaves with another: what it read is what
// it writes against, as BEGIN IMMEDIATE gives store/sqlite. The
// transaction runs at READ COMMITTED, so that each statement after the
// lock sees every commit made before it was granted. A deadlock or
// serialization failure runs fn again.
func (db *DB) UpdateBudgets(ctx context.Context, fn func(tx budget.Tx) error) error {
	for attempt := 1; ; attempt++ {
		err := pgx.BeginTxFunc(ctx, db.pool, pgx.TxOptions{IsoLevel: pgx.ReadCommitted}, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, db.budgetLock); err != nil {
				return fmt.Errorf("budget lock: %w", err)
			}
			return fn(&budgetTx{q: tx})
		})
		if err == nil || !retryable(err) || attempt == maxBudgetAttempts {
			if err != nil && !errors.Is(err, budget.ErrNotFound) && !errors.Is(err, budget.ErrDuplicate) {
				return fmt.Errorf("budget transaction: %w", err)
			}
			return err
		}
	}
}

// ViewBudgets implements budget.Store: a read-only snapshot, beside the
// writers.
func (db *DB) ViewBudgets(ctx context.Context, fn func(tx budget.Tx) error) error {
	return pgx.BeginTxFunc(ctx, db.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		return fn(&budgetTx{q: tx, readOnly: true})
	})
}

type budgetTx struct {
	q        pgx.Tx
	readOnly bool
}

var errBudgetReadOnly = errors.New("write in a read-only budget snapshot")

const budgetCounterCols = `budget_id, period_key, spent_cost, spent_tokens, spent_input, spent_output, spent_calls,
	res_cost, res_tokens, res_input, res_output, res_calls, alerted`

func scanBudgetCounter(r pgx.CollectableRow) (budget.Counter, error) {
	var c budget.Counter
	err := r.Scan(&c.Budget, &c.Key,
		&c.Spent.CostMicros, &c.Spent.Tokens, &c.Spent.InputTokens, &c.Spent.OutputTokens, &c.Spent.Calls,
		&c.Reserved.CostMicros, &c.Reserved.Tokens, &c.Reserved.InputTokens, &c.Reserved.OutputTokens, &c.Reserved.Calls,
		&c.Alerted)
	return c, err
}

func (t *budgetTx) counters(ctx context.Context, q string, args ...any) ([]budget.Counter, error) {
	rows, err := t.q.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("read budget counters: %w", err)
	}
	out, err := pgx.CollectRows(rows, scanBudgetCounter)
	if err != nil {
		return nil, fmt.Errorf("read budget counters: %w", err)
	}
	return out, nil
}

func (t *budgetTx) Counters(ctx context.Context, id string, keys []string) ([]budget.Counter, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	return t.counters(ctx, `SELECT `+budgetCounterCols+` FROM budget_counters WHERE budget_id = $1 AND period_key = ANY($2)`, id, keys)
}

func (t *budgetTx) CountersWithPrefix(ctx context.Context, id, prefix string, limit int) ([]budget.Counter, error) {
	return t.counters(ctx, `SELECT `+budgetCounterCols+` FROM budget_counters
		WHERE budget_id = $1 AND starts_with(period_key, $2)
		ORDER BY updated_at DESC, period_key LIMIT $3`, id, prefix, limit)
}

func (t *budgetTx) AddCounter(ctx context.Context, id, key string, spent, reserved budget.Amounts, alerted bool, at time.Time) error {
	if t.readOnly {
		return errBudgetReadOnly
	}
	_, err := t.q.Exec(ctx,
		`INSERT INTO budget_counters (`+budgetCounterCols+`, updated_at)
		 SELECT $1, $2, $3, $4, $5, $6, $7, GREATEST(0, $8::bigint), GREATEST(0, $9::bigint), GREATEST(0, $10::bigint),
			GREATEST(0, $11::bigint), GREATEST(0, $12::bigint), $13, $14
		 WHERE EXISTS (SELECT 1 FROM budget_configs WHERE id = $1)
		 ON CONFLICT (budget_id, period_key) DO UPDATE SET
			spent_cost   = budget_counters.spent_cost + $3,
			spent_tokens = budget_counters.spent_tokens + $4,
			spent_input  = budget_counters.spent_input + $5,
			spent_output = budget_counters.spent_output + $6,
			spent_calls  = budget_counters.spent_calls + $7,
			res_cost     = GREATEST(0, budget_counters.res_cost + $8),
			res_tokens   = GREATEST(0, budget_counters.res_tokens + $9),
			res_input    = GREATEST(0, budget_counters.res_input + $10),
			res_output   = GREATEST(0, budget_counters.res_output + $11),
			res_calls    = GREATEST(0, budget_counters.res_calls + $12),
			alerted      = budget_counters.alerted OR $13,
			updated_at   = $14`,
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
	tag, err := t.q.Exec(ctx,
		`INSERT INTO budget_reservations (decision_id, expires_at, expired, holds) VALUES ($1, $2, $3, $4)
		 ON CONFLICT (decision_id) DO NOTHING`,
		r.DecisionID, r.ExpiresAt.UnixNano(), r.Expired, string(holds))
	if err != nil {
		return fmt.Errorf("insert reservation: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return budget.ErrDuplicate
	}
	return nil
}

func scanBudgetReservation(r pgx.CollectableRow) (budget.Reservation, error) {
	var res budget.Reservation
	var exp int64
	var holds string
	if err := r.Scan(&res.DecisionID, &exp, &res.Expired, &holds); err != nil {
		return budget.Reservation{}, err
	}
	res.ExpiresAt = time.Unix(0, exp)
	if err := json.Unmarshal([]byte(holds), &res.Holds); err != nil {
		return budget.Reservation{}, fmt.Errorf("stored reservation %s: %w", res.DecisionID, err)
	}
	return res, nil
}

func (t *budgetTx) Reservation(ctx context.Context, decisionID string) (budget.Reservation, bool, error) {
	rows, err := t.q.Query(ctx, `SELECT decision_id, expires_at, expired, holds FROM budget_reservations WHERE decision_id = $1`, decisionID)
	if err != nil {
		return budget.Reservation{}, false, fmt.Errorf("read reservation: %w", err)
	}
	r, err := pgx.CollectExactlyOneRow(rows, scanBudgetReservation)
	if isNoRows(err) {
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
	if _, err := t.q.Exec(ctx, `DELETE FROM budget_reservations WHERE decision_id = $1`, decisionID); err != nil {
		return fmt.Errorf("delete reservation: %w", err)
	}
	return nil
}

func (t *budgetTx) DueReservations(ctx context.Context, now time.Time, limit int) ([]budget.Reservation, error) {
	rows, err := t.q.Query(ctx,
		`SELECT decision_id, expires_at, expired, holds FROM budget_reservations
		 WHERE NOT expired AND expires_at <= $1 ORDER BY expires_at LIMIT $2`, now.UnixNano(), limit)
	if err != nil {
		return nil, fmt.Errorf("read due reservations: %w", err)
	}
	out, err := pgx.CollectRows(rows, scanBudgetReservation)
	if err != nil {
		return nil, fmt.Errorf("read due reservations: %w", err)
	}
	return out, nil
}

func (t *budgetTx) MarkExpired(ctx context.Context, decisionID string) error {
	if t.readOnly {
		return errBudgetReadOnly
	}
	if _, err := t.q.Exec(ctx, `UPDATE budget_reservations SET expired = true WHERE decision_id = $1`, decisionID); err != nil {
		return fmt.Errorf("expire reservation: %w", err)
	}
	return nil
}

func (t *budgetTx) PurgeExpired(ctx context.Context, cutoff time.Time) (int, error) {
	if t.readOnly {
		return 0, errBudgetReadOnly
	}
	tag, err := t.q.Exec(ctx, `DELETE FROM budget_reservations WHERE expired AND expires_at < $1`, cutoff.UnixNano())
	if err != nil {
		return 0, fmt.Errorf("purge reservations: %w", err)
	}
	if _, err := t.q.Exec(ctx, `DELETE FROM budget_counters WHERE starts_with(period_key, 'q:') AND updated_at < $1`, cutoff.UnixNano()); err != nil {
		return 0, fmt.Errorf("purge rate counters: %w", err)
	}
	return int(tag.RowsAffected()), nil
}
