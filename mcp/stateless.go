package mcp

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/errcode"
	"github.com/agentgov/agentgov/mcp/wire"
)

// The protocol revisions the HTTP endpoint serves, side by side, chosen by
// each client: the stateless revision by its MCP-Protocol-Version header on
// every request, the session revision (and the ones before it) by
// initialize.
const (
	RevisionStateless = "2026-07-28"
	RevisionSession   = "2025-11-25"
)

// Headers and _meta keys of the stateless revision.
const (
	headerProtocol = "Mcp-Protocol-Version"
	headerMethod   = "Mcp-Method"
	headerName     = "Mcp-Name"
	metaProtocol   = "io.modelcontextprotocol/protocolVersion"
	metaClientInfo = "io.modelcontextprotocol/clientInfo"
	metaClientCaps = "io.modelcontextprotocol/clientCapabilities"
	methodDiscover = "server/discover"
	// methodSubscriptionsListen is the stateless revision's stream of
	// notifications, which the gateway does not serve (see docs/mcp.md).
	methodSubscriptionsListen = "subscriptions/listen"
	// metaPending marks a refusal under a ticket that still waits for an
	// approver.
	metaPending = "agentgov/pending"
)

// statelessRevision says the request speaks the stateless revision.
func statelessRevision(r *http.Request) bool {
	return r.Header.Get(headerProtocol) == RevisionStateless
}

// routedName is what the Mcp-Name header must carry for a method: the
// tool's or prompt's name, the resource's URI; ok false for a method that
// names nothing.
func routedName(req *jsonrpc.Request) (name string, ok bool, err error) {
	var p struct {
		Name *string `json:"name"`
		URI  *string `json:"uri"`
	}
	switch req.Method {
	case methodToolsCall, methodPromptsGet:
		if err := json.Unmarshal(req.Params, &p); err != nil || p.Name == nil {
			return "", true, fmt.Errorf("%s params must name the %s", req.Method, map[string]string{methodToolsCall: "tool", methodPromptsGet: "prompt"}[req.Method])
		}
		return *p.Name, true, nil
	case methodResourcesRead, methodResourcesSubscribe:
		if err := json.Unmarshal(req.Params, &p); err != nil || p.URI == nil {
			return "", true, fmt.Errorf("%s params must carry the uri", req.Method)
		}
		return *p.URI, true, nil
	}
	return "", false, nil
}

// checkRouting refuses a request whose Mcp-Method or Mcp-Name header says
// something else than its body. An intermediary (a load balancer, a
// firewall, this gateway's own metrics) routes and decides on the headers
// without reading the body; a client that sends a harmless name in the
// header and another tool in the body would slip past it. The stateless
// revision requires the headers; a client of the session revision that
// sends them is held to them too.
func checkRouting(r *http.Request, req *jsonrpc.Request, required bool) error {
	method, hasMethod := r.Header[headerMethod]
	if !hasMethod && required {
		return fmt.Errorf("the %s header is missing; protocol %s requires it on every request", headerMethod, RevisionStateless)
	}
	if hasMethod && (len(method) != 1 || method[0] != req.Method) {
		return fmt.Errorf("the %s header %q does not match the body's method %q", headerMethod, method, req.Method)
	}
	name, hasName := r.Header[headerName]
	want, named, err := routedName(req)
	switch {
	case err != nil:
		return err
	case !named && hasName:
		return fmt.Errorf("the %s header is set, but %s names nothing", headerName, req.Method)
	case named && !hasName && required:
		return fmt.Errorf("the %s header is missing; protocol %s requires it on %s", headerName, RevisionStateless, req.Method)
	case named && hasName && (len(name) != 1 || name[0] != want):
		return fmt.Errorf("the %s header %q does not match the body's %q", headerName, name, want)
	}
	return nil
}

// statelessMeta is the per-request _meta the stateless revision carries in
// place of initialize.
type statelessMeta struct {
	Protocol     string          `json:"io.modelcontextprotocol/protocolVersion"`
	ClientInfo   json.RawMessage `json:"io.modelcontextprotocol/clientInfo"`
	Capabilities json.RawMessage `json:"io.modelcontextprotocol/clientCapabilities"`
}

