package govern_test

import (
	"context"
	"testing"
	"time"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/govern"
	"github.com/agentgov/agentgov/policy"
)

// A limit's id is unique within its document only: two teams' documents may
// both name a limit api-calls. Each counts its own calls, with its own per:
// sharing one window, every call counted twice, and the shorter per reset
// the longer one's count.
func TestLimitsOfOneIDInTwoDocumentsCountApart(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var docs []*policy.Document
	for _, src := range []string{`
version: agentgov/v1
name: team-a
default: allow
rate_limits:
  - {id: api-calls, match: {tools: [fetch]}, limit: 3, per: 1h, key: agent, window: fixed}
`, `
version: agentgov/v1
name: team-b
default: allow
rate_limits:
  - {id: api-calls, match: {tools: [fetch]}, limit: 3, per: 1m, key: agent, window: fixed}
`} {
		d, err := policy.Parse("p.yaml", []byte(src))
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, d)
	}
	set, err := policy.Compile(docs)
	if err != nil {
		t.Fatal(err)
	}
	eng := govern.New(set, govern.WithClock(func() time.Time { return now }))
	decide := func() action.Effect {
		d, _ := eng.Decide(context.Background(), tool("fetch", nil))
		return d.Effect
	}
	for i := range 3 {
		if e := decide(); e != action.Allow {
			t.Fatalf("call %d of 3, which both limits allow: %s", i+1, e)
		}
	}
	if e := decide(); e != action.Deny {
		t.Fatal("a 4th call allowed")
	}
	// team-b's minute is over; team-a's hour is not, and still holds.
	now = now.Add(2 * time.Minute)
	if e := decide(); e != action.Deny {
		t.Fatal("team-a's hourly limit was reset by team-b's minute")
	}
}
