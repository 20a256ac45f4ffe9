package govern_test

import (
	"context"
	"testing"
	"time"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/govern"
	"github.com/agentgov/agentgov/killswitch"
	"github.com/agentgov/agentgov/metrics"
	"github.com/agentgov/agentgov/store/sqlite"
)

// BenchmarkDecideObserved is what metrics add to a decision: on the
// library's path (policy only), and on the server's path without its
// audit append (a kill switch makes the engine run its stages), each
// without and with the observer that serves /metrics.
func BenchmarkDecideObserved(b *testing.B) {
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
	for _, path := range []string{"library", "stages"} {
		for _, observed := range []bool{false, true} {
			name := path + "/observer=none"
			var opts []govern.Option
			if path == "stages" {
				opts = append(opts, govern.WithKillSwitch(kill))
			}
			if observed {
				name = path + "/observer=metrics"
				opts = append(opts, govern.WithObserver(metrics.New()))
			}
			b.Run(name, func(b *testing.B) {
				eng := govern.New(mustSet(b, rulesPolicy(100, false)), opts...)
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
}
