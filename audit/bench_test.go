package audit_test

import (
	"context"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentgov/agentgov/audit"
)

// BenchmarkAppend measures durable appends per second (ns/op is per
// acknowledged append, each on disk with synchronous=FULL) with one appender
// and with 50 concurrent ones, where group commit shares each fsync.
func BenchmarkAppend(b *testing.B) {
	rec := map[string]any{
		"id":     "dec_01JQ3Z5T4W8R9Y2K6M7N0P1Q2R",
		"effect": "allow",
		"agent":  map[string]any{"id": "researcher-1", "type": "assistant"},
		"tool":   map[string]any{"name": "read_file"},
		"args":   map[string]any{"path": "/tmp/notes.txt"},
		"rules":  []string{"read-tools"},
	}
	b.Run("appenders=1", func(b *testing.B) {
		l := startLog(b, b.TempDir(), audit.Options{CheckpointInterval: time.Hour})
		ctx := context.Background()
		for b.Loop() {
			if _, err := l.Append(ctx, "decision", rec); err != nil {
				b.Fatal(err)
			}
		}
		if l.Size() != uint64(b.N) {
			b.Fatalf("size %d after %d appends", l.Size(), b.N)
		}
	})
	b.Run("appenders=50", func(b *testing.B) {
		l := startLog(b, b.TempDir(), audit.Options{CheckpointInterval: time.Hour})
		ctx := context.Background()
		procs := runtime.GOMAXPROCS(0)
		b.SetParallelism((50 + procs - 1) / procs) // at least 50 goroutines
		var n atomic.Uint64
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := l.Append(ctx, "decision", rec); err != nil {
					b.Error(err)
					return
				}
				n.Add(1)
			}
		})
		b.StopTimer()
		if l.Size() != n.Load() {
			b.Fatalf("size %d after %d appends", l.Size(), n.Load())
		}
		b.ReportMetric(float64(n.Load())/b.Elapsed().Seconds(), "appends/s")
	})
}
