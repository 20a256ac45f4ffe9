package govern_test

import (
	"context"
	"encoding/binary"
	"testing"
	"time"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/govern"
)

// randomPart is the 80 bits of a decision id after its millisecond time.
func randomPart(id action.ID) (hi uint16, lo uint64) {
	return binary.BigEndian.Uint16(id[6:8]), binary.BigEndian.Uint64(id[8:])
}

// An agent that holds one of its decision ids must not be able to work out
// the ids of the decisions made next to it (another agent's, or ones the
// server settles itself). Ids used to be the time, a per-process constant
// and a counter: the next id was the last one plus one.
func TestDecisionIDsCannotBeWorkedOutFromEarlierOnes(t *testing.T) {
	ctx := context.Background()
	eng := govern.New(mustSet(t, rulesPolicy(1, false)))
	a := action.Action{Agent: action.Agent{ID: "a1"}, Tool: action.Tool{Name: "tool_0"}}
	const n = 1000
	ids := make([]action.ID, n)
	for i := range ids {
		d, _ := eng.Decide(ctx, a)
		ids[i] = d.ID
	}
	his := map[uint16]bool{}
	for i := 1; i < n; i++ {
		hi0, lo0 := randomPart(ids[i-1])
		hi1, lo1 := randomPart(ids[i])
		his[hi0] = true
		if hi1 == hi0 && lo1-lo0 < 1<<32 {
			t.Fatalf("id %s follows %s by a small step: the next id can be guessed", ids[i], ids[i-1])
		}
	}
	// 1000 draws of 16 random bits give far more than 100 values; a
	// per-process constant gives one.
	if len(his) < 100 {
		t.Fatalf("the top 16 random bits took %d values over %d ids", len(his), n)
	}
}

// The variant: with the clock frozen (every decision in one millisecond, as
// under load or on the library path, which uses the engine's start time),
// the time part tells nothing apart, so the random part alone must: no two
// ids share it, and none is another plus a small number.
func TestDecisionIDsInOneMillisecondShareNothingGuessable(t *testing.T) {
	ctx := context.Background()
	frozen := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	eng := govern.New(mustSet(t, rulesPolicy(1, false)), govern.WithClock(func() time.Time { return frozen }))
	a := action.Action{Agent: action.Agent{ID: "a1"}, Tool: action.Tool{Name: "tool_0"}}
	seen := map[action.ID]bool{}
	var los []uint64
	for range 200 {
		d, _ := eng.Decide(ctx, a)
		if d.ID.Time() != frozen.UnixMilli() {
			t.Fatalf("id %s does not carry the decision's millisecond", d.ID)
		}
		if seen[d.ID] {
			t.Fatalf("id %s given twice", d.ID)
		}
		seen[d.ID] = true
		_, lo := randomPart(d.ID)
		los = append(los, lo)
	}
	for i, x := range los {
		for _, y := range los[i+1:] {
			if d := x - y; d < 1<<32 || -d < 1<<32 {
				t.Fatalf("two ids of one millisecond differ by %d in their low bits", min(d, -d))
			}
		}
	}
}
