package budget

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"time"

	"github.com/agentgov/agentgov/action"
)

// Spend is kept for every outcome settled, whether or not any budget
// applies: what each agent, on behalf of which user, team and org, spent on
// which model, per UTC day. It is written in the same store transaction as
// the budgets' counters (so it survives restarts and is exact under any
// concurrency), after the act: the decision path never touches it.

// Party is who an action was for, and the model it called ("" for a tool).
type Party struct {
	Agent string `json:"agent,omitempty"`
	User  string `json:"user,omitempty"`
	Team  string `json:"team,omitempty"`
	Org   string `json:"org,omitempty"`
	Model string `json:"model,omitempty"`
}

// SpendDims are the fields spend is grouped and filtered by, and "day".
var SpendDims = []string{"agent", "user", "team", "org", "model", "day"}

// SpendQuery asks for spend: what matches Filter (each field set must be
// equal) on the days from From up to but not including To (2006-01-02
// dates; either may be empty), summed per group of By.
type SpendQuery struct {
	Filter   Party
	From, To string
	By       []string
	// Limit bounds the groups returned, the largest spenders first (by
	// cost, then tokens, then calls); 0 for DefaultSpendGroups.
	Limit int
}

// Bounds of a spend query's groups.
const (
	DefaultSpendGroups = 1000
	MaxSpendGroups     = 10000
)

// SpendRow is one group's spend: the fields of By set, the others empty.
type SpendRow struct {
	Party
	Day   string  `json:"day,omitempty"`
	Spent Amounts `json:"spent"`
}

var dayPattern = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}$`)

// Validate checks q, naming the field at fault.
func (q *SpendQuery) Validate() error {
	for _, d := range []struct{ name, v string }{{"from", q.From}, {"to", q.To}} {
		if d.v == "" {
			continue
		}
		if _, err := time.Parse(time.DateOnly, d.v); err != nil || !dayPattern.MatchString(d.v) {
			return &ConfigError{Field: d.name, Problem: fmt.Sprintf("want a date such as 2026-07-01, got %q", d.v)}
		}
	}
	if q.From != "" && q.To != "" && q.To <= q.From {
		return &ConfigError{Field: "to", Problem: "must be after from"}
	}
	seen := map[string]bool{}
	for _, b := range q.By {
		if !slices.Contains(SpendDims, b) {
			return &ConfigError{Field: "group_by", Problem: fmt.Sprintf("unknown field %q (want agent, user, team, org, model or day)", b)}
		}
		if seen[b] {
			return &ConfigError{Field: "group_by", Problem: fmt.Sprintf("%q given twice", b)}
		}
		seen[b] = true
	}
	if q.Limit < 0 || q.Limit > MaxSpendGroups {
		return &ConfigError{Field: "limit", Problem: fmt.Sprintf("want 1 to %d groups", MaxSpendGroups)}
	}
	return nil
}

// Spend reports what was spent, budgets or not.
func (b *Budgets) Spend(ctx context.Context, q SpendQuery) ([]SpendRow, error) {
	if err := q.Validate(); err != nil {
		return nil, err
	}
	if q.Limit == 0 {
		q.Limit = DefaultSpendGroups
	}
	rows, err := b.st.Spend(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("spend: %w", err)
	}
	return rows, nil
}

// spendOf is what an outcome adds to its party's spend: the tokens as
// reported (a total without a split counts as neither input nor output),
// its cost, one call.
func spendOf(o *action.Outcome, cost int64) Amounts {
	return Amounts{CostMicros: cost, Tokens: o.TotalTokens(), InputTokens: o.InputTokens, OutputTokens: o.OutputTokens, Calls: 1}
}

// spent is the spend a settlement adds, and whose it is.
type spent struct {
	party  Party
	amount Amounts
}
