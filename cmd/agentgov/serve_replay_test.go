package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// An agent keeps an Idempotency-Key whose first answer was an allow, and
// retries with it after an operator engaged a kill switch on it: the retry
// used to replay the allow. It is decided afresh (and so denied, and
// audited), as long as the kill switch holds; once it is released, the
// original allow is replayed again, unchanged.
func TestServeReplayedAllowIsDecidedAgainAfterAKill(t *testing.T) {
	in := startServer(t)
	read := `{"tool":{"name":"read_file"},"args":{"path":"/tmp/x"}}`
	_, first := in.call("POST", "/v1/decide", "a1-tok", read, "Idempotency-Key", "k-kill")
	if first["effect"] != "allow" {
		t.Fatalf("first: %v", first)
	}
	code, sw := in.call("POST", "/v1/kill", "admin-tok", `{"scope":"agent","target":"a1","reason":"runaway loop"}`)
	if code != 201 {
		t.Fatalf("engage: %d %v", code, sw)
	}
	_, retry := in.call("POST", "/v1/decide", "a1-tok", read, "Idempotency-Key", "k-kill")
	if retry["effect"] != "deny" || !strings.Contains(fmt.Sprint(retry["reasons"]), "runaway loop") || retry["id"] == first["id"] || retry["audit_index"] == nil {
		t.Fatalf("retry after the kill: %v; want a fresh, audited deny naming the kill switch", retry)
	}
	if code, _ := in.call("DELETE", "/v1/kill/"+sw["id"].(string), "admin-tok", ""); code != 200 {
		t.Fatalf("release: %d", code)
	}
	_, again := in.call("POST", "/v1/decide", "a1-tok", read, "Idempotency-Key", "k-kill")
	if again["id"] != first["id"] || again["effect"] != "allow" {
		t.Fatalf("retry after the release: %v; want the original allow %v replayed", again, first["id"])
	}
	// A deny grants nothing and is always replayed, kill switch or not.
	_, denied := in.call("POST", "/v1/decide", "a1-tok", `{"tool":{"name":"read_file"},"args":{"path":"/etc/passwd"}}`, "Idempotency-Key", "k-deny")
	in.call("POST", "/v1/kill", "admin-tok", `{"scope":"system","reason":"drill"}`)
	if _, d := in.call("POST", "/v1/decide", "a1-tok", `{"tool":{"name":"read_file"},"args":{"path":"/etc/passwd"}}`, "Idempotency-Key", "k-deny"); d["id"] != denied["id"] {
		t.Fatalf("a replayed deny changed: %v, first %v", d, denied)
	}
}

// The variants: what an allow was decided under changes in other ways
// too. A paused session, and a policy reload that now denies, each make
// the retry a fresh decision.
func TestServeReplayedAllowIsDecidedAgainWhenItsSessionOrPolicyChanged(t *testing.T) {
	in := startServer(t)
	read := `{"session":"work-1","tool":{"name":"read_file"},"args":{"path":"/tmp/x"}}`
	_, first := in.call("POST", "/v1/decide", "a1-tok", read, "Idempotency-Key", "k-session")
	if first["effect"] != "allow" {
		t.Fatalf("first: %v", first)
	}
	in.call("POST", "/v1/sessions/work-1/pause", "a1-tok", "")
	if _, d := in.call("POST", "/v1/decide", "a1-tok", read, "Idempotency-Key", "k-session"); d["effect"] != "deny" || !strings.Contains(fmt.Sprint(d["reasons"]), "paused") {
		t.Fatalf("retry in a paused session: %v", d)
	}
	in.call("POST", "/v1/sessions/work-1/resume", "a1-tok", "")
	if _, d := in.call("POST", "/v1/decide", "a1-tok", read, "Idempotency-Key", "k-session"); d["id"] != first["id"] {
		t.Fatalf("retry after resume: %v; want the original allow", d)
	}

	other := `{"tool":{"name":"read_notes"}}`
	_, allowed := in.call("POST", "/v1/decide", "a1-tok", other, "Idempotency-Key", "k-policy")
	if allowed["effect"] != "allow" {
		t.Fatalf("before the reload: %v", allowed)
	}
	pol := strings.Replace(testPolicy, `match: {tools: ["read_*"]}`, `match: {tools: ["read_file"]}`, 1)
	os.WriteFile(filepath.Join(in.dir, "policies", "test.yaml"), []byte(pol), 0o644)
	if code, m := in.call("POST", "/v1/policies/reload", "admin-tok", ""); code != 200 {
		t.Fatalf("reload: %d %v", code, m)
	}
	if _, d := in.call("POST", "/v1/decide", "a1-tok", other, "Idempotency-Key", "k-policy"); d["effect"] != "deny" || d["id"] == allowed["id"] {
		t.Fatalf("retry under a policy that now denies: %v", d)
	}
}