func readStatelessMeta(params json.RawMessage) (statelessMeta, error) {
	var p struct {
		Meta *statelessMeta `json:"_meta"`
	}
	if len(params) == 0 || json.Unmarshal(params, &p) != nil || p.Meta == nil {
		return statelessMeta{}, fmt.Errorf("params._meta is missing; protocol %s carries %s, %s and %s on every request", RevisionStateless, metaProtocol, metaClientInfo, metaClientCaps)
	}
	m := *p.Meta
	switch {
	case m.Protocol == "":
		return m, fmt.Errorf("params._meta lacks %s", metaProtocol)
	case len(m.ClientInfo) == 0 || m.ClientInfo[0] != '{':
		return m, fmt.Errorf("params._meta lacks %s", metaClientInfo)
	case len(m.Capabilities) == 0 || m.Capabilities[0] != '{':
		return m, fmt.Errorf("params._meta lacks %s", metaClientCaps)
	}
	return m, nil
}

// serveStateless serves one request of the stateless revision. The
// upstream speaks the session revision, so the gateway keeps one session
// with it per agent, opened on the agent's first request with the
// client's own info, and relays each request through it, governed as any
// other: the session's id, which decisions and approval tickets are bound
// to, is the same for every request of the agent, and across the
// session's idle closing. The client's JSON-RPC id is replaced for the
// hop, so that two clients of one agent using the same id do not collide.
//
// A call that needs approval is answered with an input-required result
// whose requestState is the ticket; the client retries the very same
// call with it once an approver has decided. The ticket is bound to the
// call (agent, session, tool, arguments): offered with another call, it
// lets nothing through.
func (h *HTTPHandler) serveStateless(w http.ResponseWriter, r *http.Request, who Identity) {
	if r.Header.Get(sessionHeader) != "" {
		httpError(w, errcode.Errorf(errcode.BadRequest, "protocol %s has no sessions: drop the %s header", RevisionStateless, sessionHeader))
		return
	}
	body, ok := h.readBody(w, r)
	if !ok {
		return
	}
	msg, err := wire.DecodeMessage(body)
	if err != nil {
		writeFrameError(w, err)
		return
	}
	req, isReq := msg.(*jsonrpc.Request)
	if !isReq {
		writeRPCError(w, jsonrpc.ID{}, jsonrpc.CodeInvalidRequest, errcode.Errorf(errcode.BadRequest, "protocol %s takes requests and notifications only: the server asks nothing of the client", RevisionStateless))
		return
	}
	if err := checkRouting(r, req, true); err != nil {
		h.refuseRouting(r, who, req, err)
		writeRPCError(w, req.ID, jsonrpc.CodeInvalidRequest, errcode.New(errcode.BadRequest, err.Error()))
		return
	}
	if !req.IsCall() {
		if !clientNotifications[req.Method] {
			writeRPCError(w, jsonrpc.ID{}, jsonrpc.CodeInvalidRequest, errcode.New(errcode.BadRequest, "invalid request: "+notificationRefusal(req.Method)))
			return
		}
		// Nothing of a notification outlives its request here (a
		// cancellation of a call answered on its own POST is the client
		// closing that POST).
		w.WriteHeader(http.StatusAccepted)
		return
	}
	meta, err := readStatelessMeta(req.Params)
	if err != nil {
		writeRPCError(w, req.ID, jsonrpc.CodeInvalidParams, errcode.New(errcode.BadRequest, err.Error()))
		return
	}
	if meta.Protocol != RevisionStateless {
		writeRPCError(w, req.ID, jsonrpc.CodeInvalidRequest, errcode.Errorf(errcode.BadRequest, "the %s header says %s but params._meta says %q", headerProtocol, RevisionStateless, meta.Protocol))
		return
	}
	switch req.Method {
	case methodInitialize, methodPing, "logging/setLevel", methodSubscriptionsListen:
		writeRPCError(w, req.ID, jsonrpc.CodeMethodNotFound, errcode.Errorf(errcode.NotFound, "%s is not a method of protocol %s", req.Method, RevisionStateless))
		return
	}
	b, e := h.backing(r, who, meta)
	if e != nil {
		if e.body != nil {
			// The session was refused (a kill switch, the session limit,
			// the audit log): the client gets that answer, with its id.
			h.relayAnswer(w, req.ID, e.status, e.body, false)
			return
		}
		writeRPCError(w, req.ID, 0, e.err)
		return
	}
	if req.Method == methodDiscover {
		result, _ := json.Marshal(map[string]any{
			"resultType":        "complete",
			"supportedVersions": []string{RevisionStateless, RevisionSession},
			"capabilities":      withoutListChanged(b.capabilities),
			"serverInfo":        b.serverInfo,
		})
		h.writeAnswer(w, &jsonrpc.Response{ID: req.ID, Result: result})
		return
	}
	params, err := hopParams(req.Params)
	if err != nil {
		writeRPCError(w, req.ID, jsonrpc.CodeInvalidParams, errcode.New(errcode.BadRequest, err.Error()))
		return
	}
	hop := &jsonrpc.Request{ID: h.hopID(), Method: req.Method, Params: params}
	status, answer := h.relay(h.withCallerTrace(r), b.sid, who, hop)
	h.relayAnswer(w, req.ID, status, answer, true)
}

