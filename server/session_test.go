package server_test

import (
	"fmt"
	"strings"
	"testing"
)

func inSession(id string) string {
	return `{"session":"` + id + `","tool":{"name":"read_file"},"args":{"path":"/tmp/x"}}`
}

// An admin pauses an agent's session; the agent cannot lift the pause
// itself, while it can still pause and resume on its own account.
func TestAgentCannotResumeASessionAnAdminPaused(t *testing.T) {
	e := start(t)
	if code, m := e.call("POST", "/v1/sessions", "a1-tok", `{"id":"s-1"}`); code != 201 {
		t.Fatalf("create: %d %v", code, m)
	}
	if _, d := e.call("POST", "/v1/decide", "a1-tok", inSession("s-1")); d["effect"] != "allow" {
		t.Fatalf("decide in s-1: %v", d)
	}
	if code, m := e.call("POST", "/v1/sessions/s-1/pause", "admin-tok", ""); code != 200 || m["operator_hold"] != true {
		t.Fatalf("admin pause: %d %v", code, m)
	}
	if code, m := e.call("POST", "/v1/sessions/s-1/resume", "a1-tok", ""); code != 403 || !strings.Contains(errMsg(m), "only an operator") {
		t.Fatalf("the agent lifting the admin's pause: %d %v", code, m)
	}
	if _, d := e.call("POST", "/v1/decide", "a1-tok", inSession("s-1")); d["effect"] != "deny" || !strings.Contains(fmt.Sprint(d["reasons"]), "paused") {
		t.Fatalf("decide in the held session: %v", d)
	}
	if code, m := e.call("POST", "/v1/sessions/s-1/resume?agent=a1", "admin-tok", ""); code != 200 || m["state"] != "active" {
		t.Fatalf("admin resume: %d %v", code, m)
	}
	// The agent's own pause is its own to lift.
	e.call("POST", "/v1/sessions/s-1/pause", "a1-tok", "")
	if code, m := e.call("POST", "/v1/sessions/s-1/resume", "a1-tok", ""); code != 200 || m["state"] != "active" {
		t.Fatalf("the agent resuming its own pause: %d %v", code, m)
	}
	sessions := e.entries("session")
	var events []string
	for _, s := range sessions {
		events = append(events, fmt.Sprint(s["event"], " by ", s["session"].(map[string]any)["updated_by"]))
	}
	// (The first decision activated the session; its own record says so.)
	if strings.Join(events, ", ") != "create by a1, pause by ops, resume by ops, pause by a1, resume by a1" {
		t.Fatalf("session entries: %s", strings.Join(events, ", "))
	}
}

// Session ids are per agent. An agent that takes another agent's session id
// first, or uses it after, acts in a session of its own: it neither shuts
// the other out nor learns that the other's exists.
func TestSessionIDsCannotBeSquatted(t *testing.T) {
	e := start(t)
	// a2 takes "s-1" before a1 does, and pauses it.
	if _, d := e.call("POST", "/v1/decide", "a2-tok", inSession("s-1")); d["effect"] != "allow" {
		t.Fatalf("a2 in s-1: %v", d)
	}
	e.call("POST", "/v1/sessions/s-1/pause", "a2-tok", "")
	if code, m := e.call("POST", "/v1/sessions", "a1-tok", `{"id":"s-1"}`); code != 201 || m["agent_id"] != "a1" {
		t.Fatalf("a1 creating s-1 after a2: %d %v", code, m)
	}
	if _, d := e.call("POST", "/v1/decide", "a1-tok", inSession("s-1")); d["effect"] != "allow" {
		t.Fatalf("a1 in its s-1: %v", d)
	}
	// a2 finds only its own: its pause, not a1's activity.
	if code, m := e.call("GET", "/v1/sessions/s-1", "a2-tok", ""); code != 200 || m["agent_id"] != "a2" || m["state"] != "paused" {
		t.Fatalf("a2 reading s-1: %d %v", code, m)
	}
	if code, _ := e.call("GET", "/v1/sessions/s-1?agent=a1", "a2-tok", ""); code != 403 {
		t.Fatalf("a2 naming a1's session: %d", code)
	}
	if code, m := e.call("POST", "/v1/sessions", "a2-tok", `{"id":"s-2"}`); code != 201 {
		t.Fatalf("a2 creating s-2: %d %v", code, m)
	}
	e.call("POST", "/v1/sessions/s-2/close", "a2-tok", "")
	if code, m := e.call("POST", "/v1/sessions", "a1-tok", `{"id":"s-2"}`); code != 201 {
		t.Fatalf("a1 creating an id a2 closed: %d %v (the answer tells a1 of a2's session)", code, m)
	}
	// An admin naming an id two agents use must say whose.
	if code, m := e.call("POST", "/v1/sessions/s-1/pause", "admin-tok", ""); code != 409 || !strings.Contains(errMsg(m), "?agent=") {
		t.Fatalf("admin pausing an ambiguous id: %d %v", code, m)
	}
}

