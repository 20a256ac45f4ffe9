package main

import (
	"testing"
)

func TestSessionRewardFromARealServersDecisions(t *testing.T) {
	in := startServer(t)
	for _, body := range []string{
		`{"session":"ep-1","tool":{"name":"read_file"},"args":{"path":"/tmp/x"}}`,  // allow
		`{"session":"ep-1","tool":{"name":"read_file"},"args":{"path":"/etc/x"}}`,  // deny, high
		`{"session":"ep-1","tool":{"name":"write_file"},"args":{"path":"/tmp/x"}}`, // default deny, no severity
		`{"session":"ep-2","tool":{"name":"read_file"},"args":{"path":"/etc/x"}}`,  // another episode
	} {
		if code, d := in.call("POST", "/v1/decide", "a1-tok", body); code != 200 {
			t.Fatalf("decide: %d %v", code, d)
		}
	}
	code, r := in.call("GET", "/v1/sessions/ep-1/reward", "admin-tok", "")
	if code != 200 {
		t.Fatalf("reward: %d %v", code, r)
	}
	// Default penalties: high -20, a denial without severity -1.
	if r["reward"] != -21.0 || r["decisions"] != 3.0 || r["session"] != "ep-1" {
		t.Fatalf("reward: %v", r)
	}
	vs := r["violations"].([]any)
	if len(vs) != 2 {
		t.Fatalf("violations: %v", vs)
	}
	first := vs[0].(map[string]any)
	if first["rule"] != "no-etc" || first["severity"] != "high" || first["penalty"] != -20.0 || first["decision"] == "" {
		t.Fatalf("first violation: %v", first)
	}
	// Only admins read rewards; an unknown episode is not a clean one.
	if code, _ := in.call("GET", "/v1/sessions/ep-1/reward", "a1-tok", ""); code != 403 {
		t.Fatalf("agent token: %d", code)
	}
	if code, _ := in.call("GET", "/v1/sessions/nope/reward", "admin-tok", ""); code != 404 {
		t.Fatalf("unknown session: %d", code)
	}
}
