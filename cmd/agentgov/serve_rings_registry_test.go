package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// startRegistryRingServer starts `agentgov serve` with identity, trust and
// rings whose configured default is ring 1: an agent registered in
// another ring holds that one instead. Ring 2 allows reads and writes;
// rings 1 and 2 need the standard tier, so a drop to probationary demotes
// a ring-2 agent to ring 3 (reads only); below 300 it is killed.
func startRegistryRingServer(t *testing.T) *instance {
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
audit: {checkpoint_interval: 100ms}
identity: {audience: %q}
trust:
  initial: 600
  kill_below: 300
  flush_every: 20ms
  events:
    deny: {high: -150}
rings:
  default: 1
  approvers: ["group:security"]
  profiles:
    0: {description: admin, min_tier: verified}
    1: {description: operator, min_tier: standard}
    2: {description: worker, min_tier: standard, tools: ["read_*", "write_*"]}
    3: {description: read-only, tools: ["read_*"]}
`, sum("admin-tok"), sum("lead-tok"), sum("a1-tok"), identityAudience)
	os.WriteFile(filepath.Join(dir, "agentgov.yaml"), []byte(cfg), 0o644)
	in := &instance{t: t, dir: dir, data: filepath.Join(dir, "data")}
	in.args = []string{"serve", "--config", filepath.Join(dir, "agentgov.yaml"), "--policies", pol, "--data", in.data, "--addr", freePort(t)}
	in.start()
	t.Cleanup(in.stop)
	return in
}

// waitRing polls the agent's trust until it holds ring want.
func (in *instance) waitRing(token, agent string, want int) map[string]any {
	in.t.Helper()
	var got map[string]any
	for range 500 {
		code, m := in.call("GET", "/v1/agents/"+agent+"/trust", token, "")
		if code != 200 {
			in.t.Fatalf("trust of %s: %d %v", agent, code, m)
		}
		if rings, _ := m["rings"].(map[string]any); rings["ring"] == float64(want) {
			return m
		}
		got = m
		time.Sleep(10 * time.Millisecond)
	}
	in.t.Fatalf("%s never held ring %d: %v", agent, want, got)
	return nil
}

// An agent's ring comes from the registry, through the running server:
// registered in ring 2 where the configuration's default is ring 1, it is
// denied a ring-1 tool with its ring in the reason; elevated through an
// approval it is allowed until the ttl; a trust drop below ring 2's
// min_tier demotes it to ring 3, and a further drop below kill_below kills
// it. An agent the registry does not know keeps the configured ring, and
// one registered without a ring is in the least privileged.
func TestServeRingComesFromTheRegistry(t *testing.T) {
	in := startRegistryRingServer(t)
	keys := filepath.Join(in.dir, "keys")
	os.MkdirAll(keys, 0o700)
	if out, err := in.cli("keygen", "--out", filepath.Join(keys, "w")); err != nil {
		t.Fatalf("keygen: %v\n%s", err, out)
	}
	if out, err := in.cli("agents", "register", "w", "--pub", filepath.Join(keys, "w.pub"), "--ring", "2"); err != nil || !strings.Contains(out, "registered w (ring 2)") {
		t.Fatalf("register: %v\n%s", err, out)
	}
	w := func() string { return agentJWT(t, filepath.Join(keys, "w.key"), "w", nil) }

	// Unregistered a1 holds the configured default, ring 1.
	e, r := in.decideAs("a1-tok", "pay", `{"amount": 5}`)
	wantEffect(t, "a1 in the configured ring 1", e, r, "allow")
	// Registered w holds ring 2.
	e, r = in.decideAs(w(), "pay", `{"amount": 5}`)
	wantEffect(t, "w in its registry ring", e, r, "deny", "ring: agent w holds ring 2: ring 2 (worker) does not allow tool pay (allows read_*, write_*)")
	e, r = in.decideAs(w(), "write_file", `{"path": "/tmp/x"}`)
	wantEffect(t, "w writes in ring 2", e, r, "allow")
	if m := in.waitScore("admin-tok", "w", 590); m["rings"].(map[string]any)["base"] != float64(2) {
		t.Fatalf("trust of w: %v", m)
	}

	// Elevated to ring 1 through an approval, until the ttl.
	code, m := in.call("POST", "/v1/agents/w/elevate", w(), `{"ring": 1, "ttl": "2s", "reason": "pay the invoice INV-9"}`)
	if code != 202 {
		t.Fatalf("elevate: %d %v", code, m)
	}
	ticket := m["approval"].(map[string]any)["id"].(string)
	if code, m := in.call("POST", "/v1/approvals/"+ticket+"/approve", "lead-tok", `{}`); code != 200 {
		t.Fatalf("approve: %d %v", code, m)
	}
	e, r = in.decideAs(w(), "pay", `{"amount": 5}`)
	wantEffect(t, "pay once elevated", e, r, "allow")
	in.waitRing("admin-tok", "w", 2)
	e, r = in.decideAs(w(), "pay", `{"amount": 5}`)
	wantEffect(t, "pay after the ttl", e, r, "deny", "agent w holds ring 2")
	in.waitScore("admin-tok", "w", 580)

	// A high deny takes it to probationary, below ring 2's min_tier.
	e, r = in.decideAs(w(), "read_file", `{"path": "/etc/shadow"}`)
	wantEffect(t, "first /etc read", e, r, "deny", "no-etc")
	m = in.waitScore("admin-tok", "w", 430)
	if rings := m["rings"].(map[string]any); m["tier"] != "probationary" || rings["ring"] != float64(3) || rings["base"] != float64(2) || rings["demoted"] != true {
		t.Fatalf("after the drop: %v", m)
	}
	e, r = in.decideAs(w(), "write_file", `{"path": "/tmp/x"}`)
	wantEffect(t, "write once demoted", e, r, "deny", "agent w holds ring 3 (demoted from ring 2: its trust tier probationary is below ring 2's min_tier standard): ring 3 (read-only) does not allow tool write_file")
	in.waitScore("admin-tok", "w", 420)
	// A second one takes it below kill_below.
	e, r = in.decideAs(w(), "read_file", `{"path": "/etc/passwd"}`)
	wantEffect(t, "second /etc read", e, r, "deny", "no-etc")
	in.waitScore("admin-tok", "w", 270)
	var killed string
	for range 400 {
		if e, r = in.decideAs(w(), "read_file", `{"path": "/tmp/x"}`); e == "deny" {
			killed = r
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	wantEffect(t, "after the floor", "deny", killed, "deny", "kill switch", "(agent w)", "below trust.kill_below 300")

	// The audit log shows the registry's ring in the tier change.
	var tiers []string
	for _, en := range in.auditEntries() {
		if en["kind"] == "trust.tier" {
			rec, _ := json.Marshal(en["record"])
			if strings.Contains(string(rec), `"agent":"w"`) {
				tiers = append(tiers, string(rec))
			}
		}
	}
	if len(tiers) != 2 || !strings.Contains(tiers[0], `"from":{"ring":2,"score":580,"tier":"standard"}`) || !strings.Contains(tiers[0], `"to":{"ring":3,"score":430,"tier":"probationary"}`) {
		t.Fatalf("trust.tier entries of w: %v", tiers)
	}

	// Registered without a ring: the least privileged, never Go's zero.
	pub, _ := os.ReadFile(filepath.Join(keys, "w.pub"))
	code, m = in.call("POST", "/v1/agents", "admin-tok", `{"id":"quiet","keys":[{"kid":"k1","public_key":"`+strings.TrimSpace(string(pub))+`"}]}`)
	if code != 201 || m["ring"] != float64(3) {
		t.Fatalf("registered without a ring: %d %v", code, m)
	}
}
