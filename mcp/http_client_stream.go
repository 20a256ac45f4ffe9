package mcp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentgov/agentgov/errcode"
	"github.com/agentgov/agentgov/mcp/wire"
)

// clientStream is one client session of the streamable-HTTP endpoint, seen
// by the gateway's session as a connection. The message of a POST that
// carries one is handed to the session on the POST's goroutine (see
// pushTo); the messages of a batch are read through Read, in order. Each
// answer goes back on the POST that carried its request, as a JSON body
// when that POST carried one request and the client accepts JSON, as
// server-sent events otherwise. What the gateway sends the client outside
// of an answer (the upstream's notifications and requests, the gateway's
// elicitations) goes to the client's GET event stream.
type clientStream struct {
	id       string
	incoming chan jsonrpc.Message

	closeOnce sync.Once
	done      chan struct{}

	push func(jsonrpc.Message) // see pushTo

	mu       sync.Mutex
	waiting  map[jsonrpc.ID]*postAnswer // calls in flight -> the POST to answer on
	listener chan jsonrpc.Message       // the open GET stream's queue, if one is open
	backlog  []jsonrpc.Message          // notifications sent while no GET stream was open
}

// Bounds on what waits for a client's GET stream: its queue, and the
// notifications kept while it is not open (older ones are dropped first).
const (
	listenerQueue = 256
	backlogLimit  = 256
)

var _ sdk.Connection = (*clientStream)(nil)

func newClientStream(id string) *clientStream {
	return &clientStream{
		id:       id,
		incoming: make(chan jsonrpc.Message, 16),
		done:     make(chan struct{}),
		waiting:  map[jsonrpc.ID]*postAnswer{},
	}
}

func (c *clientStream) SessionID() string { return c.id }

// Read returns the next message the client posted in a batch, or in any
// POST before pushTo was called.
func (c *clientStream) Read(ctx context.Context) (jsonrpc.Message, error) {
	select {
	case m := <-c.incoming:
		return m, nil
	case <-c.done:
		return nil, io.EOF
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Write sends msg to the client: an answer on the POST waiting for it,
// anything else on the GET stream. A request from the server fails when no
// GET stream is open, so that its sender does not wait for an answer that
// cannot come; a notification is kept until one opens.
func (c *clientStream) Write(ctx context.Context, msg jsonrpc.Message) error {
	c.mu.Lock()
	select {
	case <-c.done:
		c.mu.Unlock()
		return sdk.ErrConnectionClosed
	default:
	}
	if m, ok := msg.(*jsonrpc.Response); ok {
		pa := c.waiting[m.ID]
		delete(c.waiting, m.ID)
		c.mu.Unlock()
		if pa == nil {
			return fmt.Errorf("no request %v of the client is waiting for this answer", m.ID.Raw())
		}
		return pa.answer(m)
	}
	defer c.mu.Unlock()
	switch m := msg.(type) {
	case *jsonrpc.Request:
		if c.listener != nil {
			select {
			case c.listener <- m:
				return nil
			default:
				return errors.New("the client's event stream is not keeping up")
			}
		}
		if m.IsCall() {
			return fmt.Errorf("%q cannot reach the client: it has no event stream (GET) open", m.Method)
		}
		if len(c.backlog) >= backlogLimit {
			c.backlog = c.backlog[1:]
		}
		c.backlog = append(c.backlog, m)
		return nil
	}
	return fmt.Errorf("unknown message type %T", msg)
}

// Close ends the session's HTTP side: Read returns io.EOF and every
// waiting response ends.
func (c *clientStream) Close() error {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		close(c.done)
		c.mu.Unlock()
	})
	return nil
}

