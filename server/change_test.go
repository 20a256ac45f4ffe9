package server_test

import (
	"fmt"
	"strings"
	"testing"
)

// A kill switch whose engagement cannot be written to the audit log is not
// engaged: the admin gets 503 and can retry, and no switch is in force
// that the log does not show. A release that cannot be written leaves the
// switch engaged.
func TestKillSwitchChangesThatCannotBeAuditedAreNotMade(t *testing.T) {
	e := start(t)
	e.audit.broken.Store(true)
	if code, m := e.call("POST", "/v1/kill", "admin-tok", `{"scope":"agent","target":"a1","reason":"runaway"}`); code != 503 {
		t.Fatalf("engage with the log down: %d %v", code, m)
	}
	e.audit.broken.Store(false)
	if _, m := e.call("GET", "/v1/kill?all=true", "admin-tok", ""); len(m["switches"].([]any)) != 0 {
		t.Fatalf("a switch the log does not show is stored: %v", m)
	}
	if _, d := e.call("POST", "/v1/decide", "a1-tok", `{"tool":{"name":"read_file"}}`); d["effect"] != "allow" {
		t.Fatalf("a1 is stopped by an unrecorded switch: %v", d)
	}

	code, sw := e.call("POST", "/v1/kill", "admin-tok", `{"scope":"agent","target":"a1","reason":"runaway"}`)
	if code != 201 {
		t.Fatalf("engage: %d %v", code, sw)
	}
	id := sw["id"].(string)
	e.audit.broken.Store(true)
	if code, m := e.call("DELETE", "/v1/kill/"+id, "admin-tok", ""); code != 503 {
		t.Fatalf("release with the log down: %d %v", code, m)
	}
	e.audit.broken.Store(false)
	if _, d := e.call("POST", "/v1/decide", "a1-tok", `{"tool":{"name":"read_file"}}`); d["effect"] != "deny" {
		t.Fatalf("an unrecorded release lifted the switch: %v", d)
	}
	kills := e.entries("kill")
	if len(kills) != 1 || kills[0]["event"] != "engage" || kills[0]["switch"].(map[string]any)["id"] != id {
		t.Fatalf("kill entries %v, want the one engagement", kills)
	}
}

// The admin's client hangs up in the middle of engaging or releasing a
// switch. Whatever the moment, the change is made and in the log, both or
// neither: never a switch in force that the log does not show.
func TestKillSwitchChangesSurviveAClientHangingUp(t *testing.T) {
	for _, atAudit := range []bool{false, true} {
		t.Run(fmt.Sprintf("after the audit entry: %v", atAudit), func(t *testing.T) {
			e := start(t)
			e.hangUp(atAudit, "POST", "/v1/kill", "admin-tok", `{"scope":"agent","target":"a1","reason":"runaway"}`)
			_, m := e.call("GET", "/v1/kill", "admin-tok", "")
			switches := m["switches"].([]any)
			kills := e.entries("kill")
			if len(switches) != 1 || len(kills) != 1 {
				t.Fatalf("after a hang-up while engaging: %d switches, %d kill entries; want 1 and 1", len(switches), len(kills))
			}
			id := switches[0].(map[string]any)["id"].(string)
			e.hangUp(atAudit, "DELETE", "/v1/kill/"+id, "admin-tok", "")
			_, m = e.call("GET", "/v1/kill", "admin-tok", "")
			if kills := e.entries("kill"); len(m["switches"].([]any)) != 0 || len(kills) != 2 || kills[1]["event"] != "release" {
				t.Fatalf("after a hang-up while releasing: switches %v, entries %v", m["switches"], kills)
			}
		})
	}
}

// An approval that cannot be written to the audit log is not given: the
// ticket stays pending and the agent's retry is refused.
func TestApprovalThatCannotBeAuditedIsNotGiven(t *testing.T) {
	e := start(t)
	pay := `{"tool":{"name":"pay"},"args":{"amount":5000}}`
	_, d := e.call("POST", "/v1/decide", "a1-tok", pay)
	apr := d["approval"].(map[string]any)["id"].(string)
	e.audit.broken.Store(true)
	if code, m := e.call("POST", "/v1/approvals/"+apr+"/approve", "fin-tok", `{"note":"ok"}`); code != 503 {
		t.Fatalf("approve with the log down: %d %v", code, m)
	}
	e.audit.broken.Store(false)
	if _, m := e.call("GET", "/v1/approvals/"+apr, "fin-tok", ""); m["status"] != "pending" {
		t.Fatalf("ticket after an unrecorded approval: %v", m)
	}
	retry := `{"tool":{"name":"pay"},"args":{"amount":5000},"approval_id":"` + apr + `"}`
	if _, d := e.call("POST", "/v1/decide", "a1-tok", retry); d["effect"] != "deny" || !strings.Contains(fmt.Sprint(d["reasons"]), "pending") {
		t.Fatalf("retry under an unrecorded approval: %v", d)
	}
	if n := len(e.entries("approval")); n != 0 {
		t.Fatalf("%d approval entries for an approval that was not given", n)
	}
}

