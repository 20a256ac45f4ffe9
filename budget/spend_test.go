package budget_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/budget"
)

// Outcomes are spend with no budget configured, counted on the UTC day of
// their settlement, exactly under concurrency; tokens without a split are
// neither input nor output.
func TestSpendIsKeptWithoutBudgets(t *testing.T) {
	e := newEnv(t, time.Date(2026, 7, 31, 23, 30, 0, 0, time.FixedZone("X", -2*3600)))
	ctx := context.Background()
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := action.Outcome{Status: "ok", InputTokens: 2, OutputTokens: 1, CostUSD: 0.000002}
			if i%4 == 0 {
				o = action.Outcome{Status: "ok", Tokens: 10}
			}
			if err := e.b.Settle(ctx, fmt.Sprintf("dec_%d", i), o); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	rows, err := e.b.Spend(ctx, budget.SpendQuery{By: []string{"day"}})
	if err != nil {
		t.Fatal(err)
	}
	// 23:30 at UTC-2 is 01:30 on August 1st, UTC.
	want := budget.Amounts{CostMicros: 60, Tokens: 30*3 + 10*10, InputTokens: 60, OutputTokens: 30, Calls: 40}
	if len(rows) != 1 || rows[0].Day != "2026-08-01" || rows[0].Spent != want || rows[0].Agent != "" {
		t.Fatalf("spend %+v, want one row of 2026-08-01 with %+v", rows, want)
	}
	if rows, _ := e.b.Spend(ctx, budget.SpendQuery{To: "2026-08-01"}); len(rows) != 0 {
		t.Errorf("spend before the day: %+v", rows)
	}
}

func TestSpendQueriesAreChecked(t *testing.T) {
	e := newEnv(t, time.Now())
	for _, tc := range []struct {
		q    budget.SpendQuery
		want string
	}{
		{budget.SpendQuery{From: "2026-1-1"}, "from: want a date"},
		{budget.SpendQuery{To: "2026-02-30"}, "to: want a date"},
		{budget.SpendQuery{From: "2026-02-01", To: "2026-02-01"}, "to: must be after from"},
		{budget.SpendQuery{By: []string{"session"}}, `group_by: unknown field "session"`},
		{budget.SpendQuery{By: []string{"day; DROP TABLE spend"}}, "group_by: unknown field"},
		{budget.SpendQuery{Limit: -1}, "limit: want 1 to 10000 groups"},
	} {
		_, err := e.b.Spend(context.Background(), tc.q)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.q, err, tc.want)
		}
	}
}
