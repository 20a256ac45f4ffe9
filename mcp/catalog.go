package mcp

import (
	"sync"
	"sync/atomic"
	"time"
)

// toolCatalog is a session's view of its upstream's tools, as the gateway
// listed and assessed them itself: calls wait for a current one, a
// notifications/tools/list_changed makes it stale, and one listing runs at
// a time.
type toolCatalog struct {
	loadMu sync.Mutex  // one listing at a time
	queued atomic.Bool // a load waits for loadMu

	mu      sync.Mutex
	tools   map[string]*toolState
	err     error         // why the last listing failed
	ready   chan struct{} // closed when a current catalog is in
	done    bool          // ready is closed
	started bool          // a listing was started
	listed  time.Time     // when the listing in force was started
	pins    uint64        // the version of the pins the listing was assessed under
}

// newToolCatalog is the catalog of a session opened under the given version
// of the pins: its first listing is assessed under them, or newer ones.
func newToolCatalog(pins uint64) *toolCatalog {
	return &toolCatalog{ready: make(chan struct{}), pins: pins}
}

// current says whether a call would find a current catalog without
// waiting.
func (c *toolCatalog) current() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.done
}

// markStale makes calls wait for the next listing.
func (c *toolCatalog) markStale() {
	c.mu.Lock()
	if c.done {
		c.ready = make(chan struct{})
		c.done = false
	}
	c.mu.Unlock()
}

// expire makes a current catalog listed more than maxAge before now
// stale, and says whether it did: the caller then starts a listing.
func (c *toolCatalog) expire(now time.Time, maxAge time.Duration) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.done || c.listed.IsZero() || now.Sub(c.listed) < maxAge {
		return false
	}
	c.ready = make(chan struct{})
	c.done = false
	return true
}

// claimListing says whether the caller should start a listing: it is the
// first to want one, or the pins were changed (to version pins) since the
// catalog was assessed, which makes it stale.
func (c *toolCatalog) claimListing(pins uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.started {
		c.started, c.pins = true, max(c.pins, pins)
		return true
	}
	if c.pins >= pins {
		return false
	}
	c.pins = pins
	if c.done {
		c.ready = make(chan struct{})
		c.done = false
	}
	return true
}

// load runs one listing and keeps what it found. A listing that was made
// stale while it ran does not make the catalog current.
//
// One load waiting behind the running one is enough: it lists after every
// staleness mark made before it started, so further loads while it waits
// return at once. An upstream sending list_changed again and again gets
// two listings, not one held goroutine and one listing per notification.
func (c *toolCatalog) load(now func() time.Time, list func() (map[string]*toolState, error)) {
	if !c.queued.CompareAndSwap(false, true) {
		return
	}
	c.loadMu.Lock()
	c.queued.Store(false)
	defer c.loadMu.Unlock()
	c.mu.Lock()
	c.started = true
	ch := c.ready
	c.mu.Unlock()

	at := now()
	tools, err := list()

	c.mu.Lock()
	c.tools, c.err, c.listed = tools, err, at
	if c.ready == ch && !c.done {
		close(ch)
		c.done = true
	}
	c.mu.Unlock()
}

// state is what a waiting call looks at: whether the catalog is current,
// the channel to wait on when it is not, and the last listing's tools or
// error.
func (c *toolCatalog) state() (ready <-chan struct{}, done bool, tools map[string]*toolState, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ready, c.done, c.tools, c.err
}

// update replaces the state of the tools a listing page assessed.
func (c *toolCatalog) update(states map[string]*toolState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tools == nil {
		return
	}
	for name, st := range states {
		c.tools[name] = st
	}
}
