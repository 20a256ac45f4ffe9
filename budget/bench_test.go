package budget_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/budget"
)

// BenchmarkReserveNoApplicableBudget is the cost budgets add to a decision
// no budget applies to: an index lookup, no store access.
func BenchmarkReserveNoApplicableBudget(b *testing.B) {
	for _, n := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("budgets=%d", n), func(b *testing.B) {
			e := newEnv(b, t0)
			for i := range n {
				e.put(b, fmt.Sprintf(`{"id":"b%d","scope":{"org":"org%d"},"period":"monthly","limits":{"calls":10}}`, i, i))
			}
			a := act("other", "t", "u", "a", "s", 10, 0.01)
			ctx := context.Background()
			for b.Loop() {
				v, err := e.b.Reserve(ctx, "dec_x", a)
				if err != nil || v.Reserved {
					b.Fatal(v, err)
				}
			}
		})
	}
}

// BenchmarkReserveSettle is one reserve and its settle against two
// applicable budgets, from 1 or 64 goroutines per CPU, on a real SQLite file
// with durable commits; concurrent operations share commits.
func BenchmarkReserveSettle(b *testing.B) {
	for _, p := range []int{1, 64} {
		b.Run(fmt.Sprintf("parallelism=%d", p), func(b *testing.B) { benchReserveSettle(b, p) })
	}
}

func benchReserveSettle(b *testing.B, parallelism int) {
	e := newEnv(b, t0)
	e.put(b, `{"id":"org","scope":{"org":"acme"},"period":"monthly","limits":{"cost_usd":1000000000}}`)
	e.put(b, `{"id":"team","scope":{"org":"acme","team":"t"},"period":"daily","limits":{"calls":1000000000}}`)
	var n atomic.Int64
	b.SetParallelism(parallelism)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		a := act("acme", "t", "u", "a", "s", 10, 0.01)
		for pb.Next() {
			id := fmt.Sprintf("dec_bench%d", n.Add(1))
			v, err := e.b.Reserve(ctx, id, a)
			if err != nil || !v.Reserved {
				b.Fatal(v, err)
			}
			if err := e.b.Settle(ctx, id, action.Outcome{Status: "ok", Tokens: 12, CostUSD: 0.01}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.StopTimer()
	if u := e.usage(b, "team"); u.Spent.Calls != n.Load() {
		b.Fatalf("spent calls %d after %d reserves", u.Spent.Calls, n.Load())
	}
}

// BenchmarkSettleNoBudget is what an outcome costs when no budget applies:
// its spend alone, one durable transaction shared by the outcomes settled
// at the same moment, from 1 or 64 goroutines per CPU.
func BenchmarkSettleNoBudget(b *testing.B) {
	for _, p := range []int{1, 64} {
		b.Run(fmt.Sprintf("parallelism=%d", p), func(b *testing.B) {
			e := newEnv(b, t0)
			var n atomic.Int64
			b.SetParallelism(p)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				ctx := context.Background()
				for pb.Next() {
					if err := e.b.Settle(ctx, fmt.Sprintf("dec_bench%d", n.Add(1)), action.Outcome{Status: "ok", Tokens: 12, CostUSD: 0.01}); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.StopTimer()
			rows, err := e.b.Spend(context.Background(), budget.SpendQuery{})
			if err != nil || len(rows) != 1 || rows[0].Spent.Calls != n.Load() {
				b.Fatalf("spend %+v after %d settles: %v", rows, n.Load(), err)
			}
		})
	}
}
