package sre

import "time"

// counts are the good and bad events of a span of time.
type counts struct{ good, bad uint64 }

func (c counts) total() uint64 { return c.good + c.bad }

// ring counts events in buckets of a fixed width, the oldest overwritten
// by the newest: memory and the cost of an event stay constant whatever
// the traffic. A sum over a window covers the buckets that began in it,
// so its edge is as fine as one bucket.
type ring struct {
	width int64 // nanoseconds
	idx   []int64
	c     []counts
}

func newRing(width time.Duration, n int) *ring {
	r := &ring{width: int64(width), idx: make([]int64, n), c: make([]counts, n)}
	for i := range r.idx {
		r.idx[i] = -1
	}
	return r
}

func (r *ring) slot(now time.Time) (int, int64) {
	i := now.UnixNano() / r.width
	return int(i % int64(len(r.idx))), i
}

func (r *ring) add(now time.Time, good, bad uint64) {
	s, i := r.slot(now)
	if r.idx[s] != i {
		r.idx[s], r.c[s] = i, counts{}
	}
	r.c[s].good += good
	r.c[s].bad += bad
}

// sum adds the buckets of the last window, the current one included.
func (r *ring) sum(now time.Time, window time.Duration) counts {
	n := int64(window) / r.width
	if n < 1 {
		n = 1
	}
	if n > int64(len(r.idx)) {
		n = int64(len(r.idx))
	}
	_, cur := r.slot(now)
	var out counts
	for i := cur - n + 1; i <= cur; i++ {
		if i < 0 {
			continue
		}
		s := int(i % int64(len(r.idx)))
		if r.idx[s] == i {
			out.good += r.c[s].good
			out.bad += r.c[s].bad
		}
	}
	return out
}

// reset forgets every bucket.
func (r *ring) reset() {
	for i := range r.idx {
		r.idx[i], r.c[i] = -1, counts{}
	}
}