// servePOST hands the messages of one POST to the session and answers the
// POST: 202 when they were notifications or responses, the answers to its
// requests otherwise. opening says this POST started the session, so the
// answer carries the session id.
func (c *clientStream) servePOST(w http.ResponseWriter, r *http.Request, msgs []jsonrpc.Message, opening bool) {
	var ids []jsonrpc.ID
	for _, m := range msgs {
		if req, ok := m.(*jsonrpc.Request); ok && req.IsCall() {
			ids = append(ids, req.ID)
		}
	}
	if len(ids) == 0 {
		if !c.publish(msgs) {
			httpError(w, errcode.New(errcode.NotFound, "the MCP session has ended"))
			return
		}
		w.WriteHeader(http.StatusAccepted)
		return
	}
	// Headers before the messages go out: from then on the answer may be
	// written by another goroutine (see postAnswer).
	if opening {
		w.Header()[sessionHeader] = []string{c.id}
	}
	pa := &postAnswer{answers: make(chan jsonrpc.Message, len(ids)), written: make(chan struct{})}
	if len(ids) == 1 && accepts(r, wire.MediaJSON) {
		pa.w = w
	}
	c.mu.Lock()
	for i, id := range ids {
		_, busy := c.waiting[id]
		for _, earlier := range ids[:i] {
			busy = busy || earlier == id
		}
		if busy {
			c.mu.Unlock()
			writeRPCError(w, id, jsonrpc.CodeInvalidRequest, errcode.Errorf(errcode.BadRequest, "request id %v is already in flight", id.Raw()))
			return
		}
	}
	for _, id := range ids {
		c.waiting[id] = pa
	}
	c.mu.Unlock()
	defer func() {
		// Answers that come after the client gave up have nowhere to go.
		c.mu.Lock()
		for _, id := range ids {
			if c.waiting[id] == pa {
				delete(c.waiting, id)
			}
		}
		c.mu.Unlock()
	}()
	if !c.publish(msgs) {
		// Part of a batch may have gone out, and its answer with it.
		pa.abandon(func() { httpError(w, errcode.New(errcode.NotFound, "the MCP session has ended")) })
		return
	}
	if pa.w != nil {
		// The answer is written by whoever sends it (see postAnswer);
		// this only waits for it, or gives up.
		select {
		case <-pa.written:
		case <-r.Context().Done():
			pa.abandon(nil)
		case <-c.done:
			pa.abandon(func() { httpError(w, errcode.New(errcode.NotFound, "the MCP session has ended")) })
		}
		return
	}
	c.stream(startEvents(w), r, pa.answers, len(ids))
}

// stream sends up to n messages from ch (n < 0: no limit) as events, until
// the client goes away or the session ends.
func (c *clientStream) stream(ev *eventWriter, r *http.Request, ch <-chan jsonrpc.Message, n int) {
	for ; n != 0; n-- {
		select {
		case m := <-ch:
			if ev.send(m) != nil {
				return
			}
		case <-r.Context().Done():
			return
		case <-c.done:
			return
		}
	}
}

// postAnswer is how a POST's requests get their answers. A POST with one
// request, from a client that takes JSON, is answered by the goroutine that
// sends the answer, which writes it to the POST's response writer and
// flushes it while the POST's handler waits: handing the answer to the
// handler instead cost a scheduler hand-off on every call. Any other POST
// streams its answers as events from its handler, through answers.
type postAnswer struct {
	answers chan jsonrpc.Message // room for every answer of the POST

	mu      sync.Mutex
	w       http.ResponseWriter // set for a JSON answer
	over    bool                // the answer was written, or the POST gave up
	written chan struct{}       // closed when over
}

func (pa *postAnswer) answer(m *jsonrpc.Response) error {
	if pa.w == nil {
		pa.answers <- m
		return nil
	}
	data, err := wire.EncodeMessage(m)
	if err != nil {
		return err
	}
	pa.mu.Lock()
	defer pa.mu.Unlock()
	if pa.over {
		return fmt.Errorf("the client stopped waiting for the answer to %v", m.ID.Raw())
	}
	pa.over = true
	defer close(pa.written)
	h := pa.w.Header()
	h["Content-Type"] = wire.ContentTypeJSON
	h["Content-Length"] = []string{strconv.Itoa(len(data))}
	if _, err := pa.w.Write(data); err != nil {
		return err
	}
	return http.NewResponseController(pa.w).Flush()
}

