package storetest

import (
	"testing"

	"github.com/agentgov/agentgov/audit"
	"github.com/agentgov/agentgov/budget"
)

// Spend is kept without budgets: the party of a decision is read from its
// audit record, every settled outcome adds to its day's row, and a query
// filters and groups it, the largest spenders first.
func testSpend(t *testing.T, b Backend) {
	db := open(t, b)
	rows := []audit.Row{
		{Index: 0, Data: []byte(`{"index":0,"kind":"decision","record":{"action":{"agent":{"id":"a1"},"principal":{"user":"alice","team":"search","org":"acme"},"model":"gpt-4o"},"decision":{"effect":"allow","id":"dec_S1"}},"time":"2026-03-01T12:00:00Z"}`)},
	}
	if err := db.AuditAppend(bg, rows, leafNodes(rows)); err != nil {
		t.Fatal(err)
	}
	p, ok, err := db.DecisionParty(bg, "dec_S1")
	if err != nil || !ok || p != (budget.Party{Agent: "a1", User: "alice", Team: "search", Org: "acme", Model: "gpt-4o"}) {
		t.Fatalf("party of dec_S1 = %+v %v %v", p, ok, err)
	}
	if _, ok, err := db.DecisionParty(bg, "dec_NONE"); ok || err != nil {
		t.Fatalf("party of an unknown decision: %v %v", ok, err)
	}
	add := func(p budget.Party, day string, cost int64) {
		t.Helper()
		if err := db.UpdateBudgets(bg, func(tx budget.Tx) error {
			return tx.AddSpend(bg, p, day, budget.Amounts{CostMicros: cost, Tokens: 10, InputTokens: 7, OutputTokens: 3, Calls: 1})
		}); err != nil {
			t.Fatal(err)
		}
	}
	bob := budget.Party{Agent: "a2", User: "bob", Team: "search", Org: "acme", Model: "gpt-4o-mini"}
	add(p, "2026-03-01", 100)
	add(p, "2026-03-01", 50)
	add(p, "2026-03-02", 25)
	add(bob, "2026-03-02", 400)

	all, err := db.Spend(bg, budget.SpendQuery{By: []string{"agent"}, Limit: 10})
	if err != nil || len(all) != 2 || all[0].Agent != "a2" || all[0].Spent.CostMicros != 400 ||
		all[1].Agent != "a1" || all[1].Spent.CostMicros != 175 || all[1].Spent.Calls != 3 || all[1].Spent.Tokens != 30 {
		t.Fatalf("spend by agent = %+v, %v", all, err)
	}
	day, err := db.Spend(bg, budget.SpendQuery{Filter: budget.Party{User: "alice"}, From: "2026-03-01", To: "2026-03-02", By: []string{"day", "model"}, Limit: 10})
	if err != nil || len(day) != 1 || day[0].Day != "2026-03-01" || day[0].Model != "gpt-4o" || day[0].Spent.CostMicros != 150 {
		t.Fatalf("alice's spend of 2026-03-01 = %+v, %v", day, err)
	}
	top, err := db.Spend(bg, budget.SpendQuery{By: []string{"user"}, Limit: 1})
	if err != nil || len(top) != 1 || top[0].User != "bob" {
		t.Fatalf("the largest spender = %+v, %v", top, err)
	}
	if err := db.ViewBudgets(bg, func(tx budget.Tx) error { return tx.AddSpend(bg, p, "2026-03-01", budget.Amounts{Calls: 1}) }); err == nil {
		t.Fatal("spend added in a read-only snapshot")
	}
}
