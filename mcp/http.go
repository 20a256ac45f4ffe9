package mcp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/errcode"
	"github.com/agentgov/agentgov/mcp/wire"
)

// Identify authenticates an HTTP request and says who makes it. The server
// implements it over its agent tokens; an error means 401.
type Identify func(r *http.Request) (action.Agent, action.Principal, error)

const sessionHeader = wire.SessionHeader

// HTTPHandler serves the gateway over streamable HTTP: one MCP session per
// client session, each with its own upstream connection, bound to the
// identity that opened it. The transport is the gateway's own (see
// clientStream) rather than the SDK's server transport, which on a relayed
// call cost more than the gateway's own work.
//
// The client here holds an agent's token: it is the agent. So no call is
// ever approved through elicitation on this handler, whatever
// Config.ElicitApprovals says; an agent does not approve its own calls.
// Each session costs an upstream connection (for a command, a process), so
// an agent holds at most Config.MaxSessionsPerAgent of them, and a session
// that serves no request for Config.SessionIdleTimeout is closed.
type HTTPHandler struct {
	g        *Gateway
	identify Identify
	ctx      context.Context
	cancel   context.CancelFunc

	mu       sync.Mutex
	sessions map[string]*httpSession
	// The stateless revision's sessions, one per agent (see
	// serveStateless), by session id, and the lock that makes one open
	// at a time; guarded by mu.
	backings map[string]*backingSession
	opening  map[string]*sync.Mutex
	hopSeq   atomic.Int64
	closing  bool // Shutdown began: no new session
	wg       sync.WaitGroup
}

type httpSession struct {
	conn *clientStream
	s    *session
	who  Identity
	key  string // who.key(), which every request of the session must match
	stop context.CancelFunc
	// Guarded by HTTPHandler.mu.
	active   int       // requests of the session being served
	lastUsed time.Time // when the last one ended
	ending   string    // why the session is ending, once it is
}

// HTTPHandler returns the streamable-HTTP endpoint of this gateway, to be
// mounted at /mcp/{server}. Sessions end with ctx, on DELETE, when idle
// too long, or on Close.
func (g *Gateway) HTTPHandler(ctx context.Context, identify Identify) *HTTPHandler {
	ctx, cancel := context.WithCancel(ctx)
	h := &HTTPHandler{g: g, identify: identify, ctx: ctx, cancel: cancel, sessions: map[string]*httpSession{}, backings: map[string]*backingSession{}, opening: map[string]*sync.Mutex{}}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		h.expireLoop()
	}()
	return h
}

// Shutdown stops taking requests (a new session gets 503, a request of an
// open one a refusal), waits until the requests in flight have been
// answered and their results recorded, or ctx ends, and then closes every
// session, with its upstream. The error is ctx's when requests were still
// in flight.
func (h *HTTPHandler) Shutdown(ctx context.Context) error {
	h.mu.Lock()
	h.closing = true
	open := make([]*session, 0, len(h.sessions))
	for _, hs := range h.sessions {
		hs.s.stopTaking()
		open = append(open, hs.s)
	}
	h.mu.Unlock()
	var wg sync.WaitGroup
	var cut atomic.Int32
	for _, s := range open {
		wg.Go(func() {
			if !s.drain(ctx) {
				cut.Add(1)
			}
		})
	}
	wg.Wait()
	h.Close()
	if n := cut.Load(); n > 0 {
		return fmt.Errorf("mcp %s: %d sessions closed with requests in flight: %w", h.g.cfg.Server, n, ctx.Err())
	}
	return nil
}

// Close ends every session and waits for their upstreams to be closed.
func (h *HTTPHandler) Close() error {
	h.cancel()
	h.wg.Wait()
	return nil
}

