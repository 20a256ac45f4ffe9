package postgres_test

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/audit"
	"github.com/agentgov/agentgov/budget"
	"github.com/agentgov/agentgov/store/postgres"
	"github.com/agentgov/agentgov/store/storetest"
)

// BenchmarkAuditAppend measures the PostgreSQL side of an audit batch
// (rows, tree nodes, the decision index, a durable commit) per entry, by
// batch size, with entries the size of a decision record.
func BenchmarkAuditAppend(b *testing.B) {
	pad := strings.Repeat("x", 500)
	for _, size := range []int{1, 10, 50} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			dsn, _ := freshSchema(b)
			db := openReplica(b, dsn, "r1", storetest.NewKey(b, "r1").Text, postgres.Options{})
			ctx := context.Background()
			rng := (&compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}).NewEmptyRange(0)
			next := uint64(0)
			b.ResetTimer()
			for i := 0; i < b.N; i += size {
				rows := make([]audit.Row, size)
				var nodes []audit.Node
				for j := range rows {
					data := fmt.Appendf(nil, `{"index":%d,"kind":"decision","record":{"decision":{"id":"dec_%026d"},"pad":%q}}`, next, next, pad)
					rows[j] = audit.Row{Index: next, Data: data}
					rng.Append(audit.LeafHash(data), func(id compact.NodeID, h []byte) { nodes = append(nodes, audit.Node{ID: id, Hash: h}) })
					next++
				}
				if err := db.AuditAppend(ctx, rows, nodes); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkReserveSettle is a budget reservation and its settlement, on
// two replicas sharing one budget, one caller at a time and 64 at once.
func BenchmarkReserveSettle(b *testing.B) {
	for _, par := range []int{1, 64} {
		b.Run(fmt.Sprintf("concurrent=%d", par), func(b *testing.B) {
			dsn, _ := freshSchema(b)
			var bs []*budget.Budgets
			for _, id := range []string{"r1", "r2"} {
				db := openReplica(b, dsn, id, storetest.NewKey(b, id).Text, postgres.Options{MaxConns: 32})
				bb, err := budget.New(db, budget.Options{})
				if err != nil {
					b.Fatal(err)
				}
				bs = append(bs, bb)
			}
			ctx := context.Background()
			if err := bs[0].Put(ctx, budget.Config{ID: "big", Scope: budget.Scope{Agent: "a1"}, Period: "none", Limits: budget.Amounts{Calls: 1 << 40}}); err != nil {
				b.Fatal(err)
			}
			if err := bs[1].Reload(ctx); err != nil {
				b.Fatal(err)
			}
			a := &action.Action{Agent: action.Agent{ID: "a1"}, Tool: action.Tool{Name: "t"}}
			var n atomic.Int64
			b.SetParallelism(max(1, par/runtime.GOMAXPROCS(0))) // par goroutines in all
			b.ResetTimer()
			run := func() {
				i := n.Add(1)
				bb := bs[i%2]
				id := fmt.Sprintf("dec_%d", i)
				v, err := bb.Reserve(ctx, id, a)
				if err != nil || v.Effect != action.Allow {
					b.Fatalf("%+v %v", v, err)
				}
				if err := bs[(i+1)%2].Settle(ctx, id, action.Outcome{Status: "ok"}); err != nil {
					b.Fatal(err)
				}
			}
			if par == 1 {
				for b.Loop() {
					run()
				}
				return
			}
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					run()
				}
			})
		})
	}
}
