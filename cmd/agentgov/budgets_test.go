package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentgov/agentgov/budget"
)

func TestBudgetsSetListUsageDelete(t *testing.T) {
	in := startServer(t)
	code, out, errOut := in.agentgov(t, "admin-tok", "budgets", "set", "--id", "acme-daily", "--period", "daily", "--org", "acme",
		"--cost", "1.5", "--calls", "3", "--soft", "0.8")
	if code != 0 || out != "saved budget acme-daily\n" {
		t.Fatalf("set from flags: exit %d, %q, %q", code, out, errOut)
	}
	file := filepath.Join(t.TempDir(), "b.json")
	os.WriteFile(file, []byte(`{"id":"alice-tokens","scope":{"user":"alice"},"period":"7d","limits":{"tokens":100000}}`), 0o644)
	if code, out, errOut := in.agentgov(t, "admin-tok", "budgets", "set", file); code != 0 || out != "saved budget alice-tokens\n" {
		t.Fatalf("set from a file: exit %d, %q, %q", code, out, errOut)
	}

	code, out, _ = in.agentgov(t, "admin-tok", "budgets", "list")
	for _, want := range []string{"acme-daily", "org=acme", "daily", "$1.50, 3 calls", "soft 80%", "hard 100%", "alice-tokens", "user=alice", "7d", "100000 tokens"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("budgets list lacks %q:\n%s", want, out)
		}
	}

	// Three paid reads by a1 (user alice, org acme) fill the call limit.
	for range 3 {
		_, d := in.call("POST", "/v1/decide", "a1-tok", `{"tool":{"name":"read_file"},"args":{"path":"/tmp/x"}}`)
		if d["effect"] != "allow" {
			t.Fatalf("read within the budget: %v", d)
		}
		if code, m := in.call("POST", "/v1/decisions/"+d["id"].(string)+"/outcome", "a1-tok", `{"status":"ok","cost_usd":0.25,"tokens":100}`); code != 200 {
			t.Fatalf("outcome: %d %v", code, m)
		}
	}
	code, out, errOut = in.agentgov(t, "admin-tok", "budgets", "usage", "--org", "acme")
	if code != 0 || !strings.Contains(out, "acme-daily") || !strings.Contains(out, "$0.75, 300 tokens, 3 calls") || !strings.Contains(out, "100.0%") || strings.Contains(out, "alice-tokens") {
		t.Fatalf("usage --org acme: exit %d, %q, %q", code, out, errOut)
	}
	code, out, _ = in.agentgov(t, "admin-tok", "budgets", "usage", "--org", "acme", "--user", "alice", "--json")
	var usage struct{ Usage []budget.Usage }
	if code != 0 || json.Unmarshal([]byte(out), &usage) != nil || len(usage.Usage) != 2 {
		t.Fatalf("usage --json for alice at acme: %d %q", code, out)
	}
	for _, u := range usage.Usage {
		if u.ID == "alice-tokens" && u.Spent.Tokens != 300 {
			t.Fatalf("alice's tokens: %+v", u)
		}
	}

	if code, out, _ := in.agentgov(t, "admin-tok", "budgets", "delete", "acme-daily"); code != 0 || out != "deleted budget acme-daily\n" {
		t.Fatalf("delete: %d %q", code, out)
	}
	code, _, errOut = in.agentgov(t, "admin-tok", "budgets", "delete", "acme-daily")
	if code != 1 || !strings.Contains(errOut, "not found") {
		t.Fatalf("delete twice: exit %d, %q", code, errOut)
	}
	code, out, _ = in.agentgov(t, "admin-tok", "budgets", "list", "--json")
	var listed struct{ Budgets []budget.Config }
	if code != 0 || json.Unmarshal([]byte(out), &listed) != nil || len(listed.Budgets) != 1 || listed.Budgets[0].ID != "alice-tokens" {
		t.Fatalf("list --json after delete: %d %q", code, out)
	}
}

func TestBudgetsRefusesBadConfigsWithoutSendingThem(t *testing.T) {
	in := startServer(t)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"budgets", "set", "--id", "b", "--period", "fortnightly", "--calls", "1"}, "period"},
		{[]string{"budgets", "set", "--id", "b", "--period", "daily", "--calls", "-1"}, "calls"},
		{[]string{"budgets", "set", "--id", "b", "--period", "daily", "--cost", "0.0000001"}, "cost_usd"},
	} {
		code, _, errOut := in.agentgov(t, "admin-tok", c.args...)
		if code != 1 || !strings.Contains(errOut, c.want) {
			t.Errorf("%q: exit %d, %q", c.args, code, errOut)
		}
	}
	if code, out, _ := in.agentgov(t, "admin-tok", "budgets", "list"); code != 0 || out != "no budgets\n" {
		t.Fatalf("a refused budget was stored: %d %q", code, out)
	}
	code, _, errOut := in.agentgov(t, "a1-tok", "budgets", "list")
	if code != 1 || !strings.Contains(errOut, "agent token may not") {
		t.Fatalf("agent token: exit %d, %q", code, errOut)
	}
}

func TestBudgetsUsageErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "b.json")
	os.WriteFile(file, []byte(`{"id":"x","period":"daily"}`), 0o644)
	for _, args := range [][]string{
		{"budgets"},
		{"budgets", "list", "x"},
		{"budgets", "delete"},
		{"budgets", "usage", "x"},
		{"budgets", "set", file, "--period", "daily"},
		{"budgets", "set", "--id", "x", "--period", "daily", "--cost", "lots"},
		{"budgets", "frobnicate"},
	} {
		if code, _, errOut := offline(t, args...); code != 2 {
			t.Errorf("%q: exit %d, want 2 (%s)", args, code, errOut)
		}
	}
}
