package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

const trustPolicy = `
version: agentgov/v1
name: trust-e2e
default: allow
rules:
  - id: no-etc
    match: {tools: [read_file]}
    when: 'args.path.startsWith("/etc/")'
    effect: deny
    severity: high
`

// startTrustServer starts `agentgov serve` with trust scores whose high
// denies cost 100 points, a floor at 200, and rings: a1 in ring 1 (any
// tool while standard), a2 in ring 2 (reads and writes), ring 3 reads.
func startTrustServer(t *testing.T) *instance {
	t.Helper()
	dir := t.TempDir()
	pol := filepath.Join(dir, "policies")
	os.MkdirAll(pol, 0o755)
	os.WriteFile(filepath.Join(pol, "trust.yaml"), []byte(trustPolicy), 0o644)
	cfg := fmt.Sprintf(`
tokens:
  - {name: ops, role: admin, sha256: %s}
  - {name: lead, role: approver, groups: [security], sha256: %s}
  - {name: a1, role: agent, agent: a1, sha256: %s}
  - {name: a2, role: agent, agent: a2, sha256: %s}
audit: {checkpoint_interval: 100ms}
trust:
  kill_below: 200
  flush_every: 20ms
  events:
    deny: {high: -100}
rings:
  default: 1
  agents:
    - {agents: [a2], ring: 2}
  approvers: ["group:security"]
  profiles:
    0: {description: admin, min_tier: verified}
    1: {description: operator, min_tier: standard}
    2: {description: worker, min_tier: probationary, tools: ["read_*", "write_*"]}
    3: {description: read-only, tools: ["read_*"]}
`, sum("admin-tok"), sum("lead-tok"), sum("a1-tok"), sum("a2-tok"))
	os.WriteFile(filepath.Join(dir, "agentgov.yaml"), []byte(cfg), 0o644)
	in := &instance{t: t, dir: dir, data: filepath.Join(dir, "data")}
	in.args = []string{"serve", "--config", filepath.Join(dir, "agentgov.yaml"), "--policies", pol, "--data", in.data, "--addr", freePort(t)}
	in.start()
	t.Cleanup(in.stop)
	return in
}

// decideAs asks /v1/decide for tool with args as the agent of token.
func (in *instance) decideAs(token, tool, args string) (effect, reason string) {
	in.t.Helper()
	code, d := in.call("POST", "/v1/decide", token, fmt.Sprintf(`{"tool":{"name":%q},"args":%s}`, tool, args))
	if code != 200 {
		in.t.Fatalf("decide %s: %d %v", tool, code, d)
	}
	rs, _ := d["reasons"].([]any)
	var parts []string
	for _, r := range rs {
		parts = append(parts, fmt.Sprint(r))
	}
	return fmt.Sprint(d["effect"]), strings.Join(parts, "; ")
}

// waitScore polls the agent's trust until its score is want: events that
// lower a score are applied as soon as the server sees them, in the
// background.
func (in *instance) waitScore(token, agent string, want int) map[string]any {
	in.t.Helper()
	var got map[string]any
	for range 400 {
		code, m := in.call("GET", "/v1/agents/"+agent+"/trust", token, "")
		if code != 200 {
			in.t.Fatalf("trust of %s: %d %v", agent, code, m)
		}
		if s, _ := m["score"].(float64); int(s) == want {
			return m
		}
		got = m
		time.Sleep(10 * time.Millisecond)
	}
	in.t.Fatalf("score of %s never reached %d: %v", agent, want, got)
	return nil
}

func wantEffect(t *testing.T, step, effect, reason, wantEffect string, wantReason ...string) {
	t.Helper()
	if effect != wantEffect {
		t.Fatalf("%s: effect %s (%s), want %s", step, effect, reason, wantEffect)
	}
	for _, w := range wantReason {
		if !strings.Contains(reason, w) {
			t.Fatalf("%s: reason %q lacks %q", step, reason, w)
		}
	}
}

