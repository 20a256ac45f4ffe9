package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/agentgov/agentgov/budget"
)

// Spend is kept per UTC day and per party (agent, user, team, org, model):
// one row each, added to by every outcome settled.
func init() {
	register("spend",
		`CREATE TABLE IF NOT EXISTS spend (
			day           TEXT NOT NULL,
			agent_id      TEXT NOT NULL,
			user_id       TEXT NOT NULL,
			team          TEXT NOT NULL,
			org           TEXT NOT NULL,
			model         TEXT NOT NULL,
			cost          INTEGER NOT NULL DEFAULT 0,
			tokens        INTEGER NOT NULL DEFAULT 0,
			input_tokens  INTEGER NOT NULL DEFAULT 0,
			output_tokens INTEGER NOT NULL DEFAULT 0,
			calls         INTEGER NOT NULL DEFAULT 0,
			PRIMARY KEY (day, agent_id, user_id, team, org, model)
		) WITHOUT ROWID`)
}

// The columns of spend's dimensions, by budget.SpendDims' names. Queries
// are built only from these.
var spendCols = map[string]string{"agent": "agent_id", "user": "user_id", "team": "team", "org": "org", "model": "model", "day": "day"}

// DecisionParty implements budget.Store: who the logged decision was for,
// as its audit record says (masked as the record is).
func (db *DB) DecisionParty(ctx context.Context, id string) (budget.Party, bool, error) {
	var p budget.Party
	err := db.read.QueryRowContext(ctx, `SELECT
			coalesce(json_extract(CAST(data AS TEXT), '$.record.action.agent.id'), ''),
			coalesce(json_extract(CAST(data AS TEXT), '$.record.action.principal.user'), ''),
			coalesce(json_extract(CAST(data AS TEXT), '$.record.action.principal.team'), ''),
			coalesce(json_extract(CAST(data AS TEXT), '$.record.action.principal.org'), ''),
			coalesce(json_extract(CAST(data AS TEXT), '$.record.action.model'), '')
		FROM audit_entries WHERE `+decisionRef+` = ? LIMIT 1`, id).Scan(&p.Agent, &p.User, &p.Team, &p.Org, &p.Model)
	if errors.Is(err, sql.ErrNoRows) {
		return budget.Party{}, false, nil
	}
	if err != nil {
		return budget.Party{}, false, fmt.Errorf("find the party of decision %s: %w", id, err)
	}
	return p, true, nil
}

// AddSpend implements budget.Tx.
func (t *budgetTx) AddSpend(ctx context.Context, p budget.Party, day string, a budget.Amounts) error {
	if t.readOnly {
		return errBudgetReadOnly
	}
	_, err := t.q.ExecContext(ctx,
		`INSERT INTO spend (day, agent_id, user_id, team, org, model, cost, tokens, input_tokens, output_tokens, calls)
		 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
		 ON CONFLICT (day, agent_id, user_id, team, org, model) DO UPDATE SET
			cost          = cost + ?7,
			tokens        = tokens + ?8,
			input_tokens  = input_tokens + ?9,
			output_tokens = output_tokens + ?10,
			calls         = calls + ?11`,
		day, p.Agent, p.User, p.Team, p.Org, p.Model, a.CostMicros, a.Tokens, a.InputTokens, a.OutputTokens, a.Calls)
	if err != nil {
		return fmt.Errorf("add spend: %w", err)
	}
	return nil
}

// Spend implements budget.Store.
func (db *DB) Spend(ctx context.Context, q budget.SpendQuery) ([]budget.SpendRow, error) {
	var where []string
	var args []any
	for _, f := range []struct{ col, v string }{
		{"agent_id", q.Filter.Agent}, {"user_id", q.Filter.User}, {"team", q.Filter.Team}, {"org", q.Filter.Org}, {"model", q.Filter.Model},
	} {
		if f.v != "" {
			where = append(where, f.col+" = ?")
			args = append(args, f.v)
		}
	}
	if q.From != "" {
		where = append(where, "day >= ?")
		args = append(args, q.From)
	}
	if q.To != "" {
		where = append(where, "day < ?")
		args = append(args, q.To)
	}
	cols := make([]string, 0, len(q.By))
	for _, b := range q.By {
		c, ok := spendCols[b]
		if !ok {
			return nil, fmt.Errorf("spend: unknown field %q", b)
		}
		cols = append(cols, c)
	}
	sel := `SELECT ` + strings.Join(append(append([]string(nil), cols...),
		"sum(cost)", "sum(tokens)", "sum(input_tokens)", "sum(output_tokens)", "sum(calls)"), ", ") + ` FROM spend`
	if len(where) > 0 {
		sel += ` WHERE ` + strings.Join(where, " AND ")
	}
	if len(cols) > 0 {
		sel += ` GROUP BY ` + strings.Join(cols, ", ")
	}
	sel += ` HAVING count(*) > 0 ORDER BY sum(cost) DESC, sum(tokens) DESC, sum(calls) DESC`
	for _, c := range cols {
		sel += ", " + c
	}
	sel += ` LIMIT ?`
	args = append(args, q.Limit)
	rows, err := db.read.QueryContext(ctx, sel, args...)
	if err != nil {
		return nil, fmt.Errorf("read spend: %w", err)
	}
	defer rows.Close()
	var out []budget.SpendRow
	for rows.Next() {
		var r budget.SpendRow
		dest := make([]any, 0, len(cols)+5)
		for _, b := range q.By {
			switch b {
			case "agent":
				dest = append(dest, &r.Agent)
			case "user":
				dest = append(dest, &r.User)
			case "team":
				dest = append(dest, &r.Team)
			case "org":
				dest = append(dest, &r.Org)
			case "model":
				dest = append(dest, &r.Model)
			case "day":
				dest = append(dest, &r.Day)
			}
		}
		dest = append(dest, &r.Spent.CostMicros, &r.Spent.Tokens, &r.Spent.InputTokens, &r.Spent.OutputTokens, &r.Spent.Calls)
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("read spend: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read spend: %w", err)
	}
	return out, nil
}
