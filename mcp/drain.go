package mcp

import (
	"context"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
)

// A session stops in two steps. First it stops taking requests (the
// client went away, or the gateway is stopping); then it finishes the ones
// it took: their answers reach the client, and their results are decided
// and recorded, while the audit log still runs. Only then is it closed,
// with its upstream.

// hold marks work under way that may still answer the client or write to
// the audit log; release ends it.
func (s *session) hold() {
	s.mu.Lock()
	s.busy++
	s.mu.Unlock()
}

func (s *session) release() {
	s.mu.Lock()
	s.busy--
	s.mu.Unlock()
	s.signal()
}

// goHeld runs f on a goroutine of its own, held from before it starts.
func (s *session) goHeld(f func()) {
	s.hold()
	go func() {
		defer s.release()
		f()
	}()
}

// signal wakes a drain to look again.
func (s *session) signal() {
	select {
	case s.settled <- struct{}{}:
	default:
	}
}

// idle says the session has nothing in flight and no work under way.
func (s *session) idle() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.busy == 0 && len(s.inflight) == 0
}

// drain waits until the session is idle or ctx ends, and says which.
func (s *session) drain(ctx context.Context) bool {
	for !s.idle() {
		select {
		case <-s.settled:
		case <-ctx.Done():
			return s.idle()
		}
	}
	return true
}

// stopTaking makes the session refuse the requests it reads from now on.
func (s *session) stopTaking() { s.closing.Store(true); s.endWaits() }

// endWaits ends what waits on the session's behalf.
func (s *session) endWaits() { s.quitOnce.Do(func() { close(s.quit) }) }

func (s *session) isClosing() bool { return s.closing.Load() }

// clientGone ends the requests waiting for an answer of a client that has
// closed its side: the gateway's own (elicitation), and the upstream's
// (sampling, elicitation, roots), which get an error, so that the calls
// waiting on them can end.
func (s *session) clientGone() {
	s.endWaits()
	s.clientPending.closeAll()
	s.mu.Lock()
	relayed := s.relayed
	s.relayed = map[jsonrpc.ID]int{}
	s.mu.Unlock()
	for id, gen := range relayed {
		s.answerUpstream(gen, id, "the client closed its side and cannot answer")
	}
}