// The approver's client hangs up right after the approval is stored: the
// approval is in the log all the same.
func TestApprovalSurvivesAClientHangingUp(t *testing.T) {
	for _, atAudit := range []bool{false, true} {
		t.Run(fmt.Sprintf("after the audit entry: %v", atAudit), func(t *testing.T) {
			e := start(t)
			_, d := e.call("POST", "/v1/decide", "a1-tok", `{"tool":{"name":"pay"},"args":{"amount":5000}}`)
			apr := d["approval"].(map[string]any)["id"].(string)
			e.hangUp(atAudit, "POST", "/v1/approvals/"+apr+"/approve", "fin-tok", `{"note":"ok"}`)
			_, m := e.call("GET", "/v1/approvals/"+apr, "fin-tok", "")
			entries := e.entries("approval")
			if m["status"] != "approved" || len(entries) != 1 || entries[0]["ticket"] != apr || entries[0]["status"] != "approved" ||
				entries[0]["by"] != "fin" || entries[0]["via"] != "api" {
				t.Fatalf("ticket %v, approval entries %v", m, entries)
			}
		})
	}
}

// A budget change that cannot be audited is not made.
func TestBudgetChangesThatCannotBeAuditedAreNotMade(t *testing.T) {
	e := start(t)
	cfg := `{"id":"cap","scope":{"org":"acme"},"period":"none","limits":{"calls":1}}`
	e.audit.broken.Store(true)
	if code, m := e.call("POST", "/v1/budgets", "admin-tok", cfg); code != 503 {
		t.Fatalf("create with the log down: %d %v", code, m)
	}
	e.audit.broken.Store(false)
	if code, _ := e.call("GET", "/v1/budgets/cap", "admin-tok", ""); code != 404 {
		t.Fatalf("an unrecorded budget exists: %d", code)
	}
	if code, m := e.call("POST", "/v1/budgets", "admin-tok", cfg); code != 201 {
		t.Fatalf("create: %d %v", code, m)
	}
	e.audit.broken.Store(true)
	if code, _ := e.call("DELETE", "/v1/budgets/cap", "admin-tok", ""); code != 503 {
		t.Fatalf("delete with the log down: %d", code)
	}
	e.audit.broken.Store(false)
	if code, _ := e.call("GET", "/v1/budgets/cap", "admin-tok", ""); code != 200 {
		t.Fatalf("an unrecorded delete removed the budget: %d", code)
	}
	if code, _ := e.call("DELETE", "/v1/budgets/cap", "admin-tok", ""); code != 204 {
		t.Fatalf("delete: %d", code)
	}
	got := e.entries("budget")
	if len(got) != 2 || got[0]["event"] != "create" || got[1]["event"] != "delete" || got[0]["by"] != "ops" {
		t.Fatalf("budget entries %v", got)
	}
}

// An agent waits on the ticket its action opened by reading it; another
// agent learns nothing of it, and reading is all an agent may do.
func TestAgentReadsOnlyTheTicketsItsActionsOpened(t *testing.T) {
	e := start(t)
	_, d := e.call("POST", "/v1/decide", "a1-tok", `{"tool":{"name":"pay"},"args":{"amount":5000}}`)
	apr := d["approval"].(map[string]any)["id"].(string)
	if code, m := e.call("GET", "/v1/approvals/"+apr, "a1-tok", ""); code != 200 || m["status"] != "pending" {
		t.Fatalf("the asking agent reads its ticket: %d %v", code, m)
	}
	if code, m := e.call("GET", "/v1/approvals/"+apr, "a2-tok", ""); code != 404 {
		t.Fatalf("another agent reads the ticket: %d %v", code, m)
	}
	if code, _ := e.call("POST", "/v1/approvals/"+apr+"/approve", "a1-tok", `{}`); code != 403 {
		t.Fatalf("the asking agent approves its own ticket: %d", code)
	}
	if code, _ := e.call("GET", "/v1/approvals?status=pending", "a1-tok", ""); code != 403 {
		t.Fatalf("an agent lists the queue: %d", code)
	}
	e.call("POST", "/v1/approvals/"+apr+"/approve", "fin-tok", `{"note":"ok"}`)
	if _, m := e.call("GET", "/v1/approvals/"+apr, "a1-tok", ""); m["status"] != "approved" {
		t.Fatalf("the agent sees the approval: %v", m)
	}
}
