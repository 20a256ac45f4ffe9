package anomaly

import (
	"math"
	"testing"
)

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*max(1, math.Abs(a), math.Abs(b)) }

// Within its memory the baseline is the plain mean and population
// variance of what it was given.
func TestStatsIsWelfordWithinMemory(t *testing.T) {
	var s stats
	xs := []float64{3, 7, 7, 19, 4}
	for _, x := range xs {
		s.add(x, 100)
	}
	mean, v := 0.0, 0.0
	for _, x := range xs {
		mean += x
	}
	mean /= float64(len(xs))
	for _, x := range xs {
		v += (x - mean) * (x - mean)
	}
	v /= float64(len(xs))
	if !near(s.mean, mean) || !near(s.vari, v) {
		t.Fatalf("mean %v var %v, want %v %v", s.mean, s.vari, mean, v)
	}
}

// Idle intervals added at once land where adding them one by one does,
// inside the memory, across its end and beyond it.
func TestStatsAddZerosMatchesOneByOne(t *testing.T) {
	for _, tc := range []struct{ before, zeros, memory int64 }{
		{5, 3, 100}, {5, 200, 100}, {150, 40, 100}, {1, 1, 2}, {0, 10, 5},
	} {
		var a, b stats
		for i := range tc.before {
			x := float64(10 + i%4)
			a.add(x, tc.memory)
			b.add(x, tc.memory)
		}
		for range tc.zeros {
			a.add(0, tc.memory)
		}
		b.addZeros(tc.zeros, tc.memory)
		if a.n != b.n || !near(a.mean, b.mean) || !near(a.vari, b.vari) {
			t.Errorf("%+v: one by one n %d mean %v var %v; at once n %d mean %v var %v", tc, a.n, a.mean, a.vari, b.n, b.mean, b.vari)
		}
	}
}
