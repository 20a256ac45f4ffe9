package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/agentgov/agentgov/budget"
)

// schemaSpend keeps spend per UTC day and per party (agent, user, team,
// org, model): one row each, added to by every outcome settled, on every
// replica.
const schemaSpend = `
CREATE TABLE spend (
	day           text NOT NULL,
	agent_id      text NOT NULL,
	user_id       text NOT NULL,
	team          text NOT NULL,
	org           text NOT NULL,
	model         text NOT NULL,
	cost          bigint NOT NULL DEFAULT 0,
	tokens        bigint NOT NULL DEFAULT 0,
	input_tokens  bigint NOT NULL DEFAULT 0,
	output_tokens bigint NOT NULL DEFAULT 0,
	calls         bigint NOT NULL DEFAULT 0,
	PRIMARY KEY (day, agent_id, user_id, team, org, model)
);
`

// The columns of spend's dimensions, by budget.SpendDims' names. Queries
// are built only from these.
var spendCols = map[string]string{"agent": "agent_id", "user": "user_id", "team": "team", "org": "org", "model": "model", "day": "day"}

// DecisionParty implements budget.Store: who the logged decision was for,
// as its audit record says (masked as the record is), in whichever
// replica's log holds it.
func (db *DB) DecisionParty(ctx context.Context, id string) (budget.Party, bool, error) {
	// Decoded here, not as jsonb: an agent's arguments may hold a NUL,
	// which JSON allows and PostgreSQL's jsonb refuses.
	var data []byte
	err := db.pool.QueryRow(ctx, `SELECT data FROM audit_entries
		WHERE decision_id = $1 ORDER BY replica, idx LIMIT 1`, id).Scan(&data)
	if errors.Is(err, pgx.ErrNoRows) {
		return budget.Party{}, false, nil
	}
	if err != nil {
		return budget.Party{}, false, fmt.Errorf("find the party of decision %s: %w", id, err)
	}
	var e struct {
		Record struct {
			Action struct {
				Agent struct {
					ID string `json:"id"`
				} `json:"agent"`
				Principal struct {
					User string `json:"user"`
					Team string `json:"team"`
					Org  string `json:"org"`
				} `json:"principal"`
				Model string `json:"model"`
			} `json:"action"`
		} `json:"record"`
	}
	if err := json.Unmarshal(data, &e); err != nil {
		return budget.Party{}, false, fmt.Errorf("find the party of decision %s: read its audit entry: %w", id, err)
	}
	a := e.Record.Action
	return budget.Party{Agent: a.Agent.ID, User: a.Principal.User, Team: a.Principal.Team, Org: a.Principal.Org, Model: a.Model}, true, nil
}

// AddSpend implements budget.Tx.
func (t *budgetTx) AddSpend(ctx context.Context, p budget.Party, day string, a budget.Amounts) error {
	if t.readOnly {
		return errBudgetReadOnly
	}
	_, err := t.q.Exec(ctx,
		`INSERT INTO spend (day, agent_id, user_id, team, org, model, cost, tokens, input_tokens, output_tokens, calls)
		 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
		 ON CONFLICT (day, agent_id, user_id, team, org, model) DO UPDATE SET
			cost          = spend.cost + excluded.cost,
			tokens        = spend.tokens + excluded.tokens,
			input_tokens  = spend.input_tokens + excluded.input_tokens,
			output_tokens = spend.output_tokens + excluded.output_tokens,
			calls         = spend.calls + excluded.calls`,
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
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	for _, f := range []struct{ col, v string }{
		{"agent_id", q.Filter.Agent}, {"user_id", q.Filter.User}, {"team", q.Filter.Team}, {"org", q.Filter.Org}, {"model", q.Filter.Model},
	} {
		if f.v != "" {
			where = append(where, f.col+" = "+arg(f.v))
		}
	}
	if q.From != "" {
		where = append(where, "day >= "+arg(q.From))
	}
	if q.To != "" {
		where = append(where, "day < "+arg(q.To))
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
		"sum(cost)::bigint", "sum(tokens)::bigint", "sum(input_tokens)::bigint", "sum(output_tokens)::bigint", "sum(calls)::bigint"), ", ") + ` FROM spend`
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
	sel += ` LIMIT ` + arg(q.Limit)
	rows, err := db.pool.Query(ctx, sel, args...)
	if err != nil {
		return nil, fmt.Errorf("read spend: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (budget.SpendRow, error) {
		var s budget.SpendRow
		dest := make([]any, 0, len(cols)+5)
		for _, b := range q.By {
			switch b {
			case "agent":
				dest = append(dest, &s.Agent)
			case "user":
				dest = append(dest, &s.User)
			case "team":
				dest = append(dest, &s.Team)
			case "org":
				dest = append(dest, &s.Org)
			case "model":
				dest = append(dest, &s.Model)
			case "day":
				dest = append(dest, &s.Day)
			}
		}
		dest = append(dest, &s.Spent.CostMicros, &s.Spent.Tokens, &s.Spent.InputTokens, &s.Spent.OutputTokens, &s.Spent.Calls)
		return s, r.Scan(dest...)
	})
	if err != nil {
		return nil, fmt.Errorf("read spend: %w", err)
	}
	return out, nil
}
