package sre

import (
	"encoding/binary"
	"sync"

	"github.com/agentgov/agentgov/action"
)

// The calls awaiting their outcome are kept in a fixed table, set
// associative as a CPU cache is: a decision id (random in its last 80
// bits) picks a set of a few slots, and a set that is full forgets its
// oldest call, whose outcome then counts for nothing. Memory is fixed,
// nothing is allocated per call, and a lookup scans one cache line of
// fingerprints; a map of the same size, thrashed by the calls whose
// outcome never comes, cost several times a whole decision.
const (
	pendingSets    = 1 << 12
	pendingWays    = 4
	pendingStripes = 64
	// MaxPending is how many calls can await their outcome at once.
	MaxPending = pendingSets * pendingWays
)

// set is one set: the fingerprints and ages it scans, in one cache line,
// and the calls themselves beside them.
type set struct {
	fp    [pendingWays]uint64 // 0: empty
	age   [pendingWays]uint32
	id    [pendingWays]action.ID
	calls [pendingWays]pending
}

type pendingTable struct {
	once  sync.Once
	mu    [pendingStripes]sync.Mutex
	sets  *[pendingSets]set
	clock [pendingStripes]uint32 // per stripe, under its lock
}

// locate is id's set and fingerprint (never 0).
func locate(id action.ID) (int, uint64) {
	// Decision ids are random in their last 80 bits; the mix (MurmurHash3's
	// finaliser) spreads any id over every set all the same.
	h := binary.LittleEndian.Uint64(id[:8]) ^ binary.LittleEndian.Uint64(id[8:])*0x9e3779b97f4a7c15
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return int(h % pendingSets), h | 1
}

func (t *pendingTable) lock(s int) *sync.Mutex {
	t.once.Do(func() { t.sets = new([pendingSets]set) })
	return &t.mu[s%pendingStripes]
}

// put remembers p under id (replacing what id held), and returns the call
// it forgot to make room, if any.
func (t *pendingTable) put(id action.ID, p pending) (forgot pending, ok bool) {
	si, fp := locate(id)
	mu := t.lock(si)
	mu.Lock()
	defer mu.Unlock()
	t.clock[si%pendingStripes]++
	age := t.clock[si%pendingStripes]
	s := &t.sets[si]
	victim := -1
	for i, f := range s.fp {
		if f == fp && s.id[i] == id {
			victim = i
			break
		}
		switch {
		case victim >= 0 && s.fp[victim] == 0:
			// an empty slot is taken already
		case f == 0, victim < 0, age-s.age[i] > age-s.age[victim]:
			victim = i
		}
	}
	if s.fp[victim] != 0 && s.id[victim] != id {
		forgot, ok = s.calls[victim], true
	}
	s.fp[victim], s.age[victim], s.id[victim], s.calls[victim] = fp, age, id, p
	return forgot, ok
}

// take removes and returns what id holds.
func (t *pendingTable) take(id action.ID) (pending, bool) {
	si, fp := locate(id)
	mu := t.lock(si)
	mu.Lock()
	defer mu.Unlock()
	s := &t.sets[si]
	for i, f := range s.fp {
		if f == fp && s.id[i] == id {
			p := s.calls[i]
			s.fp[i], s.calls[i] = 0, pending{}
			return p, true
		}
	}
	return pending{}, false
}
