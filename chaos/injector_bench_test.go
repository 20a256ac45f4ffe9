package chaos

import (
	"context"
	"fmt"
	"testing"
)

// What a forwarded call pays for chaos: nothing configured (a nil
// injector), and experiments that are on and in their window but match
// other servers, so every one is tried and none injects.
func BenchmarkInject(b *testing.B) {
	ctx := context.Background()
	c := Call{Server: "search", Tool: "web_search", Agent: "a1", Decision: "dec_1"}
	b.Run("experiments=none", func(b *testing.B) {
		var in *Injector
		for b.Loop() {
			if _, ok := in.Inject(ctx, c); ok {
				b.Fatal("injected")
			}
		}
	})
	for _, n := range []int{1, 16, MaxExperiments} {
		b.Run(fmt.Sprintf("experiments=%d", n), func(b *testing.B) {
			var exps []Experiment
			for i := range n {
				exps = append(exps, Experiment{Match: Match{Servers: []string{fmt.Sprintf("other-%d", i)}, Tools: []string{"write_*"}}, Fault: Drop, Probability: 1})
			}
			Fill(exps)
			if err := Validate(exps); err != nil {
				b.Fatal(err)
			}
			in := New(exps, Options{Audit: &journal{}})
			b.ReportAllocs()
			for b.Loop() {
				if _, ok := in.Inject(ctx, c); ok {
					b.Fatal("injected")
				}
			}
		})
	}
}
