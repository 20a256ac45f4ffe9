package mcp

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"

	"github.com/agentgov/agentgov/action"
)

// Identify authenticates an HTTP request and says who makes it. The server
// implements it over its agent tokens; an error means 401.
type Identify func(r *http.Request) (action.Agent, action.Principal, error)

const sessionHeader = "Mcp-Session-Id"

// HTTPHandler serves the gateway over streamable HTTP: one MCP session per
// client session, each with its own upstream connection, bound to the
// identity that opened it. The transport is the gateway's own (see
// clientStream) rather than the SDK's server transport, which on a relayed
// call cost more than the gateway's own work.
type HTTPHandler struct {
	g        *Gateway
	identify Identify
	ctx      context.Context
	cancel   context.CancelFunc
	maxBody  int64

	mu       sync.Mutex
	sessions map[string]*httpSession
	wg       sync.WaitGroup
}

type httpSession struct {
	conn *clientStream
	who  Identity
	stop context.CancelFunc
}

// HTTPHandler returns the streamable-HTTP endpoint of this gateway, to be
// mounted at /mcp/{server}. Sessions end with ctx, on DELETE, or on Close.
func (g *Gateway) HTTPHandler(ctx context.Context, identify Identify) *HTTPHandler {
	ctx, cancel := context.WithCancel(ctx)
	return &HTTPHandler{g: g, identify: identify, ctx: ctx, cancel: cancel, maxBody: DefaultMaxMessageBytes, sessions: map[string]*httpSession{}}
}

// Close ends every session and waits for their upstreams to be closed.
func (h *HTTPHandler) Close() error {
	h.cancel()
	h.wg.Wait()
	return nil
}

func (h *HTTPHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	agent, principal, err := h.identify(r)
	if err != nil {
		httpError(w, http.StatusUnauthorized, "unauthenticated", err.Error())
		return
	}
	who := Identity{Agent: agent, Principal: principal}
	sid := r.Header.Get(sessionHeader)
	switch r.Method {
	case http.MethodPost:
		if mediaType(r.Header.Get("Content-Type")) != mediaJSON {
			httpError(w, http.StatusUnsupportedMediaType, "unsupported_media_type", "POST a JSON-RPC message as application/json")
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, h.maxBody)
		if sid == "" {
			h.open(w, r, who)
			return
		}
	case http.MethodGet:
		if sid == "" {
			httpError(w, http.StatusBadRequest, "bad_request", "GET needs the Mcp-Session-Id header of an open session")
			return
		}
	case http.MethodDelete:
		if hs := h.lookup(sid, who); hs != nil {
			hs.stop()
			w.WriteHeader(http.StatusNoContent)
			return
		}
		httpError(w, http.StatusNotFound, "not_found", "no such MCP session")
		return
	default:
		w.Header().Set("Allow", "GET, POST, DELETE")
		httpError(w, http.StatusMethodNotAllowed, "method_not_allowed", "use POST, GET or DELETE")
		return
	}
	hs := h.lookup(sid, who)
	if hs == nil {
		// The same answer for an unknown session and another agent's, so
		// that nothing about other agents leaks.
		httpError(w, http.StatusNotFound, "not_found", "no such MCP session; start a new one with initialize")
		return
	}
	if r.Method == http.MethodGet {
		hs.conn.serveGET(w, r)
		return
	}
	msgs, ok := readPost(w, r)
	if ok {
		hs.conn.servePOST(w, r, msgs, false)
	}
}

func (h *HTTPHandler) lookup(sid string, who Identity) *httpSession {
	h.mu.Lock()
	defer h.mu.Unlock()
	hs := h.sessions[sid]
	if hs == nil || hs.who.Agent.ID != who.Agent.ID {
		return nil
	}
	return hs
}

