package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/agentgov/agentgov/approval"
)

// The approvals, kill and budgets subcommands are tested against the real
// server: the agentgov binary started by startServer (serve_test.go) with
// its admin, approver and agent tokens.

// agentgov runs the CLI against the server with a token and returns exit
// code, stdout and stderr.
func (in *instance) agentgov(t *testing.T, token string, args ...string) (int, string, string) {
	t.Helper()
	t.Setenv("AGENTGOV_SERVER", in.url)
	t.Setenv("AGENTGOV_TOKEN", token)
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// payment asks, as agent a1, for a payment that needs finance's approval
// and returns the ticket id.
func (in *instance) payment(t *testing.T, amount int) string {
	t.Helper()
	code, d := in.call("POST", "/v1/decide", "a1-tok", `{"session":"s-9","tool":{"name":"pay"},"args":{"amount":`+itoa(amount)+`}}`)
	apr, _ := d["approval"].(map[string]any)
	id, _ := apr["id"].(string)
	if code != 200 || d["effect"] != "require_approval" || id == "" {
		t.Fatalf("payment: %d %v", code, d)
	}
	return id
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func TestApprovalsListApproveDeny(t *testing.T) {
	in := startServer(t)
	a, b := in.payment(t, 5000), in.payment(t, 7000)

	code, out, errOut := in.agentgov(t, "fin-tok", "approvals", "list")
	if code != 0 {
		t.Fatalf("list: exit %d: %s", code, errOut)
	}
	for _, want := range []string{a, b, "pending", "a1", "s-9", "pay", "payments", "group:finance", `{"amount":5000}`, `{"amount":7000}`} {
		if !strings.Contains(out, want) {
			t.Errorf("list output lacks %q:\n%s", want, out)
		}
	}
	if !regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ`).MatchString(out) {
		t.Errorf("list output shows no expiry time:\n%s", out)
	}
	if code, out, _ := in.agentgov(t, "other-tok", "approvals", "list"); code != 0 || out != "no approval tickets\n" {
		t.Fatalf("an approver outside finance sees: %d %q", code, out)
	}

	code, out, errOut = in.agentgov(t, "fin-tok", "approvals", "approve", a, "--note", "invoice checked")
	if code != 0 || out != a+": approved\n" {
		t.Fatalf("approve: exit %d, out %q, err %q", code, out, errOut)
	}
	code, out, errOut = in.agentgov(t, "fin-tok", "approvals", "deny", "--note", "no", b)
	if code != 0 || out != b+": denied\n" {
		t.Fatalf("deny: exit %d, out %q, err %q", code, out, errOut)
	}
	// The approval reached the server: the approved payment now runs once.
	if _, d := in.call("POST", "/v1/decide", "a1-tok", `{"session":"s-9","tool":{"name":"pay"},"args":{"amount":5000},"approval_id":"`+a+`"}`); d["effect"] != "allow" {
		t.Fatalf("approved payment: %v", d)
	}

	if code, out, _ := in.agentgov(t, "fin-tok", "approvals", "list"); code != 0 || out != "no approval tickets\n" {
		t.Fatalf("pending list after deciding both: %d %q", code, out)
	}
	code, out, _ = in.agentgov(t, "fin-tok", "approvals", "list", "--status", "all", "--json")
	var listed struct{ Approvals []approval.Ticket }
	if code != 0 || json.Unmarshal([]byte(out), &listed) != nil || len(listed.Approvals) != 2 {
		t.Fatalf("list --status all --json: %d %q", code, out)
	}
	for _, tk := range listed.Approvals {
		if tk.ID == a && (tk.Status != approval.Used || tk.Note != "invoice checked" || tk.DecidedBy != "fin") {
			t.Fatalf("approved ticket after use: %+v", tk)
		}
		if tk.ID == b && tk.Status != approval.Denied {
			t.Fatalf("denied ticket: %+v", tk)
		}
	}
	code, out, _ = in.agentgov(t, "fin-tok", "approvals", "list", "--status", "denied")
	if code != 0 || !strings.Contains(out, b) || strings.Contains(out, a) {
		t.Fatalf("list --status denied: %d %q", code, out)
	}
}

func TestApprovalsPrintsTheServerError(t *testing.T) {
	in := startServer(t)
	a := in.payment(t, 5000)
	if code, _, errOut := in.agentgov(t, "fin-tok", "approvals", "approve", a); code != 0 {
		t.Fatal(errOut)
	}
	code, _, errOut := in.agentgov(t, "fin-tok", "approvals", "deny", a)
	if code != 1 || !strings.Contains(errOut, "the ticket is approved") || strings.Contains(errOut, `"error"`) {
		t.Fatalf("second decision: exit %d, stderr %q", code, errOut)
	}
	code, _, errOut = in.agentgov(t, "fin-tok", "approvals", "approve", "apr_nope")
	if code != 1 || !strings.Contains(errOut, "approval ticket not found") {
		t.Fatalf("unknown ticket: exit %d, stderr %q", code, errOut)
	}
	code, _, errOut = in.agentgov(t, "other-tok", "approvals", "approve", in.payment(t, 2000))
	if code != 1 || !strings.Contains(errOut, "not among the approvers") {
		t.Fatalf("approver outside the group: exit %d, stderr %q", code, errOut)
	}
	code, _, errOut = in.agentgov(t, "fin-tok", "approvals", "list", "--token", "wrong")
	if code != 1 || !strings.Contains(errOut, "unknown token") {
		t.Fatalf("wrong token: exit %d, stderr %q", code, errOut)
	}
	code, _, errOut = in.agentgov(t, "a1-tok", "approvals", "list")
	if code != 1 || !strings.Contains(errOut, "agent token may not") {
		t.Fatalf("agent token: exit %d, stderr %q", code, errOut)
	}
}

// unreachable is the URL of a loopback port nothing listens on.
func unreachable(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := "http://" + ln.Addr().String()
	ln.Close()
	return addr
}

// offline runs the CLI with no server behind AGENTGOV_SERVER.
func offline(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	in := &instance{url: unreachable(t)}
	return in.agentgov(t, "tok", args...)
}

func TestApprovalsUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"approvals"},
		{"approvals", "approve"},
		{"approvals", "approve", "a", "b"},
		{"approvals", "list", "extra"},
		{"approvals", "list", "--status", "waiting"},
		{"approvals", "frobnicate"},
		{"approvals", "approve", "x", "--bogus"},
	} {
		if code, _, _ := offline(t, args...); code != 2 {
			t.Errorf("%q: exit %d, want 2", args, code)
		}
	}
	if code, _, errOut := offline(t, "approvals", "list", "--server", "ftp://x"); code != 2 || !strings.Contains(errOut, `--server "ftp://x" is not an http(s) URL`) {
		t.Errorf("bad --server: exit %d, %q", code, errOut)
	}
}

func TestServerUnreachable(t *testing.T) {
	addr := unreachable(t)
	code, _, errOut := offline(t, "approvals", "list", "--server", addr)
	if code != 1 || !strings.Contains(errOut, "cannot reach the server at "+addr) {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
}

// The CLI waits for a slow server only so long; a context that is already
// over stops it at once.
func TestCancelledCommandStops(t *testing.T) {
	in := startServer(t)
	t.Setenv("AGENTGOV_SERVER", in.url)
	t.Setenv("AGENTGOV_TOKEN", "admin-tok")
	ctx, cancel := context.WithDeadline(context.Background(), time.Unix(0, 0))
	defer cancel()
	var stdout, stderr bytes.Buffer
	if code := run(ctx, []string{"kill", "system", "--reason", "x"}, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "deadline") {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
	if _, m := in.call("GET", "/v1/kill", "admin-tok", ""); len(m["switches"].([]any)) != 0 {
		t.Fatalf("a cancelled command engaged a switch: %v", m)
	}
}
