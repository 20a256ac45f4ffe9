package client_test

import (
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/approval"
	"github.com/agentgov/agentgov/budget"
	"github.com/agentgov/agentgov/client"
	"github.com/agentgov/agentgov/config"
	"github.com/agentgov/agentgov/jcs"
	"github.com/agentgov/agentgov/killswitch"
	"github.com/agentgov/agentgov/session"
	"github.com/agentgov/agentgov/stack"
	"github.com/agentgov/agentgov/stack/stacktest"
)

// These tests run the client against the real server: package server over
// the real engine, audit log and stores on a SQLite file, served over
// loopback HTTP.

const livePolicy = `
version: agentgov/v1
name: live
default: deny
rules:
  - id: reads
    match: {tools: ["read_*"]}
    effect: allow
  - id: no-etc
    match: {tools: [read_file]}
    when: 'args.path.startsWith("/etc/")'
    effect: deny
    severity: high
    reason: system files are off limits
  - id: payments
    match: {tools: [pay]}
    when: 'args.amount > 1000'
    effect: require_approval
    approval: {approvers: ["group:finance"], timeout: 30m}
`

type live struct {
	url    string
	polDir string
}

func hashOf(tok string) string {
	s := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(s[:])
}

// startLive runs the application stack as `agentgov serve` builds it, on a
// loopback port, until the test ends; its Run must then end cleanly.
func startLive(t *testing.T) *live {
	t.Helper()
	dir := t.TempDir()
	pol := filepath.Join(dir, "policies")
	if err := os.MkdirAll(pol, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pol, "live.yaml"), []byte(livePolicy), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := &config.Config{Data: filepath.Join(dir, "data"), Policies: pol, Tokens: []config.Token{
		{Name: "ops", Role: config.Admin, SHA256: hashOf("admin-tok")},
		{Name: "fin", Role: config.Approver, Groups: []string{"finance"}, SHA256: hashOf("fin-tok")},
		{Name: "other", Role: config.Approver, SHA256: hashOf("other-tok")},
		{Name: "a1", Role: config.AgentRole, Agent: "a1", AgentType: "assistant",
			Principal: action.Principal{User: "alice", Team: "search", Org: "acme"}, SHA256: hashOf("a1-tok")},
		{Name: "a2", Role: config.AgentRole, Agent: "a2", SHA256: hashOf("a2-tok")},
	}}
	cfg.Audit.CheckpointInterval = 50 * time.Millisecond
	return &live{url: stacktest.Serve(t, cfg, stack.Options{}), polDir: pol}
}