// backingSession is the session the stateless requests of one agent go
// through.
type backingSession struct {
	sid          string
	capabilities json.RawMessage
	serverInfo   json.RawMessage
}

type backingError struct {
	status int
	body   []byte // the refusal of the session, as written
	err    *errcode.Error
}

// refusedOpening is the answer to a stateless request whose backing
// session did not open: the refusal as it was written, or, when nothing
// was written (the client went away as it opened), an error of its own.
func refusedOpening(rec *recorder) *backingError {
	if rec.body.Len() == 0 {
		return &backingError{err: errcode.New(errcode.Unavailable, "the agent's MCP session could not be opened; retry")}
	}
	return &backingError{status: rec.status, body: rec.body.Bytes()}
}

// statelessSessionID is the id of a caller's stateless session on this
// server: the same every time it is opened, so that a ticket given in one
// lets the call through in the next. It is one per credential (see
// Identity.key), since every call through it is decided for the identity
// that opened it.
func statelessSessionID(server string, who Identity) string {
	sum := sha256.Sum256([]byte(server + "\x00" + who.key()))
	return "mcp-stateless-" + hex.EncodeToString(sum[:12])
}

// backing returns the agent's stateless session, opening it (an
// initialize and its notification, on the client's behalf, with the
// client's info and capabilities) when it is not open.
func (h *HTTPHandler) backing(r *http.Request, who Identity, meta statelessMeta) (*backingSession, *backingError) {
	sid := statelessSessionID(h.g.cfg.Server, who)
	// One opening at a time per agent; other agents do not wait on it.
	h.mu.Lock()
	lock := h.opening[sid]
	if lock == nil {
		lock = &sync.Mutex{}
		h.opening[sid] = lock
	}
	h.mu.Unlock()
	lock.Lock()
	defer lock.Unlock()
	h.mu.Lock()
	hs := h.sessions[sid]
	b := h.backings[sid]
	h.mu.Unlock()
	if hs != nil && hs.ending == "" && b != nil {
		return b, nil
	}
	init, _ := json.Marshal(map[string]any{
		"jsonrpc": "2.0", "id": "stateless-init", "method": methodInitialize,
		"params": map[string]any{"protocolVersion": RevisionSession, "capabilities": meta.Capabilities, "clientInfo": meta.ClientInfo},
	})
	rec := newRecorder()
	h.open(rec, hopRequest(r.Context(), init), who, sid)
	if rec.status != http.StatusOK {
		return nil, refusedOpening(rec)
	}
	var resp struct {
		Result struct {
			Capabilities json.RawMessage `json:"capabilities"`
			ServerInfo   json.RawMessage `json:"serverInfo"`
		} `json:"result"`
		Error *struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(rec.body.Bytes(), &resp); err != nil || resp.Error != nil {
		h.end(sid, who, "the upstream refused its initialize")
		return nil, refusedOpening(rec)
	}
	hs, release := h.acquire(sid, who)
	if hs == nil {
		return nil, &backingError{err: errcode.New(errcode.Unavailable, "the agent's MCP session closed while it opened; retry")}
	}
	hs.conn.servePOST(newRecorder(), hopRequest(r.Context(), nil), []jsonrpc.Message{&jsonrpc.Request{Method: methodInitialized}}, false)
	release()
	b = &backingSession{sid: sid, capabilities: resp.Result.Capabilities, serverInfo: resp.Result.ServerInfo}
	h.mu.Lock()
	h.backings[sid] = b
	h.mu.Unlock()
	return b, nil
}

// hopID is a JSON-RPC id of the gateway's for a relayed stateless request.
func (h *HTTPHandler) hopID() jsonrpc.ID {
	id, _ := jsonrpc.MakeID("stateless-" + strconv.FormatInt(h.hopSeq.Add(1), 10))
	return id
}

// hopParams are the params of a stateless request as the session revision
// takes them: an approval ticket given back as requestState becomes the
// gateway's own approval_id (which the decision checks against the call),
// and the retry's inputResponses, which answer nothing the upstream asked,
// are dropped.
func hopParams(raw json.RawMessage) (json.RawMessage, error) {
	var p map[string]json.RawMessage
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, fmt.Errorf("params must be a JSON object")
	}
	state, hasState := p["requestState"]
	delete(p, "requestState")
	delete(p, "inputResponses")
	var meta map[string]json.RawMessage
	if m := p["_meta"]; len(m) > 0 {
		if err := json.Unmarshal(m, &meta); err != nil {
			return nil, fmt.Errorf("params._meta must be a JSON object")
		}
	}
	for _, k := range []string{metaProtocol, metaClientInfo, metaClientCaps} {
		delete(meta, k)
	}
	if hasState {
		if meta == nil {
			meta = map[string]json.RawMessage{}
		}
		var ticket string
		if err := json.Unmarshal(state, &ticket); err != nil || ticket == "" {
			return nil, fmt.Errorf("requestState must be the string the gateway gave")
		}
		if _, own := meta[MetaApprovalID]; own {
			return nil, fmt.Errorf("give the ticket as requestState or as _meta %s, not both", MetaApprovalID)
		}
		meta[MetaApprovalID], _ = json.Marshal(ticket)
	}
	if len(meta) > 0 {
		p["_meta"], _ = json.Marshal(meta)
	} else {
		delete(p, "_meta")
	}
	return json.Marshal(p)
}

