package mcp

import (
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// An upstream that sends notifications/tools/list_changed again and again
// gets one listing running and one waiting behind it, not one per
// notification: each would otherwise hold a goroutine and list the whole
// catalogue again.
func TestListChangedFloodListsOnceMore(t *testing.T) {
	c := newToolCatalog(0)
	release := make(chan struct{})
	started := make(chan struct{})
	var lists atomic.Int32
	list := func() (map[string]*toolState, error) {
		if lists.Add(1) == 1 {
			close(started)
			<-release
		}
		return map[string]*toolState{}, nil
	}
	first, second := make(chan struct{}), make(chan struct{})
	go func() { c.load(time.Now, list); close(first) }()
	<-started
	c.markStale()
	go func() { c.load(time.Now, list); close(second) }()
	for !c.queued.Load() {
		runtime.Gosched()
	}
	// Every further notification while those two stand returns at once.
	flood := make(chan struct{})
	go func() {
		for range 200 {
			c.markStale()
			c.load(time.Now, list)
		}
		close(flood)
	}()
	select {
	case <-flood:
	case <-time.After(10 * time.Second):
		t.Fatal("loads wait behind the running listing, one goroutine each")
	}
	close(release)
	<-first
	<-second
	if n := lists.Load(); n != 2 {
		t.Fatalf("%d listings, want 2 (the running one and one after it)", n)
	}
	if !c.current() {
		t.Fatal("the catalog is not current after the last listing")
	}
}