// A trust drop demotes a ring and then kills, through the running server:
// each high-severity deny costs the agent 100 points; at 400 it is
// probationary and demoted from ring 1 to ring 2 (no payments); at 290 it
// is untrusted and demoted to ring 3 (reads only); at 180, below the
// floor, the kill switch stops it. The audit log shows each step, in
// order.
func TestServeTrustDropDemotesThenKills(t *testing.T) {
	in := startTrustServer(t)
	a1 := "a1-tok"
	if m := in.waitScore(a1, "a1", 500); m["tier"] != "standard" {
		t.Fatalf("a new agent: %v", m)
	}
	e, r := in.decideAs(a1, "pay", `{"amount": 5}`)
	wantEffect(t, "pay in ring 1", e, r, "allow")

	e, r = in.decideAs(a1, "read_file", `{"path": "/etc/shadow"}`)
	wantEffect(t, "first /etc read", e, r, "deny", "no-etc")
	m := in.waitScore(a1, "a1", 400)
	if rings, _ := m["rings"].(map[string]any); m["tier"] != "probationary" || rings["ring"] != float64(2) || rings["demoted"] != true {
		t.Fatalf("after the first deny: %v", m)
	}
	e, r = in.decideAs(a1, "pay", `{"amount": 5}`)
	wantEffect(t, "pay in ring 2", e, r, "deny", "ring: agent a1 holds ring 2 (demoted from ring 1: its trust tier probationary is below ring 1's min_tier standard)", "ring 2 (worker) does not allow tool pay")
	in.waitScore(a1, "a1", 390) // the ring denial costs 10
	e, r = in.decideAs(a1, "write_file", `{"path": "/tmp/x"}`)
	wantEffect(t, "write in ring 2", e, r, "allow")

	e, r = in.decideAs(a1, "read_file", `{"path": "/etc/passwd"}`)
	wantEffect(t, "second /etc read", e, r, "deny", "no-etc")
	in.waitScore(a1, "a1", 290)
	e, r = in.decideAs(a1, "write_file", `{"path": "/tmp/x"}`)
	wantEffect(t, "write in ring 3", e, r, "deny", "holds ring 3", "ring 3 (read-only) does not allow tool write_file")
	in.waitScore(a1, "a1", 280)
	e, r = in.decideAs(a1, "read_file", `{"path": "/tmp/x"}`)
	wantEffect(t, "read in ring 3", e, r, "allow")

	e, r = in.decideAs(a1, "read_file", `{"path": "/etc/hosts"}`)
	wantEffect(t, "third /etc read", e, r, "deny", "no-etc")
	in.waitScore(a1, "a1", 180)
	var killed string
	for range 400 {
		if e, r = in.decideAs(a1, "read_file", `{"path": "/tmp/x"}`); e == "deny" {
			killed = r
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	wantEffect(t, "after the floor", "deny", killed, "deny", "kill switch", "(agent a1)", "trust score fell to 180 (from 280), below trust.kill_below 200")
	// Another agent is untouched.
	e, r = in.decideAs("a2-tok", "read_file", `{"path": "/tmp/x"}`)
	wantEffect(t, "a2", e, r, "allow")

	// The audit log, in order: the deny, the batch that applied it, the
	// demotion to ring 2; the second deny, its batch, the demotion to ring
	// 3; the third deny, its batch, then the kill switch naming the drop.
	code, log := in.call("GET", "/v1/audit?after=-1&limit=1000", "admin-tok", "")
	if code != 200 {
		t.Fatalf("audit: %d %v", code, log)
	}
	var steps []string
	for _, raw := range log["entries"].([]any) {
		en := raw.(map[string]any)
		rec, _ := json.Marshal(en["record"])
		s := string(rec)
		switch en["kind"] {
		case "decision":
			if strings.Contains(s, `"/etc/`) {
				steps = append(steps, "deny /etc")
			}
		case "trust":
			if strings.Contains(s, `"agent":"a1","delta":-100`) {
				steps = append(steps, "trust -100")
			}
		case "trust.tier":
			var tc struct {
				From, To struct {
					Score int
					Tier  string
					Ring  int
				}
			}
			json.Unmarshal(rec, &tc)
			steps = append(steps, fmt.Sprintf("tier %s/%d->%s/%d", tc.From.Tier, tc.From.Ring, tc.To.Tier, tc.To.Ring))
		case "kill":
			if strings.Contains(s, `"by":"trust"`) && strings.Contains(s, "below trust.kill_below 200") {
				steps = append(steps, "kill")
			}
		}
	}
	want := "deny /etc,trust -100,tier standard/1->probationary/2,deny /etc,trust -100,tier probationary/2->untrusted/3,deny /etc,trust -100,kill"
	if got := strings.Join(steps, ","); got != want {
		t.Fatalf("audit steps\n got %s\nwant %s", got, want)
	}
}

// An agent asks for a more privileged ring; an approver of the ring's
// group grants it for a while through the approval queue; the ring
// reverts after the ttl. Asking for another agent, or without a reason,
// is refused.
func TestServeElevationThroughApproval(t *testing.T) {
	in := startTrustServer(t)
	a2 := "a2-tok"
	e, r := in.decideAs(a2, "pay", `{"amount": 5}`)
	wantEffect(t, "pay in ring 2", e, r, "deny", "ring 2 (worker) does not allow tool pay")

	if code, m := in.call("POST", "/v1/agents/a2/elevate", "a1-tok", `{"ring": 1, "ttl": "1m", "reason": "x"}`); code != 404 {
		t.Fatalf("a1 elevating a2: %d %v", code, m)
	}
	if code, m := in.call("POST", "/v1/agents/a2/elevate", a2, `{"ring": 1, "ttl": "1m"}`); code != 400 || !strings.Contains(errMsg(m), "reason") {
		t.Fatalf("no reason: %d %v", code, m)
	}
	if code, m := in.call("POST", "/v1/agents/a2/elevate", a2, `{"ring": 1, "ttl": "5h", "reason": "x"}`); code != 400 || !strings.Contains(errMsg(m), "max_elevation") {
		t.Fatalf("ttl beyond the bound: %d %v", code, m)
	}
	if code, m := in.call("GET", "/v1/agents/a2/trust", "a1-tok", ""); code != 404 {
		t.Fatalf("a1 reading a2's trust: %d %v", code, m)
	}
	code, m := in.call("POST", "/v1/agents/a2/elevate", a2, `{"ring": 1, "ttl": "2s", "reason": "pay the invoice INV-7"}`)
	if code != 202 {
		t.Fatalf("elevate: %d %v", code, m)
	}
	ticket := m["approval"].(map[string]any)["id"].(string)
	if e, _ := in.decideAs(a2, "pay", `{"amount": 5}`); e != "deny" {
		t.Fatal("asking elevated the agent")
	}
	code, q := in.call("GET", "/v1/approvals?status=pending", "lead-tok", "")
	if code != 200 || !strings.Contains(fmt.Sprint(q), ticket) || !strings.Contains(fmt.Sprint(q), "pay the invoice INV-7") {
		t.Fatalf("queue: %d %v", code, q)
	}
	if code, m := in.call("POST", "/v1/approvals/"+ticket+"/approve", "lead-tok", `{"note": "ok for this one"}`); code != 200 {
		t.Fatalf("approve: %d %v", code, m)
	}
	e, r = in.decideAs(a2, "pay", `{"amount": 5}`)
	wantEffect(t, "pay once elevated", e, r, "allow")
	_, tr := in.call("GET", "/v1/agents/a2/trust", a2, "")
	rings, _ := tr["rings"].(map[string]any)
	if rings["ring"] != float64(1) || rings["elevation"] == nil {
		t.Fatalf("trust while elevated: %v", tr)
	}
	// The ring reverts once the ttl has passed.
	var reverted bool
	for range 500 {
		if e, _ = in.decideAs(a2, "pay", `{"amount": 5}`); e == "deny" {
			reverted = true
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !reverted {
		t.Fatal("the elevation outlived its ttl")
	}
	var events []string
	for range 200 {
		_, log := in.call("GET", "/v1/audit?after=-1&limit=1000", "admin-tok", "")
		events = events[:0]
		for _, raw := range log["entries"].([]any) {
			en := raw.(map[string]any)
			if en["kind"] == "ring.elevation" {
				events = append(events, fmt.Sprint(en["record"].(map[string]any)["event"]))
			}
		}
		if len(events) == 3 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := strings.Join(events, ","); got != "request,grant,end" {
		t.Fatalf("ring.elevation entries: %s", got)
	}
}

// Calling a tool the MCP gateway keeps quarantined (here: a server with no
// pinned tools) costs the agent trust.events.quarantined_tool points each
// time, after the refusal is recorded, and the trust entry names the tool.
// Another agent is untouched.
func TestServeQuarantinedToolUseLowersTrust(t *testing.T) {
	files := t.TempDir()
	in := startWithConfig(t, fmt.Sprintf(`
trust:
  flush_every: 20ms
  events: {quarantined_tool: -40}
mcp:
  servers:
    fs: {command: [node, %q, %q]}
`, fsServer(t), files))
	in.waitScore("admin-tok", "a1", 500)
	ctx := context.Background()
	cs, err := sdk.NewClient(&sdk.Implementation{Name: "e2e", Version: "1"}, nil).Connect(ctx,
		&sdk.StreamableClientTransport{Endpoint: in.url + "/mcp/fs", HTTPClient: &http.Client{Transport: bearer{"a1-tok"}}}, nil)
	if err != nil {
		t.Fatalf("connect: %v\n%s", err, in.output())
	}
	defer cs.Close()
	for i, want := range []int{460, 420} {
		res, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: "read_text_file", Arguments: map[string]any{"path": filepath.Join(files, "x")}})
		if err != nil || !res.IsError || !strings.Contains(textOf(res), "is quarantined") {
			t.Fatalf("call %d of a quarantined tool: %v %+v", i, err, res)
		}
		m := in.waitScore("admin-tok", "a1", want)
		evs, _ := m["events"].([]any)
		if len(evs) == 0 || !strings.Contains(fmt.Sprint(evs[0]), "quarantined_tool") || !strings.Contains(fmt.Sprint(evs[0]), "called quarantined tool fs/read_text_file") {
			t.Fatalf("latest trust event: %v", m)
		}
	}
	in.waitScore("admin-tok", "a2", 500)
	// The refusal is in the log before the trust entry it caused.
	var order []string
	for _, en := range in.auditEntries() {
		rec, _ := json.Marshal(en["record"])
		switch {
		case en["kind"] == "mcp.call" && strings.Contains(string(rec), "is quarantined"):
			order = append(order, "refused")
		case en["kind"] == "trust" && strings.Contains(string(rec), "quarantined_tool"):
			order = append(order, "trust")
		}
	}
	if got := strings.Join(order, ","); got != "refused,trust,refused,trust" {
		t.Fatalf("audit order: %s", got)
	}
}