// relay sends a request through the agent's stateless session and returns
// the HTTP status and body of its answer.
func (h *HTTPHandler) relay(ctx context.Context, sid string, who Identity, req *jsonrpc.Request) (int, []byte) {
	hs, release := h.acquire(sid, who)
	if hs == nil {
		rec := newRecorder()
		httpError(rec, errcode.New(errcode.Unavailable, "the agent's MCP session closed; retry"))
		return rec.status, rec.body.Bytes()
	}
	defer release()
	if tp, ok := ctx.Value(callerTraceKey{}).(string); ok {
		hs.s.noteTraceparent([]jsonrpc.Message{req}, tp)
	}
	rec := newRecorder()
	hs.conn.servePOST(rec, hopRequest(ctx, nil), []jsonrpc.Message{req}, false)
	return rec.status, rec.body.Bytes()
}

// relayAnswer writes the answer of a relayed request under the client's
// own id, as the stateless revision has it: a result says it is complete,
// or, when the call waits for an approval, it is an input-required result
// carrying the ticket as its requestState.
func (h *HTTPHandler) relayAnswer(w http.ResponseWriter, id jsonrpc.ID, status int, body []byte, shape bool) {
	msg, err := wire.DecodeMessage(body)
	resp, ok := msg.(*jsonrpc.Response)
	if err != nil || !ok {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		w.Write(body)
		return
	}
	resp.ID = id
	if shape {
		resp = statelessAnswer(resp)
	}
	if status == http.StatusOK {
		h.writeAnswer(w, resp)
		return
	}
	data, _ := wire.EncodeMessage(resp)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(data)
}

func (h *HTTPHandler) writeAnswer(w http.ResponseWriter, resp *jsonrpc.Response) {
	data, _ := wire.EncodeMessage(resp)
	w.Header().Set("Content-Type", "application/json")
	w.Write(data)
}

