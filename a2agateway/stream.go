package a2agateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
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

	pending := map[a2a.ArtifactID]*a2a.TaskArtifactUpdateEvent{}
	var order []a2a.ArtifactID
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
			ev := pending[id]
			delete(pending, id)
			if ev == nil {
				continue
			}
			ev.Append, ev.LastChunk = false, true
			if !emit(ev) {
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
				fail(g.upstreamError(it.err), it.err.Error())
				return
			}
			ev, err := a2a.UnmarshalEventJSON(it.raw)
			if err != nil {
				fail(codeError(errcode.Wrap(errcode.UpstreamUnreachable, fmt.Sprintf("upstream %s sent an invalid event: %s", g.cfg.Name, maskText(err.Error())), err)), err.Error())
				return
			}
			x.events++
			switch e := ev.(type) {
			case *a2a.TaskArtifactUpdateEvent:
				if e.Artifact == nil {
					fail(codeError(errcode.New(errcode.UpstreamUnreachable, fmt.Sprintf("upstream %s sent an artifact event without an artifact", g.cfg.Name))), "artifact event without an artifact")
					return
				}
				id := e.Artifact.ID
				if held := pending[id]; held != nil && e.Append {
					held.Artifact.Parts = appendChunk(held.Artifact.Parts, e.Artifact.Parts)
					held.LastChunk = e.LastChunk
				} else {
					if held == nil {
						order = append(order, id)
					}
					pending[id] = e
				}
				// Bounded while held, not only once whole.
				if _, berr := replyInput(pending[id], g.cfg.MaxFileBytes, g.cfg.MaxArtifactBytes); berr != nil {
					g.refused(string(berr.Code))
					x.withheld = true
					berr.Message = fmt.Sprintf("agentgov withheld the reply of %s: %s", g.cfg.Name, berr.Message)
					fail(codeError(berr), berr.Message)
					return
				}
				if e.LastChunk {
					held := pending[id]
					delete(pending, id)
					for i, o := range order {
						if o == id {
							order = append(order[:i], order[i+1:]...)
							break
						}
					}
					held.Append = false
					if !emit(held) {
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

// appendChunk appends a chunk's parts to an artifact's. Text that runs on
// from one chunk into the next is one text, as the caller will read it:
// joined, so that what is decided is that text and not two halves.
func appendChunk(parts, chunk a2a.ContentParts) a2a.ContentParts {
	out := slices.Clone(parts)
	for i, p := range chunk {
		if i == 0 && len(out) > 0 {
			if prev, ok := out[len(out)-1].(a2a.TextPart); ok {
				if next, ok := p.(a2a.TextPart); ok {
					prev.Text += next.Text
					out[len(out)-1] = prev
					continue
				}
			}
		}
		out = append(out, p)
	}
	return out
}

// ends says whether a task in state st has finished its turn: done, or
// waiting for the caller.
func ends(st a2a.TaskState) bool {
	return st.Terminal() || st == a2a.TaskStateInputRequired || st == a2a.TaskStateAuthRequired
}
