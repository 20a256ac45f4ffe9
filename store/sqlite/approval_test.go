package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/approval"
	"github.com/agentgov/agentgov/store/sqlite"
)

// A database from before tickets were bound to the whole action keeps its
// tickets, without the arguments it held in clear, and none of them can be
// redeemed: each lacks the action digest a redemption compares.
func TestTicketsOfTheOldTableAreCarriedOverUnredeemable(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	old, err := sql.Open("sqlite", "file:"+filepath.Join(dir, sqlite.FileName))
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`CREATE TABLE approvals (
			seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, status TEXT NOT NULL,
			agent_id TEXT NOT NULL, session TEXT NOT NULL, tool_server TEXT NOT NULL, tool_name TEXT NOT NULL,
			point TEXT NOT NULL, destination TEXT NOT NULL, model TEXT NOT NULL, resource TEXT NOT NULL,
			args_digest TEXT NOT NULL, args TEXT NOT NULL, policy_digest TEXT NOT NULL, rules TEXT NOT NULL,
			reasons TEXT NOT NULL, approvers TEXT NOT NULL, on_timeout TEXT NOT NULL, decision_id TEXT NOT NULL,
			created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, decided_at INTEGER NOT NULL DEFAULT 0,
			decided_by TEXT NOT NULL DEFAULT '', note TEXT NOT NULL DEFAULT '', redeem_by INTEGER NOT NULL DEFAULT 0,
			used_at INTEGER NOT NULL DEFAULT 0)`,
		`INSERT INTO approvals (id, status, agent_id, session, tool_server, tool_name, point, destination, model, resource,
			args_digest, args, policy_digest, rules, reasons, approvers, on_timeout, decision_id, created_at, expires_at,
			decided_at, decided_by, redeem_by)
		 VALUES ('apr_old', 'approved', 'a1', '', '', 'pay', 'pre_tool_call', '', '', '{}', 'sha256:x',
			'{"card":"4111 1111 1111 1111"}', 'p', '[]', '[]', '[]', 'deny', 'dec_1', 1, 4102444800000000000,
			2, 'fin', 4102444800000000000)`,
	} {
		if _, err := old.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	old.Close()

	db, err := sqlite.OpenDir(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tk, err := db.GetTicket(ctx, "apr_old")
	if err != nil {
		t.Fatal(err)
	}
	if tk.Status != approval.Approved || tk.DecidedBy != "fin" || tk.ActionDigest != "" || strings.Contains(string(tk.Args), "4111") {
		t.Fatalf("carried-over ticket %+v", tk)
	}
	m := approval.New(db, func() time.Time { return time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC) })
	a := &action.Action{Agent: action.Agent{ID: "a1"}, Tool: action.Tool{Name: "pay"}, Args: map[string]any{"card": "4111 1111 1111 1111"}}
	_, err = m.Redeem(ctx, "apr_old", a, "p", "dec_2")
	var re *approval.RedeemError
	if !errors.As(err, &re) || re.Reason != approval.ReasonActionChanged {
		t.Fatalf("redeeming a carried-over ticket: %v", err)
	}
	// Opening again carries nothing twice.
	db.Close()
	db2, err := sqlite.OpenDir(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	if list, err := db2.ListTickets(ctx); err != nil || len(list) != 1 {
		t.Fatalf("tickets after a second open: %d %v", len(list), err)
	}
}