func (l *live) as(t *testing.T, token string) *client.Client {
	t.Helper()
	c, err := client.New(l.url, token)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func wantCode(t *testing.T, what string, err error, status int, code string) {
	t.Helper()
	var e *client.Error
	if !errors.As(err, &e) || e.Status != status || e.Code != code || e.Message == "" {
		t.Fatalf("%s: error %#v, want %d %s with a message", what, err, status, code)
	}
}

func read(path string) action.Action {
	return action.Action{Tool: action.Tool{Name: "read_file"}, Args: map[string]any{"path": path}}
}

func TestLiveDecideAndIdentity(t *testing.T) {
	l := startLive(t)
	ctx := context.Background()
	a1 := l.as(t, "a1-tok")

	d, err := a1.Decide(ctx, read("/tmp/notes.txt"))
	if err != nil || d.Effect != action.Allow || d.ID.IsZero() || d.AuditIndex == nil || !slices.Equal(d.Rules, []string{"reads"}) {
		t.Fatalf("allow: %+v %v", d, err)
	}
	d, err = a1.Decide(ctx, read("/etc/shadow"))
	if err != nil || d.Effect != action.Deny || d.Severity != action.SeverityHigh || !strings.Contains(strings.Join(d.Reasons, " "), "off limits") {
		t.Fatalf("deny: %+v %v", d, err)
	}

	// The credential is the identity.
	other := read("/tmp/x")
	other.Agent.ID = "a2"
	_, err = a1.Decide(ctx, other)
	wantCode(t, "claiming another agent", err, 403, client.CodeForbidden)
	_, err = l.as(t, "wrong").Decide(ctx, read("/tmp/x"))
	wantCode(t, "wrong token", err, 401, client.CodeUnauthorized)
	_, err = a1.Kills(ctx)
	wantCode(t, "agent on an admin endpoint", err, 403, client.CodeForbidden)
	bad := read("/tmp/x")
	bad.Point = "pre_tool"
	_, err = a1.Decide(ctx, bad)
	wantCode(t, "unknown point", err, 400, client.CodeBadRequest)

	// An admin decides on behalf of a named agent.
	named := read("/tmp/x")
	named.Agent.ID = "a2"
	if d, err := l.as(t, "admin-tok").Decide(ctx, named); err != nil || d.Effect != action.Allow {
		t.Fatalf("admin deciding for a2: %+v %v", d, err)
	}
}

func TestLiveOutcomeAndDecisionLookup(t *testing.T) {
	l := startLive(t)
	ctx := context.Background()
	a1, a2, admin := l.as(t, "a1-tok"), l.as(t, "a2-tok"), l.as(t, "admin-tok")

	d, err := a1.Decide(ctx, read("/tmp/x"), client.TraceParent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"), client.CorrelationID("corr-77"))
	if err != nil {
		t.Fatal(err)
	}
	id := d.ID.String()
	got, err := a1.Decision(ctx, id)
	if err != nil || got.ID != d.ID || got.Effect != action.Allow || got.AuditIndex == nil || *got.AuditIndex != *d.AuditIndex {
		t.Fatalf("own decision: %+v %v", got, err)
	}
	_, err = a2.Decision(ctx, id)
	wantCode(t, "another agent's decision", err, 404, client.CodeNotFound)

	err = a1.Outcome(ctx, id, action.Outcome{Status: "fine"})
	wantCode(t, "bad outcome", err, 400, client.CodeBadRequest)
	err = a2.Outcome(ctx, id, action.Outcome{Status: "ok"})
	wantCode(t, "outcome of another agent's decision", err, 404, client.CodeNotFound)
	if err := a1.Outcome(ctx, id, action.Outcome{Status: "ok", Tokens: 120, CostUSD: 0.002, LatencyMS: 12}, client.IdempotencyKey("out-1")); err != nil {
		t.Fatal(err)
	}
	if err := a1.Outcome(ctx, id, action.Outcome{Status: "ok", Tokens: 120, CostUSD: 0.002, LatencyMS: 12}, client.IdempotencyKey("out-1")); err != nil {
		t.Fatalf("retried outcome: %v", err)
	}
	denied, err := a1.Decide(ctx, read("/etc/passwd"))
	if err != nil {
		t.Fatal(err)
	}
	err = a1.Outcome(ctx, denied.ID.String(), action.Outcome{Status: "ok"})
	wantCode(t, "outcome of a deny", err, 409, client.CodeConflict)

	// The audit log holds the decision with its trace and exactly one outcome.
	page, err := admin.AuditEntries(ctx, -1, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var outcomes int
	var traced bool
	for _, e := range page.Entries {
		if e.Kind == "outcome" && strings.Contains(string(e.Record), id) {
			outcomes++
		}
		if e.Index == *d.AuditIndex {
			traced = strings.Contains(string(e.Record), "4bf92f3577b34da6a3ce929d0e0e4736") && strings.Contains(string(e.Record), "corr-77")
		}
	}
	// The log may have grown past the page while it was read (the size is
	// read after the entries), never fallen short of it.
	if outcomes != 1 || !traced || page.Size < uint64(len(page.Entries)) {
		t.Fatalf("audit: %d outcomes of %s, trace recorded %v, size %d of %d entries", outcomes, id, traced, page.Size, len(page.Entries))
	}
}

func TestLiveIdempotentDecide(t *testing.T) {
	l := startLive(t)
	ctx := context.Background()
	a1 := l.as(t, "a1-tok")
	d1, err := a1.Decide(ctx, read("/tmp/x"), client.IdempotencyKey("k-1"))
	if err != nil {
		t.Fatal(err)
	}
	d2, err := a1.Decide(ctx, read("/tmp/x"), client.IdempotencyKey("k-1"))
	if err != nil || d2.ID != d1.ID {
		t.Fatalf("retry made another decision: %v vs %v (%v)", d1.ID, d2.ID, err)
	}
	_, err = a1.Decide(ctx, read("/tmp/y"), client.IdempotencyKey("k-1"))
	wantCode(t, "key reused for another action", err, 422, client.CodeUnprocessable)
	_, err = a1.Decide(ctx, read("/tmp/x"), client.IdempotencyKey("no spaces"))
	wantCode(t, "malformed key", err, 400, client.CodeBadRequest)
}

func TestLiveApprovals(t *testing.T) {
	l := startLive(t)
	ctx := context.Background()
	a1, fin, other := l.as(t, "a1-tok"), l.as(t, "fin-tok"), l.as(t, "other-tok")
	pay := action.Action{Session: "s1", Tool: action.Tool{Name: "pay"}, Args: map[string]any{"amount": 5000, "to": "bob"}}

	d, err := a1.Decide(ctx, pay)
	if err != nil || d.Effect != action.RequireApproval || d.Approval == nil || d.Approval.Status != "pending" {
		t.Fatalf("payment: %+v %v", d, err)
	}
	apr := d.Approval.ID
	queue, err := fin.Approvals(ctx, approval.Pending)
	if err != nil || len(queue) != 1 || queue[0].ID != apr || queue[0].AgentID != "a1" || queue[0].Tool.Name != "pay" ||
		!slices.Equal(queue[0].Approvers, []string{"group:finance"}) || !strings.Contains(string(queue[0].Args), "5000") {
		t.Fatalf("queue: %+v %v", queue, err)
	}
	if q, err := other.Approvals(ctx, approval.Pending); err != nil || len(q) != 0 {
		t.Fatalf("an approver outside finance sees %+v (%v)", q, err)
	}
	_, err = other.Approve(ctx, apr, "")
	wantCode(t, "approver outside the group", err, 403, client.CodeForbidden)
	_, err = a1.Approve(ctx, apr, "")
	wantCode(t, "agent approving", err, 403, client.CodeForbidden)

	tk, err := fin.Approve(ctx, apr, "invoice checked")
	if err != nil || tk.ID != apr || tk.Status != approval.Approved || tk.DecidedBy != "fin" || tk.Note != "invoice checked" {
		t.Fatalf("approve: %+v %v", tk, err)
	}
	_, err = fin.DenyApproval(ctx, apr, "changed my mind")
	wantCode(t, "deciding twice", err, 409, client.CodeConflict)
	if got, err := fin.Approval(ctx, apr); err != nil || got.Status != approval.Approved {
		t.Fatalf("ticket: %+v %v", got, err)
	}

	// The approved action runs once, exactly as approved.
	changed := pay
	changed.Args = map[string]any{"amount": 9000, "to": "bob"}
	changed.ApprovalID = apr
	if d, err := a1.Decide(ctx, changed); err != nil || d.Effect != action.Deny {
		t.Fatalf("changed arguments: %+v %v", d, err)
	}
	pay.ApprovalID = apr
	if d, err := a1.Decide(ctx, pay); err != nil || d.Effect != action.Allow {
		t.Fatalf("approved retry: %+v %v", d, err)
	}
	if d, err := a1.Decide(ctx, pay); err != nil || d.Effect != action.Deny {
		t.Fatalf("second use: %+v %v", d, err)
	}

	// Deny.
	pay.ApprovalID = ""
	d, err = a1.Decide(ctx, pay)
	if err != nil || d.Approval == nil {
		t.Fatalf("second payment: %+v %v", d, err)
	}
	tk, err = fin.DenyApproval(ctx, d.Approval.ID, "no")
	if err != nil || tk.Status != approval.Denied {
		t.Fatalf("deny: %+v %v", tk, err)
	}
	_, err = fin.Approve(ctx, "apr_nope", "")
	wantCode(t, "unknown ticket", err, 404, client.CodeNotFound)
	all, err := fin.Approvals(ctx, "")
	if err != nil || len(all) != 2 {
		t.Fatalf("all tickets: %d %v", len(all), err)
	}
}

func TestLiveSessionsAndKillSwitch(t *testing.T) {
	l := startLive(t)
	ctx := context.Background()
	a1, a2, admin := l.as(t, "a1-tok"), l.as(t, "a2-tok"), l.as(t, "admin-tok")

	s, err := a1.CreateSession(ctx, "work-1")
	if err != nil || s.ID != "work-1" || s.AgentID != "a1" || s.State != session.Created {
		t.Fatalf("create: %+v %v", s, err)
	}
	inSession := read("/tmp/x")
	inSession.Session = "work-1"
	if d, err := a1.Decide(ctx, inSession); err != nil || d.Effect != action.Allow {
		t.Fatalf("decide in a new session: %+v %v", d, err)
	}
	if s, err = a1.Session(ctx, "work-1"); err != nil || s.State != session.Active {
		t.Fatalf("session after its first action: %+v %v", s, err)
	}
	_, err = a2.PauseSession(ctx, "work-1")
	wantCode(t, "another agent's session", err, 404, client.CodeNotFound)
	if s, err = a1.PauseSession(ctx, "work-1"); err != nil || s.State != session.Paused {
		t.Fatalf("pause: %+v %v", s, err)
	}
	if d, err := a1.Decide(ctx, inSession); err != nil || d.Effect != action.Deny {
		t.Fatalf("decide in a paused session: %+v %v", d, err)
	}
	if s, err = a1.ResumeSession(ctx, "work-1"); err != nil || s.State != session.Active {
		t.Fatalf("resume: %+v %v", s, err)
	}
	if s, err = a1.CloseSession(ctx, "work-1"); err != nil || s.State != session.Closed {
		t.Fatalf("close: %+v %v", s, err)
	}
	_, err = a1.ResumeSession(ctx, "work-1")
	wantCode(t, "resume after close", err, 409, client.CodeConflict)
	if s, err = admin.CreateSessionFor(ctx, "a2", ""); err != nil || s.AgentID != "a2" || s.ID == "" {
		t.Fatalf("admin session for a2: %+v %v", s, err)
	}
	if got, err := a2.Session(ctx, s.ID); err != nil || got.ID != s.ID {
		t.Fatalf("a2 reads its session: %+v %v", got, err)
	}

	sw, err := admin.Kill(ctx, killswitch.Agent, "a1", "runaway loop")
	if err != nil || sw.ID == "" || sw.Scope != killswitch.Agent || sw.Target != "a1" || sw.By != "ops" {
		t.Fatalf("kill: %+v %v", sw, err)
	}
	if d, err := a1.Decide(ctx, read("/tmp/x")); err != nil || d.Effect != action.Deny || !strings.Contains(strings.Join(d.Reasons, " "), "runaway loop") {
		t.Fatalf("killed agent: %+v %v", d, err)
	}
	if d, err := a2.Decide(ctx, read("/tmp/x")); err != nil || d.Effect != action.Allow {
		t.Fatalf("other agent: %+v %v", d, err)
	}
	_, err = admin.Kill(ctx, "galaxy", "", "x")
	wantCode(t, "unknown scope", err, 400, client.CodeBadRequest)
	if l, err := admin.Kills(ctx); err != nil || len(l) != 1 || l[0].ID != sw.ID {
		t.Fatalf("kills: %+v %v", l, err)
	}
	if err := admin.ReleaseKill(ctx, sw.ID); err != nil {
		t.Fatal(err)
	}
	wantCode(t, "second release", admin.ReleaseKill(ctx, sw.ID), 409, client.CodeConflict)
	if l, err := admin.Kills(ctx); err != nil || len(l) != 0 {
		t.Fatalf("engaged after release: %+v %v", l, err)
	}
	if l, err := admin.AllKills(ctx); err != nil || len(l) != 1 || l[0].Engaged() {
		t.Fatalf("history: %+v %v", l, err)
	}
	if d, err := a1.Decide(ctx, read("/tmp/x")); err != nil || d.Effect != action.Allow {
		t.Fatalf("after release: %+v %v", d, err)
	}
}

func TestLiveBudgets(t *testing.T) {
	l := startLive(t)
	ctx := context.Background()
	a1, admin := l.as(t, "a1-tok"), l.as(t, "admin-tok")
	cfg, err := budget.DecodeConfig([]byte(`{"id":"acme-daily","scope":{"org":"acme"},"period":"daily","limits":{"calls":2,"cost_usd":1.5}}`))
	if err != nil {
		t.Fatal(err)
	}
	got, err := admin.CreateBudget(ctx, cfg)
	if err != nil || got.ID != "acme-daily" || got.Limits.Calls != 2 || got.Limits.CostMicros != 1_500_000 {
		t.Fatalf("create: %+v %v", got, err)
	}
	_, err = admin.CreateBudget(ctx, cfg)
	wantCode(t, "create twice", err, 409, client.CodeConflict)
	cfg.Limits.Calls = 3
	if got, err = admin.PutBudget(ctx, cfg); err != nil || got.Limits.Calls != 3 {
		t.Fatalf("replace: %+v %v", got, err)
	}
	if got, err = admin.Budget(ctx, "acme-daily"); err != nil || got.Limits.Calls != 3 {
		t.Fatalf("get: %+v %v", got, err)
	}
	for i := range 3 {
		d, err := a1.Decide(ctx, read("/tmp/x"))
		if err != nil || d.Effect != action.Allow {
			t.Fatalf("call %d: %+v %v", i, d, err)
		}
		if err := a1.Outcome(ctx, d.ID.String(), action.Outcome{Status: "ok", CostUSD: 0.25}); err != nil {
			t.Fatal(err)
		}
	}
	if d, err := a1.Decide(ctx, read("/tmp/x")); err != nil || d.Effect != action.Deny {
		t.Fatalf("call over the limit: %+v %v", d, err)
	}
	u, err := admin.Usage(ctx, budget.Scope{Org: "acme"})
	if err != nil || len(u) != 1 || u[0].ID != "acme-daily" || u[0].Spent.Calls != 3 || u[0].Spent.CostMicros != 750_000 || u[0].Fraction < 1 {
		t.Fatalf("usage: %+v %v", u, err)
	}
	if u, err := admin.Usage(ctx, budget.Scope{Org: "globex"}); err != nil || len(u) != 0 {
		t.Fatalf("usage of another org: %+v %v", u, err)
	}
	if l, err := admin.Budgets(ctx); err != nil || len(l) != 1 {
		t.Fatalf("list: %+v %v", l, err)
	}
	if err := admin.DeleteBudget(ctx, "acme-daily"); err != nil {
		t.Fatal(err)
	}
	wantCode(t, "delete twice", admin.DeleteBudget(ctx, "acme-daily"), 404, client.CodeNotFound)
	_, err = admin.PutBudget(ctx, budget.Config{ID: "x", Period: "fortnightly"})
	wantCode(t, "bad period", err, 400, client.CodeBadRequest)
}

func TestLiveAuditProofAndPolicies(t *testing.T) {
	l := startLive(t)
	ctx := context.Background()
	a1, admin := l.as(t, "a1-tok"), l.as(t, "admin-tok")
	var last action.Decision
	for range 5 {
		d, err := a1.Decide(ctx, read("/tmp/x"))
		if err != nil {
			t.Fatal(err)
		}
		last = d
	}
	p, err := admin.Proof(ctx, *last.AuditIndex)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := admin.Checkpoint(ctx)
	if err != nil || cp.Size < p.TreeSize || !strings.Contains(cp.Note, stack.AuditOrigin) {
		t.Fatalf("checkpoint: %+v %v", cp, err)
	}
	// The proof decodes into hashes that verify against the root in the
	// signed checkpoint (line 3 of the note body, base64).
	lines := strings.Split(p.Checkpoint, "\n")
	root, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil {
		t.Fatalf("checkpoint %q: %v", p.Checkpoint, err)
	}
	h := rfc6962.New(crypto.SHA256)
	if err := proof.VerifyInclusion(h, p.Index, p.TreeSize, p.LeafHash, p.Hashes, root); err != nil {
		t.Fatalf("inclusion proof of %d does not verify: %v", p.Index, err)
	}
	if !slices.Equal(p.LeafHash, h.HashLeaf(entryBytes(t, p.Entry))) {
		t.Fatal("leaf hash is not the hash of the entry")
	}
	if _, err := admin.Proof(ctx, 1<<40); !client.IsCode(err, client.CodeNotFound) {
		t.Fatalf("proof beyond the log: %v", err)
	}
	if cons, err := admin.Consistency(ctx, 1, p.TreeSize); err != nil || len(cons) == 0 {
		t.Fatalf("consistency: %d %v", len(cons), err)
	}

	pols, err := admin.Policies(ctx)
	if err != nil || pols.Digest == "" || len(pols.Documents) != 1 || pols.Documents[0].Name != "live" || pols.Documents[0].Rules != 3 {
		t.Fatalf("policies: %+v %v", pols, err)
	}
	os.WriteFile(filepath.Join(l.polDir, "broken.yaml"), []byte("version: agentgov/v1\nname: broken\nrules:\n  - id: r\n    when: 'agent.idd == 1'\n    effect: deny\n"), 0o644)
	_, err = admin.ReloadPolicies(ctx)
	wantCode(t, "broken reload", err, 422, client.CodeUnprocessable)
	if !strings.Contains(err.Error(), "broken.yaml:5") {
		t.Fatalf("reload error does not name the file and line: %v", err)
	}
	os.Remove(filepath.Join(l.polDir, "broken.yaml"))
	os.WriteFile(filepath.Join(l.polDir, "live.yaml"), []byte("version: agentgov/v1\nname: live\ndefault: deny\n"), 0o644)
	digest, err := admin.ReloadPolicies(ctx)
	if err != nil || digest == "" || digest == pols.Digest {
		t.Fatalf("reload: %q %v", digest, err)
	}
	if ready, err := admin.Ready(ctx); err != nil || ready != digest {
		t.Fatalf("ready: %q %v", ready, err)
	}
	if d, err := a1.Decide(ctx, read("/tmp/x")); err != nil || d.Effect != action.Deny {
		t.Fatalf("after reload: %+v %v", d, err)
	}
	if err := l.as(t, "").Health(ctx); err != nil {
		t.Fatalf("health without a token: %v", err)
	}
}

// entryBytes is the stored form of an entry, its canonical JSON, which is
// what the leaf hashes.
func entryBytes(t *testing.T, raw json.RawMessage) []byte {
	t.Helper()
	b, err := jcs.Transform(raw)
	if err != nil {
		t.Fatalf("entry %s: %v", raw, err)
	}
	return b
}
