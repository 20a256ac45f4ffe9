package sqlite

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/agentgov/agentgov/audit"
)

// BenchmarkAuditAppend measures the SQLite side of an audit batch (rows,
// tree nodes, the decision index, and the sync of its commit at
// synchronous=FULL) per entry, by batch size, with
// entries the size of a decision record.
func BenchmarkAuditAppend(b *testing.B) {
	pad := strings.Repeat("x", 500)
	for _, size := range []int{1, 4, 10, 25, 50} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			db, err := OpenDir(context.Background(), b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
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
