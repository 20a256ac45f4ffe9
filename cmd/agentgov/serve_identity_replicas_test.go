package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentgov/agentgov/identity"
)

// startReplica starts `agentgov serve` as replica id on the PostgreSQL
// database dsn, with the identity audience set.
func startReplica(t *testing.T, dsn, id string) *instance {
	t.Helper()
	return startReplicaWith(t, dsn, id, "")
}

// startReplicaWith is startReplica with extra configuration lines.
func startReplicaWith(t *testing.T, dsn, id, extra string) *instance {
	t.Helper()
	dir := t.TempDir()
	pol := filepath.Join(dir, "policies")
	os.MkdirAll(pol, 0o755)
	os.WriteFile(filepath.Join(pol, "test.yaml"), []byte(testPolicy), 0o644)
	cfg := fmt.Sprintf(`
store: %q
replica: %s
tokens:
  - {name: ops, role: admin, sha256: %s}
audit: {checkpoint_interval: 100ms}
identity: {audience: %q}
%s`, dsn, id, sum("admin-tok"), identityAudience, extra)
	os.WriteFile(filepath.Join(dir, "agentgov.yaml"), []byte(cfg), 0o644)
	in := &instance{t: t, dir: dir, data: filepath.Join(dir, "data")}
	in.args = []string{"serve", "--config", filepath.Join(dir, "agentgov.yaml"), "--policies", pol, "--data", in.data, "--addr", freePort(t)}
	in.start()
	t.Cleanup(in.stop)
	return in
}

// eventually polls cond for up to a few seconds: for what replicas hear of
// each other's changes through the database's change feed, and for what a
// server records after answering (the gateway settles a call once the
// client has its result).
// eventually waits for cond. The bound is generous: it is there to end a
// test that would otherwise hang, not to measure how fast cond comes true
// (a loaded machine may take seconds).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 15s", what)
		}
	}
}

// Two replicas on one database share the registry and the replay cache: an
// agent registered on one signs in on the other, a JWT used on one is a
// replay on the other, and a revocation on one refuses the agent on the
// other.
func TestServeReplicasShareIdentity(t *testing.T) {
	dsn, _ := pgSchema(t)
	a := startReplica(t, dsn, "r1")
	b := startReplica(t, dsn, "r2")
	keyPrefix := filepath.Join(a.dir, "planner")
	if out, err := a.cli("keygen", "--out", keyPrefix); err != nil {
		t.Fatalf("keygen: %v\n%s", err, out)
	}
	if out, err := a.cli("agents", "register", "planner", "--pub", keyPrefix+".pub"); err != nil {
		t.Fatalf("register: %v\n%s", err, out)
	}
	decide := func(in *instance, tok string) (int, map[string]any) {
		return in.call("POST", "/v1/decide", tok, `{"tool":{"name":"read_notes"}}`)
	}
	eventually(t, "r2 takes the agent registered on r1", func() bool {
		code, _ := decide(b, agentJWT(t, keyPrefix+".key", "planner", nil))
		return code == 200
	})
	tok := agentJWT(t, keyPrefix+".key", "planner", nil)
	if code, m := decide(a, tok); code != 200 {
		t.Fatalf("r1: %d %v", code, m)
	}
	if code, m := decide(b, tok); code != 401 || reasonOf(m) != string(identity.Replayed) {
		t.Fatalf("the same JWT on r2: %d %v, want 401 replayed", code, m)
	}
	if out, err := b.cli("agents", "revoke", "planner"); err != nil || !strings.Contains(out, "revoked planner") {
		t.Fatalf("revoke on r2: %v\n%s", err, out)
	}
	if code, m := decide(b, agentJWT(t, keyPrefix+".key", "planner", nil)); code != 401 || reasonOf(m) != "revoked" {
		t.Fatalf("r2, which revoked: %d %v", code, m)
	}
	eventually(t, "r1 refuses the agent revoked on r2", func() bool {
		code, m := decide(a, agentJWT(t, keyPrefix+".key", "planner", nil))
		return code == 401 && reasonOf(m) == "revoked"
	})
}

// Two replicas give a registered agent the same ring: registered in ring 2
// on r1, where the configured default is ring 1, it holds ring 2 on r2 as
// soon as r2 hears of the registration, and is denied a ring-1 tool there
// naming it.
func TestServeReplicasAgreeOnTheRegistryRing(t *testing.T) {
	dsn, _ := pgSchema(t)
	rings := `rings:
  default: 1
  profiles:
    0: {}
    1: {}
    2: {tools: ["read_*"]}
    3: {tools: ["read_*"]}
`
	a := startReplicaWith(t, dsn, "r1", rings)
	b := startReplicaWith(t, dsn, "r2", rings)
	keyPrefix := filepath.Join(a.dir, "worker")
	if out, err := a.cli("keygen", "--out", keyPrefix); err != nil {
		t.Fatalf("keygen: %v\n%s", err, out)
	}
	if out, err := a.cli("agents", "register", "worker", "--pub", keyPrefix+".pub", "--ring", "2"); err != nil {
		t.Fatalf("register: %v\n%s", err, out)
	}
	var last string
	eventually(t, "r2 holds worker in its registry ring", func() bool {
		code, d := b.call("POST", "/v1/decide", agentJWT(t, keyPrefix+".key", "worker", nil), `{"tool":{"name":"pay"},"args":{"amount":1}}`)
		last = fmt.Sprint(code, d)
		return code == 200 && d["effect"] == "deny" && strings.Contains(fmt.Sprint(d["reasons"]), "agent worker holds ring 2")
	})
	for _, in := range []*instance{a, b} {
		code, d := in.call("POST", "/v1/decide", agentJWT(t, keyPrefix+".key", "worker", nil), `{"tool":{"name":"read_notes"}}`)
		if code != 200 || d["effect"] == "deny" {
			t.Fatalf("a read in ring 2: %d %v (last: %s)", code, d, last)
		}
	}
}
