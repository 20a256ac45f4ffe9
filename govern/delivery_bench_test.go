package govern_test

import (
	"context"
	"testing"
	"time"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/govern"
	"github.com/agentgov/agentgov/killswitch"
	"github.com/agentgov/agentgov/store/sqlite"
)

// BenchmarkDecideDelivery is what a shadow set (agreeing with the live
// one, so nothing is recorded) and a canary add to a decision on the
// server's path without its audit append (a kill switch makes the engine
// run its stages).
func BenchmarkDecideDelivery(b *testing.B) {
	ctx := context.Background()
	db, err := sqlite.OpenDir(ctx, b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	kill, err := killswitch.New(ctx, db, time.Now)
	if err != nil {
		b.Fatal(err)
	}
	a := action.Action{Agent: action.Agent{ID: "a1", Type: "assistant"}, Tool: action.Tool{Name: "tool_50"}, Args: map[string]any{"amount": int64(5000)}}
	set := mustSet(b, rulesPolicy(100, false))
	for _, c := range []struct {
		name string
		opt  []govern.Option
	}{
		{"plain", nil},
		{"shadow", []govern.Option{govern.WithShadow(mustSet(b, rulesPolicy(100, false)), nil)}},
		{"canary", []govern.Option{govern.WithCanary(govern.Canary{Set: mustSet(b, rulesPolicy(100, false)), Agents: []string{"a*"}}, nil)}},
	} {
		b.Run(c.name, func(b *testing.B) {
			eng := govern.New(set, append(c.opt, govern.WithKillSwitch(kill))...)
			b.ReportAllocs()
			var d action.Decision
			for b.Loop() {
				d, _ = eng.Decide(ctx, a)
			}
			if d.Effect != action.Allow {
				b.Fatalf("effect %s", d.Effect)
			}
		})
	}
}
