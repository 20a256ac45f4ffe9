package anomaly

import "math"

// stats is the mean and variance of a series, weighing its first memory
// values equally (Welford's method) and later ones exponentially, with
// weight 1/memory for the newest: a baseline that learns fast at first and
// then follows slow changes without forgetting at once.
type stats struct {
	n          int64 // values added, at most memory
	mean, vari float64
}

func (s *stats) add(x float64, memory int64) {
	if s.n < memory {
		s.n++
	}
	alpha := 1 / float64(s.n)
	d := x - s.mean
	s.mean += alpha * d
	s.vari = (1 - alpha) * (s.vari + alpha*d*d)
}

// addZeros adds k zeros in constant time: the intervals an agent was
// idle. Up to memory values they merge as a group (Chan's formula); past
// it, k steps of the exponential update have the closed form
// mean·f and f·(var + mean²·(1-f)), with f = (1-1/memory)^k.
func (s *stats) addZeros(k, memory int64) {
	if k <= 0 {
		return
	}
	if m := min(k, memory-s.n); m > 0 {
		n, fm := float64(s.n), float64(m)
		nm := n + fm
		s.vari = (n*s.vari + n*fm/nm*s.mean*s.mean) / nm
		s.mean = s.mean * n / nm
		s.n += m
		k -= m
	}
	if k > 0 {
		f := math.Pow(1-1/float64(memory), float64(k))
		s.vari = f * (s.vari + s.mean*s.mean*(1-f))
		s.mean *= f
	}
}
