package govern_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/govern"
)

// rulesPolicy writes n rules, each allowing one tool by exact name, with an
// optional condition on every rule.
func rulesPolicy(n int, cond bool) string {
	var b strings.Builder
	b.WriteString("version: agentgov/v1\nname: bench\ndefault: deny\nrules:\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "  - id: r%d\n    match: {tools: [tool_%d]}\n    effect: allow\n", i, i)
		if cond {
			b.WriteString("    when: 'args.amount > 1000'\n")
		}
	}
	return b.String()
}

func BenchmarkDecide(b *testing.B) {
	ctx := context.Background()
	for _, n := range []int{1, 100, 1000} {
		for _, cond := range []bool{false, true} {
			b.Run(fmt.Sprintf("rules=%d/cond=%v", n, cond), func(b *testing.B) {
				eng := govern.New(mustSet(b, rulesPolicy(n, cond)))
				a := action.Action{Agent: action.Agent{ID: "a1"}, Tool: action.Tool{Name: fmt.Sprintf("tool_%d", n/2)}, Args: map[string]any{"amount": int64(5000)}}
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

// The library path allocates once: the decision's own copy of its rule ids
// and reasons, which the caller may write into without touching the policy
// set. Any more is an escape of the action to the heap (easy to cause by
// accident through an interface), and shows up here first.
func TestDecideDoesNotAllocate(t *testing.T) {
	ctx := context.Background()
	for _, cond := range []bool{false, true} {
		eng := govern.New(mustSet(t, rulesPolicy(100, cond)))
		a := action.Action{Agent: action.Agent{ID: "a1"}, Tool: action.Tool{Name: "tool_50"}, Args: map[string]any{"amount": int64(5000)}}
		if n := testing.AllocsPerRun(1000, func() { eng.Decide(ctx, a) }); n != 1 {
			t.Errorf("cond=%v: %.1f allocations per decision, want 1", cond, n)
		}
	}
}