// open starts a session for a POST that carries initialize.
func (h *HTTPHandler) open(w http.ResponseWriter, r *http.Request, who Identity) {
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	msg, err := decodeMessage(body)
	req, isReq := msg.(*jsonrpc.Request)
	if err != nil || !isReq || req.Method != methodInitialize || !req.IsCall() {
		id := jsonrpc.ID{}
		if isReq {
			id = req.ID
		}
		var fe *FrameError
		if errors.As(err, &fe) {
			id = fe.ID
		}
		writeRPCError(w, http.StatusBadRequest, id, jsonrpc.CodeInvalidRequest, "a request without an Mcp-Session-Id header must be initialize")
		return
	}
	sid := newSessionID()
	conn := newClientStream(sid)
	ctx, stop := context.WithCancel(h.ctx)
	hs := &httpSession{conn: conn, who: who, stop: stop}
	s := newSession(ctx, h.g, conn, who, sid)
	conn.pushTo(func(m jsonrpc.Message) { s.fromClientMessage(m, true) })
	h.mu.Lock()
	h.sessions[sid] = hs
	h.mu.Unlock()
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		if err := s.run(); err != nil {
			h.g.log.Warn("mcp http session ended", "session", sid, "err", err)
		}
		s.close()
		h.mu.Lock()
		delete(h.sessions, sid)
		h.mu.Unlock()
	}()
	// The session ends when its context does: close the connection then,
	// which ends run's Read.
	go func() {
		<-ctx.Done()
		conn.Close()
	}()
	conn.servePOST(w, r, []jsonrpc.Message{req}, true)
}

// readBody reads a POST's body, answering the request itself when it
// cannot.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	var body []byte
	var err error
	if n := r.ContentLength; n > 0 && n <= DefaultMaxMessageBytes {
		// The usual case: read into a buffer of the announced size.
		body = make([]byte, n)
		_, err = io.ReadFull(r.Body, body)
	} else {
		body, err = io.ReadAll(r.Body)
	}
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			httpError(w, http.StatusRequestEntityTooLarge, "too_large", "request body is over the limit")
			return nil, false
		}
		httpError(w, http.StatusBadRequest, "bad_request", "could not read the body")
		return nil, false
	}
	return body, true
}

// readPost reads the message, or the batch of messages, a POST carries. A
// body that is not one is answered with a JSON-RPC error and status 400.
func readPost(w http.ResponseWriter, r *http.Request) ([]jsonrpc.Message, bool) {
	body, ok := readBody(w, r)
	if !ok {
		return nil, false
	}
	trimmed := strings.TrimSpace(string(body[:min(len(body), 64)]))
	if !strings.HasPrefix(trimmed, "[") {
		m, err := decodeMessage(body)
		if err != nil {
			writeFrameError(w, err)
			return nil, false
		}
		return []jsonrpc.Message{m}, true
	}
	// A JSON-RPC batch (protocol 2025-03-26).
	var raws []json.RawMessage
	if err := json.Unmarshal(body, &raws); err != nil {
		writeRPCError(w, http.StatusBadRequest, jsonrpc.ID{}, jsonrpc.CodeParseError, "parse error: "+err.Error())
		return nil, false
	}
	if len(raws) == 0 {
		writeRPCError(w, http.StatusBadRequest, jsonrpc.ID{}, jsonrpc.CodeInvalidRequest, "invalid request: empty batch")
		return nil, false
	}
	msgs := make([]jsonrpc.Message, 0, len(raws))
	for _, raw := range raws {
		m, err := decodeMessage(raw)
		if err != nil {
			writeFrameError(w, err)
			return nil, false
		}
		msgs = append(msgs, m)
	}
	return msgs, true
}

func writeFrameError(w http.ResponseWriter, err error) {
	var fe *FrameError
	if errors.As(err, &fe) {
		writeRPCError(w, http.StatusBadRequest, fe.ID, fe.Code, fe.Error())
		return
	}
	writeRPCError(w, http.StatusBadRequest, jsonrpc.ID{}, jsonrpc.CodeInvalidRequest, err.Error())
}

func httpError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

func writeRPCError(w http.ResponseWriter, status int, id jsonrpc.ID, code int64, msg string) {
	data, _ := encodeMessage(&jsonrpc.Response{ID: id, Error: &jsonrpc.Error{Code: code, Message: msg}})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(data)
}