func (h *HTTPHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodPost, http.MethodGet, http.MethodDelete:
	default:
		w.Header().Set("Allow", "GET, POST, DELETE")
		httpError(w, errcode.Errorf(errcode.MethodNotAllowed, "%s takes POST, GET or DELETE, not %s", r.URL.Path, r.Method))
		return
	}
	agent, principal, err := h.identify(r)
	if err != nil {
		e := identifyError(err)
		h.g.cfg.Resource.unauthorized(w, r, e)
		httpError(w, e)
		return
	}
	if e := h.g.cfg.Resource.check(w, r); e != nil {
		// A token that authenticates but was not issued for this endpoint
		// (or lacks its scope): recorded, since it is one of the server's
		// own credentials used where it does not belong.
		h.g.record(r.Context(), "mcp.refused", refusalRecord{
			Server: h.g.cfg.Server, Agent: agent, Principal: principal, From: sideClient, Reason: e.Message,
		})
		httpError(w, e)
		return
	}
	who := Identity{Agent: agent, Principal: principal}
	sid := r.Header.Get(sessionHeader)
	switch r.Method {
	case http.MethodPost:
		if wire.MediaType(r.Header.Get("Content-Type")) != wire.MediaJSON {
			httpError(w, errcode.New(errcode.UnsupportedMediaType, "POST a JSON-RPC message as application/json"))
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, h.g.cfg.MaxMessageBytes)
		if statelessRevision(r) {
			h.serveStateless(w, r, who)
			return
		}
		if sid == "" {
			h.open(w, r, who, "")
			return
		}
	case http.MethodGet:
		if statelessRevision(r) {
			w.Header().Set("Allow", "POST")
			httpError(w, errcode.Errorf(errcode.MethodNotAllowed, "protocol %s has no event stream: POST each request", RevisionStateless))
			return
		}
		if sid == "" {
			httpError(w, errcode.New(errcode.BadRequest, "GET needs the Mcp-Session-Id header of an open session"))
			return
		}
	case http.MethodDelete:
		if hs := h.end(sid, who, "the client ended it (DELETE)"); hs != nil {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		httpError(w, errcode.New(errcode.NotFound, "no such MCP session"))
		return
	}
	hs, release := h.acquire(sid, who)
	if hs == nil {
		// The same answer for an unknown session and another agent's, so
		// that nothing about other agents leaks.
		httpError(w, errcode.New(errcode.NotFound, "no such MCP session; start a new one with initialize"))
		return
	}
	if r.Method == http.MethodGet {
		// An open event stream does not keep a session in use: only
		// requests do.
		release()
		hs.conn.serveGET(w, r)
		return
	}
	defer release()
	msgs, ok := h.readPost(w, r)
	if !ok {
		return
	}
	if req, ok := msgs[0].(*jsonrpc.Request); ok && len(msgs) == 1 && (r.Header[headerMethod] != nil || r.Header[headerName] != nil) {
		if err := checkRouting(r, req, false); err != nil {
			h.refuseRouting(r, who, req, err)
			writeRPCError(w, req.ID, jsonrpc.CodeInvalidRequest, errcode.New(errcode.BadRequest, err.Error()))
			return
		}
	}
	for _, m := range msgs {
		if req, ok := m.(*jsonrpc.Request); ok && !req.IsCall() && !clientNotifications[req.Method] {
			// Refused whole, before any of it reaches the session.
			hs.s.refuse(sideClient, req.Method, req.ID, notificationRefusal(req.Method))
			writeRPCError(w, jsonrpc.ID{}, jsonrpc.CodeInvalidRequest, errcode.New(errcode.BadRequest, "invalid request: "+notificationRefusal(req.Method)))
			return
		}
	}
	if tp := r.Header.Get("Traceparent"); tp != "" && h.g.cfg.Tracer != nil {
		hs.s.noteTraceparent(msgs, tp)
	}
	hs.conn.servePOST(w, r, msgs, false)
}

// acquire finds the session sid of who and marks a request of it in
// progress until release is called; nil when there is no such session.
func (h *HTTPHandler) acquire(sid string, who Identity) (*httpSession, func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	hs := h.sessions[sid]
	if hs == nil || hs.key != who.key() || hs.ending != "" {
		return nil, nil
	}
	hs.active++
	return hs, func() {
		h.mu.Lock()
		hs.active--
		hs.lastUsed = h.g.now()
		h.mu.Unlock()
	}
}

// end ends the session sid of who, for reason.
func (h *HTTPHandler) end(sid string, who Identity, reason string) *httpSession {
	h.mu.Lock()
	hs := h.sessions[sid]
	if hs == nil || hs.key != who.key() || hs.ending != "" {
		h.mu.Unlock()
		return nil
	}
	hs.ending = reason
	h.mu.Unlock()
	hs.stop()
	return hs
}

// expireLoop ends idle sessions until the handler closes. How often it
// looks bounds how long past the timeout a session may live; the timeout
// itself is read on the gateway's clock.
func (h *HTTPHandler) expireLoop() {
	every := min(max(h.g.cfg.SessionIdleTimeout/10, time.Second), time.Minute)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			h.expireIdle()
		case <-h.ctx.Done():
			return
		}
	}
}

// expireIdle ends every session with no request in progress and none
// served for the idle timeout, closing its upstream.
func (h *HTTPHandler) expireIdle() {
	now := h.g.now()
	idle := h.g.cfg.SessionIdleTimeout
	var expired []*httpSession
	h.mu.Lock()
	for _, hs := range h.sessions {
		if hs.ending == "" && hs.active == 0 && now.Sub(hs.lastUsed) >= idle {
			hs.ending = fmt.Sprintf("idle for %v, the limit of mcp.session_idle_timeout", idle)
			expired = append(expired, hs)
		}
	}
	h.mu.Unlock()
	for _, hs := range expired {
		hs.stop()
	}
}