// statelessAnswer shapes an answer of the session revision for a client of
// the stateless one.
func statelessAnswer(resp *jsonrpc.Response) *jsonrpc.Response {
	var meta map[string]any
	text := ""
	switch {
	case resp.Error != nil:
		var we *jsonrpc.Error
		if e, ok := resp.Error.(*jsonrpc.Error); ok {
			we = e
		}
		if we == nil || json.Unmarshal(we.Data, &meta) != nil {
			return resp
		}
		text = we.Message
	default:
		var r map[string]json.RawMessage
		if json.Unmarshal(resp.Result, &r) != nil {
			return resp
		}
		json.Unmarshal(r["_meta"], &meta)
		if !waiting(meta) {
			r["resultType"] = json.RawMessage(`"complete"`)
			cacheFields(r)
			resp.Result, _ = json.Marshal(r)
			return resp
		}
		var tr struct {
			Content []struct {
				Text string `json:"text"`
			} `json:"content"`
		}
		json.Unmarshal(resp.Result, &tr)
		if len(tr.Content) > 0 {
			text = tr.Content[0].Text
		}
	}
	if !waiting(meta) {
		return resp
	}
	ticket := meta[MetaApprovalID].(string)
	// No inputRequests: there is nothing the client could answer, since
	// an agent does not approve its own calls; an approver decides the
	// ticket, and the client retries with it (the "still waiting" form of
	// an input-required result). The text is kept as the content of an
	// error, for a client that shows it to its model as it is.
	result, _ := json.Marshal(map[string]any{
		"resultType":   "input_required",
		"requestState": ticket,
		"content":      []map[string]string{{"type": "text", "text": text}},
		"isError":      true,
		"_meta":        meta,
	})
	return &jsonrpc.Response{ID: resp.ID, Result: result}
}

// hopRequest is the HTTP request a relayed message is posted with: JSON
// in, JSON out.
func hopRequest(ctx context.Context, body []byte) *http.Request {
	r, _ := http.NewRequestWithContext(ctx, http.MethodPost, "/", bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Accept", "application/json")
	r.ContentLength = int64(len(body))
	return r
}

// recorder keeps the answer to a relayed message.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func newRecorder() *recorder { return &recorder{header: http.Header{}} }

func (c *recorder) Header() http.Header { return c.header }
func (c *recorder) WriteHeader(status int) {
	if c.status == 0 {
		c.status = status
	}
}
func (c *recorder) Write(p []byte) (int, error) {
	c.WriteHeader(http.StatusOK)
	return c.body.Write(p)
}
func (c *recorder) Flush() {}

var _ io.Writer = (*recorder)(nil)

// waiting says an answer's _meta is that of a call waiting for its ticket:
// one that needs approval, or a retry under a ticket still pending.
func waiting(meta map[string]any) bool {
	ticket, _ := meta[MetaApprovalID].(string)
	return ticket != "" && (meta["agentgov/effect"] == string(action.RequireApproval) || meta[metaPending] == true)
}

// withoutListChanged is the upstream's capabilities without the list
// changes it would notify: a stateless client gets them only on a
// subscriptions/listen stream, which the gateway does not serve, so it is
// not told to open one. It lists again to see changes; quarantine of a
// drifted tool holds either way.
func withoutListChanged(caps json.RawMessage) json.RawMessage {
	var c map[string]map[string]any
	if json.Unmarshal(caps, &c) != nil {
		return caps
	}
	for _, v := range c {
		delete(v, "listChanged")
	}
	out, _ := json.Marshal(c)
	return out
}

// refuseRouting records a request whose routing headers lied about its
// body: a client probing what an intermediary lets through.
func (h *HTTPHandler) refuseRouting(r *http.Request, who Identity, req *jsonrpc.Request, err error) {
	rec := refusalRecord{
		Server: h.g.cfg.Server, Session: r.Header.Get(sessionHeader), Agent: who.Agent, Principal: who.Principal,
		From: sideClient, Method: truncate(req.Method, 128), Reason: err.Error(),
	}
	switch v := req.ID.Raw().(type) {
	case string:
		rec.ID = truncate(v, 128)
	case int64:
		rec.ID = v
	}
	h.g.log.Warn("mcp message refused", "from", sideClient, "method", rec.Method, "reason", rec.Reason)
	h.g.record(r.Context(), "mcp.refused", rec)
}

// cacheFields gives a list result the cache fields the stateless revision
// requires of it. A listing is the gateway's view for one agent (tools
// hidden by its policies and ring) and may change at any moment (drift,
// quarantine, a policy reload): private, and not to be cached.
func cacheFields(r map[string]json.RawMessage) {
	for _, list := range []string{"tools", "prompts", "resources", "resourceTemplates"} {
		if _, ok := r[list]; !ok {
			continue
		}
		if _, ok := r["ttlMs"]; !ok {
			r["ttlMs"] = json.RawMessage(`0`)
		}
		r["cacheScope"] = json.RawMessage(`"private"`)
		return
	}
}
