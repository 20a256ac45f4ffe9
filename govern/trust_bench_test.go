package govern_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/govern"
	"github.com/agentgov/agentgov/store/sqlite"
	"github.com/agentgov/agentgov/trust"
)

// BenchmarkDecideTrust is an in-process decision without trust, with
// trust scores, and with scores and rings, over 100 rules whose
// conditions read trust.score (0 without a keeper, so that every mode allows): what trust adds to a decision.
func BenchmarkDecideTrust(b *testing.B) {
	ctx := context.Background()
	db, err := sqlite.OpenDir(ctx, b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	var src string
	{
		src = "version: agentgov/v1\nname: bench\ndefault: deny\nrules:\n"
		for i := range 100 {
			src += fmt.Sprintf("  - id: r%d\n    match: {tools: [tool_%d]}\n    when: 'trust.score >= 0'\n    effect: allow\n", i, i)
		}
	}
	for _, mode := range []string{"off", "scores", "rings", "registry-rings"} {
		b.Run("trust="+mode, func(b *testing.B) {
			var opts []govern.Option
			if mode != "off" {
				cfg := trust.Config{}
				cfg.Fill()
				var r trust.Rings
				if mode != "scores" {
					r = testRings
				}
				r.Fill()
				k, err := trust.New(ctx, trust.Options{Store: db, Config: cfg, Rings: r})
				if err != nil {
					b.Fatal(err)
				}
				if mode == "registry-rings" {
					k.SetRingSource(registryOf(1000))
				}
				opts = append(opts, govern.WithTrust(k))
			}
			eng := govern.New(mustSet(b, src), opts...)
			a := action.Action{Agent: action.Agent{ID: "a1"}, Tool: action.Tool{Name: "tool_50"}}
			want := action.Allow
			b.ReportAllocs()
			var d action.Decision
			for b.Loop() {
				d, _ = eng.Decide(ctx, a)
			}
			if d.Effect != want {
				b.Fatalf("effect %s, want %s", d.Effect, want)
			}
		})
	}
}

// Trust scores and rings add no allocation to an allowed in-process
// decision: the score comes from an immutable snapshot as a CEL value made
// once, the ring check reads the action by value, and a ring's denial
// text is built only for a denial.
func TestTrustAddsNoAllocation(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector changes what escapes")
	}
	ctx := context.Background()
	db, err := sqlite.OpenDir(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cfg := trust.Config{}
	cfg.Fill()
	r := testRings
	r.Fill()
	k, err := trust.New(ctx, trust.Options{Store: db, Config: cfg, Rings: r})
	if err != nil {
		t.Fatal(err)
	}
	// The agent's ring from a registry, as a server has it.
	k.SetRingSource(registryOf(1000))
	eng := govern.New(mustSet(t, rulesPolicy(100, false)+"  - id: gate\n    match: {tools: [tool_50]}\n    when: 'trust.score < 100'\n    effect: deny\n"), govern.WithTrust(k))
	a := action.Action{Agent: action.Agent{ID: "a1"}, Tool: action.Tool{Name: "tool_50"}}
	if d, _ := eng.Decide(ctx, a); d.Effect != action.Allow {
		t.Fatalf("decision %+v", d)
	}
	if n := testing.AllocsPerRun(1000, func() { eng.Decide(ctx, a) }); n != 1 {
		t.Errorf("%.1f allocations per decision with trust and rings, want 1 (as without)", n)
	}
}

// registryOf is a ring source shaped like the agent registry's: n agents
// a0 to a{n-1} in a map read from memory, each registered in ring 2.
func registryOf(n int) func(string) (int, bool) {
	rings := make(map[string]int, n)
	for i := range n {
		rings[fmt.Sprintf("a%d", i)] = 2
	}
	return func(id string) (int, bool) {
		r, ok := rings[id]
		return r, ok
	}
}
