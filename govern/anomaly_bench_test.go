package govern_test

import (
	"context"
	"testing"
	"time"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/anomaly"
	"github.com/agentgov/agentgov/govern"
	"github.com/agentgov/agentgov/sre"
)

// BenchmarkDecideWatched is what SLIs, circuit breakers and anomaly
// detection add to a decision together: the monitor of
// BenchmarkDecideReliability and the detector with its defaults but a 1s
// interval and a one-interval warm-up, so that the agent is warm and every
// finding is computed. The clock moves 1µs per read, so that intervals
// close and baselines move as under load. Each path runs without either,
// with the monitor, and with both.
func BenchmarkDecideWatched(b *testing.B) {
	ctx := context.Background()
	kill, rc, a := reliabilityFixture(b)
	ac := anomaly.Config{Interval: time.Second, WarmupIntervals: 1}
	ac.Fill()
	for _, path := range []string{"library", "stages"} {
		for _, watch := range []string{"none", "monitor", "monitor+anomaly"} {
			b.Run(path+"/"+watch, func(b *testing.B) {
				t := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
				opts := []govern.Option{govern.WithClock(func() time.Time { t = t.Add(time.Microsecond); return t })}
				if path == "stages" {
					opts = append(opts, govern.WithKillSwitch(kill))
				}
				if watch != "none" {
					opts = append(opts, govern.WithReliability(sre.New(rc, sre.Options{})))
				}
				if watch == "monitor+anomaly" {
					opts = append(opts, govern.WithAnomaly(anomaly.New(ac)))
				}
				eng := govern.New(mustSet(b, rulesPolicy(100, false)), opts...)
				for range 2000 { // past the warm-up
					eng.Decide(ctx, a)
				}
				b.ReportAllocs()
				var d action.Decision
				for b.Loop() {
					d, _ = eng.Decide(ctx, a)
				}
				if d.Effect != action.Allow || d.Flagged {
					b.Fatalf("decision %+v", d)
				}
			})
		}
	}
}
