package sre

import (
	"testing"

	"github.com/agentgov/agentgov/action"
)

// The table holds what each call awaits until its outcome takes it; past
// its size, the oldest of a set is forgotten (and reported, so its probes
// are given back), never a newer one; what it holds stays bounded.
func TestPendingTableForgetsTheOldestAndStaysBounded(t *testing.T) {
	var tab pendingTable
	ids := make([]action.ID, 3*MaxPending)
	forgot := 0
	for i := range ids {
		ids[i] = nextID()
		if _, ok := tab.put(ids[i], pending{slos: uint64(i) + 1}); ok {
			forgot++
		}
	}
	if held := len(ids) - forgot; held > MaxPending {
		t.Fatalf("holds %d calls in %d slots", held, MaxPending)
	}
	// The newest calls are all there, with what they await.
	for i := len(ids) - 1000; i < len(ids); i++ {
		p, ok := tab.take(ids[i])
		if !ok || p.slos != uint64(i)+1 {
			t.Fatalf("call %d: %v %v", i, ok, p.slos)
		}
		if _, ok := tab.take(ids[i]); ok {
			t.Fatal("taken twice")
		}
	}
	// The oldest are gone, but for those whose set few newer calls fell in.
	survived := 0
	for i := range 1000 {
		if _, ok := tab.take(ids[i]); ok {
			survived++
		}
	}
	if survived > 50 {
		t.Fatalf("%d of the 1000 oldest calls survived %d newer ones", survived, len(ids)-1000)
	}
	// Putting again under the same id replaces, and forgets nothing.
	id := nextID()
	tab.put(id, pending{slos: 1})
	if _, ok := tab.put(id, pending{slos: 2}); ok {
		t.Fatal("replacing forgot a call")
	}
	if p, _ := tab.take(id); p.slos != 2 {
		t.Fatalf("slos %d", p.slos)
	}
}