// open starts a session for a POST that carries initialize: unless a kill
// switch stops the agent, or it already holds as many sessions as it may.
// Either refusal is audited, and so is the session's start: a session
// whose start cannot be recorded is not opened.
//
// sid is the session's id, or "" for a new random one.
func (h *HTTPHandler) open(w http.ResponseWriter, r *http.Request, who Identity, sid string) {
	body, ok := h.readBody(w, r)
	if !ok {
		return
	}
	msg, err := wire.DecodeMessage(body)
	req, isReq := msg.(*jsonrpc.Request)
	if err != nil || !isReq || req.Method != methodInitialize || !req.IsCall() {
		id := jsonrpc.ID{}
		if isReq {
			id = req.ID
		}
		var fe *wire.FrameError
		if errors.As(err, &fe) {
			id = fe.ID
		}
		writeRPCError(w, id, jsonrpc.CodeInvalidRequest, errcode.New(errcode.BadRequest, "a request without an Mcp-Session-Id header must be initialize"))
		return
	}
	if sid == "" {
		sid = newSessionID()
	}
	refused := func(code errcode.Code, reason string) {
		h.g.record(r.Context(), "mcp.session", sessionRecord{
			Event: "refused", Server: h.g.cfg.Server, Agent: who.Agent, Principal: who.Principal, Transport: "http", Reason: reason,
		})
		writeRPCError(w, req.ID, 0, errcode.New(code, "agentgov refused the session: "+reason))
	}
	if reason, stopped := h.g.stopped(who, sid); stopped {
		h.g.refused("kill_switch")
		refused(errcode.PolicyDenied, reason)
		return
	}
	h.expireIdle() // sessions past their time do not count against the limit

	conn := newClientStream(sid)
	ctx, stop := context.WithCancel(h.ctx)
	s := newSession(ctx, h.g, conn, who, sid, false)
	hs := &httpSession{conn: conn, s: s, who: who, key: who.key(), stop: stop, active: 1}
	h.mu.Lock()
	if h.closing {
		h.mu.Unlock()
		stop()
		writeRPCError(w, req.ID, codeRefused, errcode.New(errcode.Unavailable, "agentgov refused the session: the gateway is shutting down"))
		return
	}
	if h.sessions[sid] != nil {
		// A fixed id (a stateless client's session) still held by the
		// session that is ending under it.
		h.mu.Unlock()
		stop()
		writeRPCError(w, req.ID, 0, errcode.New(errcode.Unavailable, "agentgov refused the session: the previous one is still closing; retry"))
		return
	}
	n := 0
	for _, o := range h.sessions {
		if o.who.Agent.ID == who.Agent.ID && o.ending == "" {
			n++
		}
	}
	if n >= h.g.cfg.MaxSessionsPerAgent {
		h.mu.Unlock()
		stop()
		h.g.refused("session_limit")
		refused(errcode.SessionLimit, fmt.Sprintf("agent %q already holds %d MCP sessions on %s, the most mcp.max_sessions_per_agent allows; end one with DELETE, or wait for an idle one to close (mcp.session_idle_timeout %v)",
			who.Agent.ID, n, h.g.cfg.Server, h.g.cfg.SessionIdleTimeout))
		return
	}
	h.sessions[sid] = hs
	h.mu.Unlock()
	release := func() {
		h.mu.Lock()
		hs.active--
		hs.lastUsed = h.g.now()
		h.mu.Unlock()
	}
	defer release()
	if err := h.g.record(r.Context(), "mcp.session", s.sessionRecord("open", "")); err != nil {
		h.mu.Lock()
		delete(h.sessions, sid)
		h.mu.Unlock()
		stop()
		writeRPCError(w, req.ID, 0, errcode.New(errcode.Unavailable, "agentgov refused the session: it could not be written to the audit log"))
		return
	}
	conn.pushTo(func(m jsonrpc.Message) { s.fromClientMessage(m, true) })
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		if err := s.run(); err != nil {
			h.g.log.Warn("mcp http session ended", "session", sid, "err", err)
		}
		s.close()
		h.mu.Lock()
		reason := hs.ending
		delete(h.sessions, sid)
		delete(h.backings, sid)
		h.mu.Unlock()
		if reason == "" {
			reason = "the gateway stopped"
		}
		h.g.record(h.ctx, "mcp.session", s.sessionRecord("close", reason))
	}()
	// The session ends when its context does: close the connection then,
	// which ends run's Read.
	go func() {
		<-ctx.Done()
		conn.Close()
	}()
	conn.servePOST(w, r, []jsonrpc.Message{req}, true)
}

