package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// effect is what the server decides for an agent's read in its own session
// (s-a1 for a1-tok).
func (in *instance) effect(t *testing.T, token string) string {
	t.Helper()
	body := `{"session":"s-` + strings.TrimSuffix(token, "-tok") + `","tool":{"name":"read_file"},"args":{"path":"/tmp/x"}}`
	code, d := in.call("POST", "/v1/decide", token, body)
	if code != 200 {
		t.Fatalf("decide: %d %v", code, d)
	}
	return fmt.Sprint(d["effect"])
}

func TestKillEngageListRelease(t *testing.T) {
	in := startServer(t)
	if a1, a2 := in.effect(t, "a1-tok"), in.effect(t, "a2-tok"); a1 != "allow" || a2 != "allow" {
		t.Fatalf("before any switch: a1 %s, a2 %s", a1, a2)
	}
	cases := []struct {
		args   []string
		target string
		stops  string // the agent token whose read is stopped
	}{
		{[]string{"kill", "agent", "a1", "--reason", "runaway loop"}, "agent a1", "a1-tok"},
		{[]string{"kill", "session", "--reason", "stuck", "s-a2"}, "session s-a2", "a2-tok"},
		{[]string{"kill", "principal", "team:search", "--reason", "audit"}, "principal team:search", "a1-tok"},
	}
	var ids []string
	for _, c := range cases {
		code, out, errOut := in.agentgov(t, "admin-tok", c.args...)
		if code != 0 {
			t.Fatalf("%q: exit %d: %s", c.args, code, errOut)
		}
		id, ok := strings.CutPrefix(strings.TrimSuffix(out, " ("+c.target+")\n"), "engaged ")
		if !ok || !strings.HasPrefix(id, "kill_") {
			t.Fatalf("%q printed %q", c.args, out)
		}
		if e := in.effect(t, c.stops); e != "deny" {
			t.Fatalf("%q did not stop %s: %s", c.args, c.stops, e)
		}
		ids = append(ids, id)
	}

	code, out, _ := in.agentgov(t, "admin-tok", "kill", "list")
	for _, want := range append(ids, "a1", "runaway loop", "team:search", "engaged", "ops") {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("kill list lacks %q:\n%s", want, out)
		}
	}

	// Releasing the session and principal switches leaves only the agent
	// one: a2 may act again, a1 may not.
	for _, id := range ids[1:] {
		if code, out, errOut := in.agentgov(t, "admin-tok", "kill", "release", id); code != 0 || out != "released "+id+"\n" {
			t.Fatalf("release: exit %d, %q, %q", code, out, errOut)
		}
	}
	if a1, a2 := in.effect(t, "a1-tok"), in.effect(t, "a2-tok"); a1 != "deny" || a2 != "allow" {
		t.Fatalf("after releasing two switches: a1 %s, a2 %s", a1, a2)
	}
	code, _, errOut := in.agentgov(t, "admin-tok", "kill", "release", ids[1])
	if code != 1 || !strings.Contains(errOut, "already released") {
		t.Fatalf("second release: exit %d, %q", code, errOut)
	}

	code, out, _ = in.agentgov(t, "admin-tok", "kill", "list", "--json")
	var listed struct{ Switches []struct{ ID string } }
	if code != 0 || json.Unmarshal([]byte(out), &listed) != nil || len(listed.Switches) != 1 || listed.Switches[0].ID != ids[0] {
		t.Fatalf("kill list --json: %d %q", code, out)
	}
	code, out, _ = in.agentgov(t, "admin-tok", "kill", "list", "--all")
	if code != 0 || strings.Count(out, "released by ops") != 2 {
		t.Fatalf("kill list --all: %d %q", code, out)
	}
}

func TestKillSystem(t *testing.T) {
	in := startServer(t)
	code, out, errOut := in.agentgov(t, "admin-tok", "kill", "system", "--reason", "incident 7")
	if code != 0 || !strings.HasSuffix(out, " (system)\n") {
		t.Fatalf("exit %d, %q, %q", code, out, errOut)
	}
	if a1, a2 := in.effect(t, "a1-tok"), in.effect(t, "a2-tok"); a1 != "deny" || a2 != "deny" {
		t.Fatalf("system switch: a1 %s, a2 %s", a1, a2)
	}
}

func TestKillPrintsTheServerError(t *testing.T) {
	in := startServer(t)
	code, _, errOut := in.agentgov(t, "admin-tok", "kill", "principal", "alice", "--reason", "x")
	if code != 1 || !strings.Contains(errOut, "user:NAME, team:NAME or org:NAME") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	code, _, errOut = in.agentgov(t, "admin-tok", "kill", "release", "kill_nope")
	if code != 1 || !strings.Contains(errOut, "kill switch not found") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	code, _, errOut = in.agentgov(t, "fin-tok", "kill", "system", "--reason", "x")
	if code != 1 || !strings.Contains(errOut, "approver token may not") {
		t.Fatalf("approver engaging a switch: exit %d, stderr %q", code, errOut)
	}
	if _, m := in.call("GET", "/v1/kill?all=true", "admin-tok", ""); len(m["switches"].([]any)) != 0 {
		t.Fatalf("refused commands engaged switches: %v", m)
	}
}

func TestKillUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"kill"},
		{"kill", "agent", "--reason", "x"},
		{"kill", "agent", "a", "b", "--reason", "x"},
		{"kill", "agent", "a"},
		{"kill", "system", "extra", "--reason", "x"},
		{"kill", "release"},
		{"kill", "list", "x"},
		{"kill", "planet", "earth", "--reason", "x"},
	} {
		if code, _, _ := offline(t, args...); code != 2 {
			t.Errorf("%q: exit %d, want 2", args, code)
		}
	}
}