// abandon ends a JSON answer that will not come, with last's response if
// nothing was written yet.
func (pa *postAnswer) abandon(last func()) {
	pa.mu.Lock()
	defer pa.mu.Unlock()
	if pa.over {
		return
	}
	pa.over = true
	close(pa.written)
	if last != nil {
		last()
	}
}

// pushTo makes the message of a POST that carries one go to push, on the
// POST's goroutine, instead of to Read: the session then handles the
// request there, start to finish, and writes the answer itself (see
// postAnswer), where passing it through the session's read loop cost a
// hand-off between goroutines each way. A batch still goes through Read, so
// that its requests are handled side by side. It must be called before the
// first POST is served.
func (c *clientStream) pushTo(push func(jsonrpc.Message)) { c.push = push }

// publish hands messages to the session; false means the session ended
// first.
func (c *clientStream) publish(msgs []jsonrpc.Message) bool {
	if len(msgs) == 1 && c.push != nil {
		select {
		case <-c.done:
			return false
		default:
		}
		c.push(msgs[0])
		return true
	}
	for _, m := range msgs {
		select {
		case c.incoming <- m:
		case <-c.done:
			return false
		}
	}
	return true
}

// serveGET is the client's event stream for what the gateway sends outside
// of answers. A session has at most one.
func (c *clientStream) serveGET(w http.ResponseWriter, r *http.Request) {
	if !accepts(r, wire.MediaEventStream) {
		httpError(w, errcode.New(errcode.BadRequest, "GET opens an event stream: accept text/event-stream"))
		return
	}
	queue := make(chan jsonrpc.Message, listenerQueue)
	c.mu.Lock()
	if c.listener != nil {
		c.mu.Unlock()
		httpError(w, errcode.New(errcode.Conflict, "the session already has an open event stream"))
		return
	}
	c.listener = queue
	backlog := c.backlog
	c.backlog = nil
	c.mu.Unlock()
	defer func() {
		// What the stream could not send waits for the next one.
		c.mu.Lock()
		c.listener = nil
		for len(queue) > 0 {
			if m := <-queue; !m.(*jsonrpc.Request).IsCall() {
				c.backlog = append(c.backlog, m)
			}
		}
		c.mu.Unlock()
	}()
	ev := startEvents(w)
	for _, m := range backlog {
		if ev.send(m) != nil {
			return
		}
	}
	c.stream(ev, r, queue, -1)
}

// eventWriter writes messages as server-sent events, each flushed at once.
type eventWriter struct {
	w   http.ResponseWriter
	rc  *http.ResponseController
	buf []byte
}

func startEvents(w http.ResponseWriter) *eventWriter {
	h := w.Header()
	h["Content-Type"] = []string{wire.MediaEventStream}
	h["Cache-Control"] = []string{"no-cache, no-transform"}
	w.WriteHeader(http.StatusOK)
	ev := &eventWriter{w: w, rc: http.NewResponseController(w)}
	// A comment, so that the headers are on their way before the first
	// event, through proxies that hold headers until there is data.
	io.WriteString(w, ": ok\n\n")
	ev.rc.Flush()
	return ev
}

func (e *eventWriter) send(m jsonrpc.Message) error {
	buf := append(e.buf[:0], "event: message\ndata: "...)
	buf, err := wire.AppendMessage(buf, m)
	if err != nil {
		return err
	}
	buf = append(buf, "\n\n"...)
	if cap(buf) <= wire.MaxKeptWriteBuffer {
		e.buf = buf
	}
	if _, err := e.w.Write(buf); err != nil {
		return err
	}
	return e.rc.Flush()
}

// accepts says whether the request's Accept header admits media. No
// Accept header admits anything.
func accepts(r *http.Request, media string) bool {
	values := r.Header.Values("Accept")
	if len(values) == 0 {
		return true
	}
	major, _, _ := strings.Cut(media, "/")
	for _, v := range values {
		for _, part := range strings.Split(v, ",") {
			switch wire.MediaType(part) {
			case media, "*/*", major + "/*":
				return true
			}
		}
	}
	return false
}
