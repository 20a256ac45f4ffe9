package a2agateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/a2aproject/a2a-go/a2a"

	"github.com/agentgov/agentgov/errcode"
)

// sse writes the events of one message/stream answer.
type sse struct {
	w  http.ResponseWriter
	rc *http.ResponseController
	id any
}

func (s *sse) write(result any, e *rpcError) error {
	resp := map[string]any{"jsonrpc": "2.0", "id": s.id}
	if e != nil {
		resp["error"] = withErrorText(e)
	} else {
		resp["result"] = result
	}
	b, err := json.Marshal(resp)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(s.w, "data: %s\n\n", b); err != nil {
		return err
	}
	return s.rc.Flush()
}

type streamItem struct {
	raw json.RawMessage
	err error
}

// stream governs message/stream. The message is decided before it is
// sent; then every event of the upstream's stream is decided before it is
// passed on. An artifact sent in chunks is held until its last chunk and
// decided whole, so that nothing split across chunks slips past a
// detector. The stream ends after the event that ends the task's turn (a
// message, a final status, a task waiting for input); it ends with an
// error event when a reply is denied,
// when a kill switch stops the caller (looked for at every event, and
// every KillPoll while the upstream is silent), or when the upstream's
// stream breaks or ends before the task finished.
//
// It returns the error the stream ended with, for the message's span; nil
// when it ended as the task's turn did, or the caller went away.
func (g *Gateway) stream(ctx context.Context, w http.ResponseWriter, c *call, raw json.RawMessage) (ended *rpcError) {
	s := &sse{w: w, rc: http.NewResponseController(w), id: c.id}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	// Refusals go out as one event of a stream, which is what a streaming
	// client reads.
	p, ticket, e := decodeSend(raw)
	if e != nil {
		g.refuseMethod(ctx, c, "bad_request")
		s.write(nil, e)
		return e
	}
	d, e := g.decideMessage(ctx, c, p, ticket)
	if e != nil {
		s.write(nil, e)
		return e
	}
	x := &exchange{c: c, pre: d, start: g.now(), task: string(p.Message.TaskID)}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	items := make(chan streamItem)
	go func() {
		defer close(items)
		for res, err := range g.up.stream(sctx, "message/stream", p) {
			select {
			case items <- streamItem{res, err}:
			case <-sctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	tick := time.NewTicker(g.cfg.KillPoll)
	defer tick.Stop()

	pending := map[a2a.ArtifactID]*heldArtifact{}
	var order []a2a.ArtifactID
	var heldBytes int64 // of every artifact held
	finished := false
	// fail ends the stream with e, settled as an error.
	fail := func(e *rpcError, why string) {
		ended = e
		cancel()
		// Recorded before the caller hears of it.
		g.settle(ctx, x, "error", why)
		s.write(nil, e)
	}
	// emit decides ev and passes it on; false when the stream ended.
	emit := func(ev a2a.Event) bool {
		if reason, stop := g.stopped(c); stop {
			g.refused("kill_switch")
			x.withheld = true
			fail(codeError(errcode.New(errcode.PolicyDenied, fmt.Sprintf("agentgov stopped the stream from %s: %s", g.cfg.Name, reason))), "stopped by a kill switch: "+reason)
			return false
		}
		post, e := g.release(ctx, c, ev)
		if post != "" {
			x.posts = append(x.posts, post)
		}
		if e != nil {
			x.withheld = true
			fail(e, "reply withheld: "+e.Message)
			return false
		}
		if err := s.write(ev, nil); err != nil {
			cancel()
			g.settle(ctx, x, "error", "the caller went away: "+err.Error())
			return false
		}
		return true
	}
	// flushArtifacts passes on the artifacts held, each whole.
	flushArtifacts := func() bool {
		for _, id := range order {
			h := pending[id]
			delete(pending, id)
			if h == nil {
				continue
			}
			heldBytes -= h.size
			if !emit(h.whole()) {
				return false
			}
		}
		order = order[:0]
		return true
	}
	for {
		select {
		case <-ctx.Done():
			g.settle(ctx, x, "error", "the caller went away")
			return
		case <-tick.C:
			if reason, stop := g.stopped(c); stop {
				g.refused("kill_switch")
				x.withheld = len(pending) > 0
				fail(codeError(errcode.New(errcode.PolicyDenied, fmt.Sprintf("agentgov stopped the stream from %s: %s", g.cfg.Name, reason))), "stopped by a kill switch: "+reason)
				return
			}
		case it, ok := <-items:
			if !ok {
				if !finished {
					x.withheld = len(pending) > 0
					fail(codeError(errcode.New(errcode.UpstreamUnreachable, fmt.Sprintf("upstream %s: its stream ended before the task finished; what it had sent of unfinished artifacts is withheld", g.cfg.Name))), "the stream ended before the task finished")
					return
				}
				if flushArtifacts() {
					g.settle(ctx, x, "ok", "")
				}
				return
			}
			if it.err != nil {
				x.withheld = len(pending) > 0
				fail(g.upstreamFailure(ctx, c, x, it.err), it.err.Error())
				return
			}
			ev, err := a2a.UnmarshalEventJSON(it.raw)
			if err != nil {
				fail(codeError(errcode.Wrap(errcode.UpstreamUnreachable, fmt.Sprintf("upstream %s sent an invalid event: %s", g.cfg.Name, maskText(err.Error())), err)), err.Error())
				return
			}
			x.events++
			if x.events > g.cfg.MaxStreamEvents {
				e := errcode.Errorf(errcode.TooLarge, "agentgov ended the stream of %s: it sent more than %d events (a2a.max_stream_events)", g.cfg.Name, g.cfg.MaxStreamEvents)
				g.refused(string(e.Code))
				x.withheld = len(pending) > 0
				fail(codeError(e), e.Message)
				return
			}
			switch e := ev.(type) {
			case *a2a.TaskArtifactUpdateEvent:
				if e.Artifact == nil {
					fail(codeError(errcode.New(errcode.UpstreamUnreachable, fmt.Sprintf("upstream %s sent an artifact event without an artifact", g.cfg.Name))), "artifact event without an artifact")
					return
				}
				id := e.Artifact.ID
				// Bounded while held, not only once whole: each chunk is
				// measured once, and what is held is bounded one artifact
				// at a time and all together.
				n, berr := (&input{}).add(e.Artifact.Parts, "artifact", g.cfg.MaxFileBytes)
				held := pending[id]
				if berr == nil {
					if held != nil && e.Append {
						held.append(e.Artifact.Parts)
					} else {
						if held == nil {
							order = append(order, id)
						} else {
							heldBytes -= held.size
						}
						held = newHeldArtifact(e)
						pending[id] = held
					}
					held.size += n
					heldBytes += n
					switch {
					case held.size > g.cfg.MaxArtifactBytes:
						berr = tooLargeArtifact("artifact", id, held.size, g.cfg.MaxArtifactBytes)
					case heldBytes > g.cfg.MaxReplyBytes:
						berr = errcode.Errorf(errcode.TooLarge, "the unfinished artifacts it holds open are %d bytes together, over the limit of %d (a2a.max_reply_bytes)", heldBytes, g.cfg.MaxReplyBytes)
					}
				}
				if berr != nil {
					g.refused(string(berr.Code))
					x.withheld = true
					berr.Message = fmt.Sprintf("agentgov withheld the reply of %s: %s", g.cfg.Name, berr.Message)
					fail(codeError(berr), berr.Message)
					return
				}
				if e.LastChunk {
					delete(pending, id)
					heldBytes -= held.size
					for i, o := range order {
						if o == id {
							order = append(order[:i], order[i+1:]...)
							break
						}
					}
					if !emit(held.whole()) {
						return
					}
				}
			case *a2a.TaskStatusUpdateEvent:
				if e.Final || ends(e.Status.State) {
					if !flushArtifacts() {
						return
					}
					finished = true
				}
				if x.task == "" {
					x.task = string(e.TaskID)
				}
				if !emit(e) {
					return
				}
			case *a2a.Task:
				if x.task == "" {
					x.task = string(e.ID)
				}
				if ends(e.Status.State) {
					if !flushArtifacts() {
						return
					}
					finished = true
				}
				if !emit(e) {
					return
				}
			case *a2a.Message:
				if !flushArtifacts() {
					return
				}
				finished = true
				if !emit(e) {
					return
				}
			}
			if finished {
				// The task's turn is over: the stream ends here, whatever
				// an upstream that keeps it open would send next.
				cancel()
				g.settle(ctx, x, "ok", "")
				return
			}
		}
	}
}

// heldArtifact is an artifact whose chunks are being held until it is
// whole. Text that runs on from one chunk into the next is one text, as
// the caller will read it: joined, so that what is decided is that text
// and not two halves. The text still open is kept in a builder, so that
// an artifact sent in many small chunks costs time in proportion to its
// size, not to its size times its chunks.
type heldArtifact struct {
	ev    *a2a.TaskArtifactUpdateEvent // the first chunk's event
	parts a2a.ContentParts             // the parts closed so far
	head  a2a.TextPart                 // the text part still open, its text in tail
	tail  strings.Builder
	open  bool
	size  int64 // bytes of its chunks, as input.add counts them
}

func newHeldArtifact(e *a2a.TaskArtifactUpdateEvent) *heldArtifact {
	h := &heldArtifact{ev: e}
	h.append(e.Artifact.Parts)
	return h
}

func (h *heldArtifact) append(chunk a2a.ContentParts) {
	for i, p := range chunk {
		t, isText := p.(a2a.TextPart)
		if i == 0 && isText && h.open {
			h.tail.WriteString(t.Text)
			continue
		}
		h.close()
		if isText && i == len(chunk)-1 {
			h.head, h.open = t, true
			h.tail.WriteString(t.Text)
			continue
		}
		h.parts = append(h.parts, p)
	}
}

func (h *heldArtifact) close() {
	if !h.open {
		return
	}
	h.head.Text = h.tail.String()
	h.parts = append(h.parts, h.head)
	h.tail.Reset()
	h.open = false
}

// whole is the artifact's event with every chunk in it, to be passed on
// as the artifact entire.
func (h *heldArtifact) whole() *a2a.TaskArtifactUpdateEvent {
	h.close()
	ev := h.ev
	ev.Artifact.Parts = h.parts
	ev.Append, ev.LastChunk = false, true
	return ev
}

// ends says whether a task in state st has finished its turn: done, or
// waiting for the caller.
func ends(st a2a.TaskState) bool {
	return st.Terminal() || st == a2a.TaskStateInputRequired || st == a2a.TaskStateAuthRequired
}