// A kill switch on one agent's session stops that session only; another
// agent's session of the same id runs on.
func TestSessionKillStopsOneAgentsSession(t *testing.T) {
	e := start(t)
	e.call("POST", "/v1/decide", "a1-tok", inSession("s-1"))
	if code, m := e.call("POST", "/v1/kill", "admin-tok", `{"scope":"session","target":"s-1","reason":"loop"}`); code != 201 || m["agent"] != "a1" {
		t.Fatalf("kill a1's s-1 (the only s-1): %d %v", code, m)
	}
	if _, d := e.call("POST", "/v1/decide", "a1-tok", inSession("s-1")); d["effect"] != "deny" {
		t.Fatalf("a1 in its killed session: %v", d)
	}
	if _, d := e.call("POST", "/v1/decide", "a2-tok", inSession("s-1")); d["effect"] != "allow" {
		t.Fatalf("a2 in its own s-1 stopped by a1's switch: %v", d)
	}
	// Two agents now use s-1: the admin names whose.
	if code, m := e.call("POST", "/v1/kill", "admin-tok", `{"scope":"session","target":"s-1","reason":"loop"}`); code != 400 || !strings.HasPrefix(errMsg(m), "agent:") {
		t.Fatalf("kill an ambiguous session id: %d %v", code, m)
	}
	if code, m := e.call("POST", "/v1/kill", "admin-tok", `{"scope":"session","target":"s-1","agent":"a2","reason":"loop"}`); code != 201 {
		t.Fatalf("kill a2's s-1: %d %v", code, m)
	}
	if _, d := e.call("POST", "/v1/decide", "a2-tok", inSession("s-1")); d["effect"] != "deny" {
		t.Fatalf("a2 in its killed session: %v", d)
	}
}

// What a per-session limit promises when agents choose their session ids:
// it bounds one conversation. A new id escapes a session's kill switch; the
// agent's kill switch holds in every session, new ones included.
func TestAgentKillHoldsInEveryNewSession(t *testing.T) {
	e := start(t)
	e.call("POST", "/v1/decide", "a1-tok", inSession("s-1"))
	e.call("POST", "/v1/kill", "admin-tok", `{"scope":"session","target":"s-1","reason":"loop"}`)
	if _, d := e.call("POST", "/v1/decide", "a1-tok", inSession("s-new")); d["effect"] != "allow" {
		t.Fatalf("a new session after a session kill: %v", d)
	}
	e.call("POST", "/v1/kill", "admin-tok", `{"scope":"agent","target":"a1","reason":"loop"}`)
	for _, id := range []string{"s-new", "s-newer", ""} {
		body := inSession(id)
		if id == "" {
			body = `{"tool":{"name":"read_file"}}`
		}
		if _, d := e.call("POST", "/v1/decide", "a1-tok", body); d["effect"] != "deny" {
			t.Fatalf("session %q after an agent kill: %v", id, d)
		}
	}
}

// A session change the audit log cannot take is not made.
func TestSessionChangesThatCannotBeAuditedAreNotMade(t *testing.T) {
	e := start(t)
	e.call("POST", "/v1/sessions", "a1-tok", `{"id":"s-1"}`)
	e.audit.broken.Store(true)
	if code, _ := e.call("POST", "/v1/sessions/s-1/close", "admin-tok", ""); code != 503 {
		t.Fatalf("close with the log down: %d", code)
	}
	if code, _ := e.call("POST", "/v1/sessions", "a1-tok", `{"id":"s-2"}`); code != 503 {
		t.Fatalf("create with the log down: %d", code)
	}
	e.audit.broken.Store(false)
	if _, m := e.call("GET", "/v1/sessions/s-1", "a1-tok", ""); m["state"] != "created" {
		t.Fatalf("an unrecorded close was stored: %v", m)
	}
	if code, _ := e.call("GET", "/v1/sessions/s-2", "a1-tok", ""); code != 404 {
		t.Fatalf("an unrecorded session exists: %d", code)
	}
}
