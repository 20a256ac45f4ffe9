package govern_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/govern"
)

// A delegated agent gets no more than its chain allows, even where the
// policies allow everything: the deny names the link that refused it.
func TestADelegatedAgentIsHeldToEveryLinkOfItsChain(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	eng := govern.New(mustSet(t, "version: agentgov/v1\nname: open\ndefault: allow\n"), govern.WithClock(func() time.Time { return now }))
	chain := []action.Delegation{
		{ID: "dlg_1", Agent: "planner", Delegate: "coder", Tools: []string{"fs/*", "search"}, ExpiresAt: now.Add(time.Hour), MaxDepth: 2},
		{ID: "dlg_2", Agent: "coder", Delegate: "tester", Tools: []string{"fs/read_file"}, Points: []action.Point{action.PreToolCall}, ExpiresAt: now.Add(30 * time.Minute), MaxDepth: 1},
		{ID: "dlg_3", Agent: "tester", Delegate: "reader", Destinations: []string{"*.internal"}, ExpiresAt: now.Add(10 * time.Minute)},
	}
	act := func(tool, dest string) action.Action {
		return action.Action{Agent: action.Agent{ID: "reader", Delegation: chain}, Tool: action.Tool{Server: "fs", Name: tool}, Destination: dest}
	}
	cases := []struct {
		name   string
		a      action.Action
		effect action.Effect
		reason string
	}{
		{"inside every link", act("read_file", "docs.internal"), action.Allow, ""},
		{"a tool the second link leaves out", act("write_file", "docs.internal"), action.Deny, "delegation dlg_2 (coder to tester) does not cover tool fs/write_file"},
		{"a destination the third link leaves out", act("read_file", "evil.example"), action.Deny, "delegation dlg_3 (tester to reader) does not cover destination evil.example"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d, err := eng.Decide(context.Background(), c.a)
			if err != nil {
				t.Fatal(err)
			}
			if d.Effect != c.effect || (c.reason != "" && !strings.Contains(strings.Join(d.Reasons, ";"), c.reason)) {
				t.Fatalf("got %s %v, want %s %q", d.Effect, d.Reasons, c.effect, c.reason)
			}
		})
	}
	later := now.Add(15 * time.Minute)
	eng2 := govern.New(mustSet(t, "version: agentgov/v1\nname: open\ndefault: allow\n"), govern.WithClock(func() time.Time { return later }))
	d, _ := eng2.Decide(context.Background(), act("read_file", "docs.internal"))
	if d.Effect != action.Deny || !strings.Contains(d.Reasons[0], "dlg_3") || !strings.Contains(d.Reasons[0], "expired") {
		t.Fatalf("after the last link expired: %s %v", d.Effect, d.Reasons)
	}
}