// readBody reads a POST's body within the size and time bounds, answering
// the request itself when it cannot.
func (h *HTTPHandler) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	// A client that sends its body slowly, or not at all, must not hold a
	// handler for as long as it likes. The deadline covers the body only,
	// and is lifted once it is in: the call itself may take longer.
	rc := http.NewResponseController(w)
	if err := rc.SetReadDeadline(time.Now().Add(h.g.cfg.ReadTimeout)); err == nil {
		defer rc.SetReadDeadline(time.Time{})
	}
	var body []byte
	var err error
	if n := r.ContentLength; n > 0 && n <= h.g.cfg.MaxMessageBytes {
		// The usual case: read into a buffer of the announced size.
		body = make([]byte, n)
		_, err = io.ReadFull(r.Body, body)
	} else {
		body, err = io.ReadAll(r.Body)
	}
	if err != nil {
		var mbe *http.MaxBytesError
		switch {
		case errors.As(err, &mbe):
			httpError(w, errcode.Errorf(errcode.TooLarge, "the request body is over the limit of %d bytes (mcp.max_message_bytes)", h.g.cfg.MaxMessageBytes))
		case errors.Is(err, os.ErrDeadlineExceeded):
			// Closing the connection spares net/http reading the rest of
			// the body, which would wait on the same client.
			w.Header().Set("Connection", "close")
			httpError(w, errcode.Errorf(errcode.Timeout, "the request body was not read within %v (mcp.read_timeout)", h.g.cfg.ReadTimeout))
		default:
			w.Header().Set("Connection", "close")
			httpError(w, errcode.New(errcode.BadRequest, "could not read the body"))
		}
		return nil, false
	}
	return body, true
}

// readPost reads the message, or the batch of messages, a POST carries. A
// body that is not one is answered with a JSON-RPC error and status 400.
func (h *HTTPHandler) readPost(w http.ResponseWriter, r *http.Request) ([]jsonrpc.Message, bool) {
	body, ok := h.readBody(w, r)
	if !ok {
		return nil, false
	}
	trimmed := strings.TrimSpace(string(body[:min(len(body), 64)]))
	if !strings.HasPrefix(trimmed, "[") {
		m, err := wire.DecodeMessage(body)
		if err != nil {
			writeFrameError(w, err)
			return nil, false
		}
		return []jsonrpc.Message{m}, true
	}
	// A JSON-RPC batch (protocol 2025-03-26).
	var raws []json.RawMessage
	if err := json.Unmarshal(body, &raws); err != nil {
		writeRPCError(w, jsonrpc.ID{}, jsonrpc.CodeParseError, errcode.New(errcode.BadRequest, "parse error: "+errcode.DescribeJSON(err)))
		return nil, false
	}
	if len(raws) == 0 {
		writeRPCError(w, jsonrpc.ID{}, jsonrpc.CodeInvalidRequest, errcode.New(errcode.BadRequest, "invalid request: empty batch"))
		return nil, false
	}
	msgs := make([]jsonrpc.Message, 0, len(raws))
	for _, raw := range raws {
		m, err := wire.DecodeMessage(raw)
		if err != nil {
			writeFrameError(w, err)
			return nil, false
		}
		msgs = append(msgs, m)
	}
	return msgs, true
}

func writeFrameError(w http.ResponseWriter, err error) {
	var fe *wire.FrameError
	if errors.As(err, &fe) {
		writeRPCError(w, fe.ID, fe.Code, errcode.New(errcode.BadRequest, fe.Error()))
		return
	}
	writeRPCError(w, jsonrpc.ID{}, jsonrpc.CodeInvalidRequest, errcode.New(errcode.BadRequest, err.Error()))
}

// identifyError is the refusal of a request whose credential Identify
// refused: its code when it carries one (403 for a token that is not an
// agent's), else 401.
func identifyError(err error) *errcode.Error {
	if e, ok := errcode.As(err); ok {
		return e
	}
	return errcode.Wrap(errcode.Unauthorized, err.Error(), err)
}

// httpError answers a request refused before any of its messages is read.
func httpError(w http.ResponseWriter, e *errcode.Error) {
	writeRPCError(w, jsonrpc.ID{}, 0, e)
}

// writeRPCError answers a POST, or a request refused at the HTTP level, as
// the MCP streamable HTTP transport does: the status of e's code, and a
// JSON-RPC error whose data carries the code (agentgov/code). rpc is the
// JSON-RPC code when the protocol fixes one (a parse error), else 0 for
// the code's own.
func writeRPCError(w http.ResponseWriter, id jsonrpc.ID, rpc int64, e *errcode.Error) {
	if rpc == 0 {
		rpc = e.Code.RPC()
	}
	raw, _ := json.Marshal(map[string]any{"agentgov/code": e.Code})
	data, _ := wire.EncodeMessage(&jsonrpc.Response{ID: id, Error: &jsonrpc.Error{Code: rpc, Message: e.Message, Data: raw}})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set(errcode.Header, string(e.Code))
	w.WriteHeader(e.Code.Status())
	w.Write(data)
}
