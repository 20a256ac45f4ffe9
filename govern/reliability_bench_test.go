package govern_test

import (
	"context"
	"testing"
	"time"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/govern"
	"github.com/agentgov/agentgov/killswitch"
	"github.com/agentgov/agentgov/sre"
	"github.com/agentgov/agentgov/store/sqlite"
)

// BenchmarkDecideReliability is what SLIs and circuit breakers add to a
// decision: two SLOs (a success SLI awaiting the outcome, a
// policy-violation SLI counted at once) and a breaker guarding the tool,
// on the library's path and on the engine's stages (a kill switch, no
// audit log), each without and with the monitor. No outcome is reported,
// so the monitor also pays for forgetting the oldest awaited call.
func BenchmarkDecideReliability(b *testing.B) {
	ctx := context.Background()
	kill, cfg, a := reliabilityFixture(b)
	for _, path := range []string{"library", "stages"} {
		for _, on := range []bool{false, true} {
			name := path + "/reliability=none"
			var opts []govern.Option
			if path == "stages" {
				opts = append(opts, govern.WithKillSwitch(kill))
			}
			if on {
				name = path + "/reliability=monitor"
				opts = append(opts, govern.WithReliability(sre.New(cfg, sre.Options{})))
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

// BenchmarkDecideOutcomeReliability is a decision and its outcome on the
// library's path, without and with the monitor: the monitor's usual case,
// where the calls it awaits are the few in flight.
func BenchmarkDecideOutcomeReliability(b *testing.B) {
	ctx := context.Background()
	cfg := sre.Config{
		SLOs: []sre.SLO{
			{ID: "tools", SLI: sre.SLISuccess, Target: 0.99, Match: sre.Match{Tools: []string{"tool_*"}}},
			{ID: "clean", SLI: sre.SLIPolicyViolation, Target: 0.99},
		},
		Breakers: []sre.Breaker{{ID: "up", Match: sre.Match{Tools: []string{"*"}}}},
	}
	cfg.Fill()
	a := action.Action{Agent: action.Agent{ID: "a1", Type: "assistant"}, Tool: action.Tool{Name: "tool_50"}, Args: map[string]any{"amount": int64(5000)}}
	for _, on := range []bool{false, true} {
		name := "reliability=none"
		var opts []govern.Option
		if on {
			name = "reliability=monitor"
			opts = append(opts, govern.WithReliability(sre.New(cfg, sre.Options{})))
		}
		b.Run(name, func(b *testing.B) {
			eng := govern.New(mustSet(b, rulesPolicy(100, false)), opts...)
			b.ReportAllocs()
			o := action.Outcome{Status: "ok", LatencyMS: 12}
			for b.Loop() {
				d, _ := eng.Decide(ctx, a)
				if err := eng.Outcome(ctx, d.ID, o); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// reliabilityFixture is what the reliability benchmarks share: a kill
// switch over a fresh store, two SLOs (a success SLI awaiting the outcome,
// a policy-violation SLI counted at once) and a breaker guarding every
// tool, and the action they decide.
func reliabilityFixture(b *testing.B) (*killswitch.Switchboard, sre.Config, action.Action) {
	b.Helper()
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
	cfg := sre.Config{
		SLOs: []sre.SLO{
			{ID: "tools", SLI: sre.SLISuccess, Target: 0.99, Match: sre.Match{Tools: []string{"tool_*"}}},
			{ID: "clean", SLI: sre.SLIPolicyViolation, Target: 0.99},
		},
		Breakers: []sre.Breaker{{ID: "up", Match: sre.Match{Tools: []string{"*"}}}},
	}
	cfg.Fill()
	return kill, cfg, action.Action{Agent: action.Agent{ID: "a1", Type: "assistant"}, Tool: action.Tool{Name: "tool_50"}, Args: map[string]any{"amount": int64(5000)}}
}
