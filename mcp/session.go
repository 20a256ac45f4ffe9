package mcp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentgov/agentgov/action"
)

// MCP method names the gateway acts on.
const (
	methodInitialize    = "initialize"
	methodInitialized   = "notifications/initialized"
	methodToolsList     = "tools/list"
	methodToolsCall     = "tools/call"
	methodListChanged   = "notifications/tools/list_changed"
	methodCancelled     = "notifications/cancelled"
	methodElicit        = "elicitation/create"
	internalIDPrefix    = "agentgov-"
	codeUpstreamFailure = -32603
)

// session relays one client connection to its upstream.
type session struct {
	g      *Gateway
	id     string
	who    Identity
	client sdk.Connection
	ctx    context.Context
	cancel context.CancelFunc

	upMu       sync.Mutex
	up         sdk.Connection // nil until dialled, and again after the upstream died
	upGen      int
	initParams json.RawMessage // the client's initialize, replayed to a restarted upstream
	started    bool            // the client finished initialising

	mu        sync.Mutex
	inflight  map[jsonrpc.ID]*inflight
	internal  map[string]chan *jsonrpc.Response
	approvals map[string]string // call key -> approval ticket it is waiting on
	elicit    bool
	nextID    atomic.Int64

	loadMu   sync.Mutex // one catalog load at a time
	catMu    sync.Mutex
	catalog  map[string]*toolState
	catErr   error
	catReady chan struct{}
	catDone  bool
	catStart bool
}

// inflight is a client request forwarded upstream and not yet answered.
type inflight struct {
	method    string
	gen       int // upstream generation it was sent to; 0 before it was sent
	call      *callState
	cancelled bool
}

// callState follows an allowed tools/call to its result.
type callState struct {
	req      *jsonrpc.Request
	action   action.Action
	decision action.Decision
	digest   string
	start    int64 // clock at forwarding, in nanoseconds
}

func newSession(ctx context.Context, g *Gateway, client sdk.Connection, who Identity, id string) *session {
	ctx, cancel := context.WithCancel(ctx)
	return &session{
		g: g, id: id, who: who, client: client, ctx: ctx, cancel: cancel,
		inflight:  map[jsonrpc.ID]*inflight{},
		internal:  map[string]chan *jsonrpc.Response{},
		approvals: map[string]string{},
		catReady:  make(chan struct{}),
	}
}

func (s *session) close() {
	s.cancel()
	s.upMu.Lock()
	if s.up != nil {
		s.up.Close()
		s.up = nil
	}
	s.upMu.Unlock()
	s.client.Close()
}

// run reads the client until it goes away.
func (s *session) run() error {
	for {
		msg, err := s.client.Read(s.ctx)
		if err != nil {
			var fe *FrameError
			if errors.As(err, &fe) {
				s.replyError(fe.ID, fe.Code, fe.Error())
				continue
			}
			if errors.Is(err, context.Canceled) || isEOF(err) {
				return nil
			}
			return fmt.Errorf("mcp session %s: read client: %w", s.id, err)
		}
		s.fromClientMessage(msg, false)
	}
}

// fromClientMessage acts on one message from the client. own says it runs
// on a goroutine of its own, which may wait for the upstream's answer (see
// clientStream.pushTo); otherwise it runs on the session's read loop.
func (s *session) fromClientMessage(msg jsonrpc.Message, own bool) {
	switch m := msg.(type) {
	case *jsonrpc.Request:
		s.fromClient(m, own)
	case *jsonrpc.Response:
		if s.deliverInternal(m) {
			return
		}
		if err := s.sendUp(m, false); err != nil {
			s.g.log.Warn("response to upstream lost", "session", s.id, "err", err)
		}
	}
}

func isEOF(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, sdk.ErrConnectionClosed)
}

func (s *session) fromClient(req *jsonrpc.Request, own bool) {
	s.noteCapabilities(req.Params)
	if !req.IsCall() {
		switch req.Method {
		case methodInitialized:
			s.upMu.Lock()
			s.started = true
			s.upMu.Unlock()
			s.sendUp(req, false)
			go s.loadCatalog()
			return
		case methodCancelled:
			var p struct {
				RequestID any `json:"requestId"`
			}
			if json.Unmarshal(req.Params, &p) == nil {
				if id, err := jsonrpc.MakeID(normalizeID(p.RequestID)); err == nil {
					s.mu.Lock()
					if inf := s.inflight[id]; inf != nil && inf.gen == 0 {
						inf.cancelled = true
					}
					s.mu.Unlock()
				}
			}
		}
		s.sendUp(req, false)
		return
	}
	s.mu.Lock()
	if _, dup := s.inflight[req.ID]; dup {
		s.mu.Unlock()
		s.replyError(req.ID, jsonrpc.CodeInvalidRequest, fmt.Sprintf("request id %v is already in flight", req.ID.Raw()))
		return
	}
	inf := &inflight{method: req.Method}
	s.inflight[req.ID] = inf
	s.mu.Unlock()
	switch req.Method {
	case methodInitialize:
		var p struct {
			Capabilities struct {
				Elicitation json.RawMessage `json:"elicitation"`
			} `json:"capabilities"`
		}
		_ = json.Unmarshal(req.Params, &p)
		s.mu.Lock()
		s.elicit = len(p.Capabilities.Elicitation) > 0 && string(p.Capabilities.Elicitation) != "null"
		s.mu.Unlock()
		s.upMu.Lock()
		s.initParams = append(json.RawMessage(nil), req.Params...)
		s.upMu.Unlock()
		s.forward(req, own)
	case methodToolsCall:
		if own {
			s.handleCall(req, false)
		} else if len(req.Params) <= inlineLimit && s.catalogReady() {
			s.handleCall(req, true)
		} else {
			// The first call waits for the catalog, which must not hold up
			// reading the client.
			go s.handleCall(req, false)
		}
	default:
		s.forward(req, own)
	}
}

// noteCapabilities remembers whether the client can answer elicitation
// requests. Clients of protocol 2026-07-28 declare it in every request's
// _meta rather than once in initialize.
func (s *session) noteCapabilities(params json.RawMessage) {
	if !bytes.Contains(params, []byte(`"elicitation"`)) {
		return
	}
	var p struct {
		Meta map[string]json.RawMessage `json:"_meta"`
	}
	if json.Unmarshal(params, &p) != nil {
		return
	}
	var caps struct {
		Elicitation json.RawMessage `json:"elicitation"`
	}
	if json.Unmarshal(p.Meta["io.modelcontextprotocol/clientCapabilities"], &caps) == nil && len(caps.Elicitation) > 0 && string(caps.Elicitation) != "null" {
		s.mu.Lock()
		s.elicit = true
		s.mu.Unlock()
	}
}

// normalizeID turns a JSON-decoded id into what jsonrpc.MakeID accepts.
func normalizeID(v any) any {
	if n, ok := v.(json.Number); ok {
		f, _ := n.Float64()
		return f
	}
	return v
}

// forward sends a client request upstream, answering it with an error if
// the upstream cannot be reached. own is as for fromClientMessage.
func (s *session) forward(req *jsonrpc.Request, own bool) {
	if err := s.sendUp(req, own); err != nil {
		if inf := s.takeInflight(req.ID); inf != nil {
			s.replyError(req.ID, codeUpstreamFailure, fmt.Sprintf("upstream MCP server %q is unavailable: %v", s.g.cfg.Server, err))
		}
	}
}

// sendUp writes to the upstream, dialling (and re-initialising) it first if
// it is not running.
//
// A request sent from a goroutine of its own (own) to an upstream that can
// answer on the caller's goroutine (waitingWriter) is sent that way: the
// answer is then handled, and over HTTP written to the client, without
// passing between goroutines.
func (s *session) sendUp(msg jsonrpc.Message, own bool) error {
	up, gen, err := s.upstream()
	if err != nil {
		return err
	}
	if req, ok := msg.(*jsonrpc.Request); ok && req.IsCall() {
		s.mu.Lock()
		if inf := s.inflight[req.ID]; inf != nil {
			inf.gen = gen
		}
		s.mu.Unlock()
	}
	write := up.Write
	if ww, ok := up.(waitingWriter); ok && own {
		write = ww.writeAndWait
	}
	if err := write(s.ctx, msg); err != nil {
		s.upstreamDied(gen, err)
		return fmt.Errorf("write to upstream: %w", err)
	}
	return nil
}

func (s *session) upstream() (sdk.Connection, int, error) {
	s.upMu.Lock()
	defer s.upMu.Unlock()
	if s.up != nil {
		return s.up, s.upGen, nil
	}
	if s.ctx.Err() != nil {
		return nil, 0, s.ctx.Err()
	}
	up, err := s.g.cfg.Dial(s.ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("start upstream: %w", err)
	}
	restart := s.upGen > 0
	s.upGen++
	gen := s.upGen
	if p, ok := up.(pushingConn); ok {
		p.pushTo(s.fromUpstream)
	}
	go s.readUpstream(up, gen)
	if restart && s.initParams != nil {
		// A restarted upstream: bring it to where the client believes it is.
		resp, err := s.callOn(up, methodInitialize, s.initParams)
		if err == nil && resp.Error != nil {
			err = resp.Error
		}
		if err != nil {
			up.Close()
			return nil, 0, fmt.Errorf("re-initialise restarted upstream: %w", err)
		}
		if s.started {
			n := &jsonrpc.Request{Method: methodInitialized, Params: json.RawMessage(`{}`)}
			if err := up.Write(s.ctx, n); err != nil {
				up.Close()
				return nil, 0, fmt.Errorf("re-initialise restarted upstream: %w", err)
			}
			s.markStale()
			go s.loadCatalog()
		}
		s.g.log.Info("upstream restarted", "server", s.g.cfg.Server, "session", s.id)
	}
	s.up = up
	return up, gen, nil
}

// upstreamDied fails every request sent to generation gen, so that no
// client waits for an answer that cannot come.
func (s *session) upstreamDied(gen int, cause error) {
	s.upMu.Lock()
	if s.upGen == gen && s.up != nil {
		s.up.Close()
		s.up = nil
	}
	s.upMu.Unlock()
	if s.ctx.Err() != nil {
		return
	}
	s.mu.Lock()
	var failed []jsonrpc.ID
	var calls []*callState
	for id, inf := range s.inflight {
		if inf.gen == gen {
			failed = append(failed, id)
			if inf.call != nil {
				calls = append(calls, inf.call)
			}
			delete(s.inflight, id)
		}
	}
	for id, ch := range s.internal {
		close(ch)
		delete(s.internal, id)
	}
	s.mu.Unlock()
	msg := fmt.Sprintf("upstream MCP server %q closed the connection: %v", s.g.cfg.Server, cause)
	s.g.log.Warn("upstream died", "server", s.g.cfg.Server, "session", s.id, "err", cause)
	for _, id := range failed {
		s.replyError(id, codeUpstreamFailure, msg)
	}
	for _, c := range calls {
		s.settle(c, "error", msg, nil)
	}
}

// readUpstream reads one upstream connection until it fails.
func (s *session) readUpstream(up sdk.Connection, gen int) {
	for {
		msg, err := up.Read(s.ctx)
		if err != nil {
			if s.ctx.Err() == nil {
				s.upstreamDied(gen, err)
			}
			return
		}
		s.fromUpstream(msg)
	}
}

// waitingWriter is an upstream connection that can also send a request and
// deliver its answer before returning, on the caller's goroutine.
type waitingWriter interface {
	writeAndWait(ctx context.Context, msg jsonrpc.Message) error
}

// pushingConn is an upstream connection that can hand each message to the
// session on the goroutine that received it, rather than through Read,
// which would add a hand-off between goroutines to every answer. Read then
// only reports the connection's end. httpUpstream is one: each call's
// answer is received on a goroutine of its own.
type pushingConn interface {
	pushTo(func(jsonrpc.Message))
}

// fromUpstream acts on one message from the upstream. It may run on several
// goroutines at once (see pushingConn).
func (s *session) fromUpstream(msg jsonrpc.Message) {
	switch m := msg.(type) {
	case *jsonrpc.Response:
		if s.deliverInternal(m) {
			return
		}
		inf := s.takeInflight(m.ID)
		switch {
		case inf == nil:
			s.toClient(m)
		case inf.call != nil:
			if len(m.Result) <= inlineLimit {
				s.finishCall(inf.call, m, true)
			} else {
				go s.finishCall(inf.call, m, false)
			}
		case inf.method == methodToolsList:
			go s.filterList(m)
		default:
			s.toClient(m)
		}
	case *jsonrpc.Request:
		if m.Method == methodListChanged {
			s.markStale()
			go s.loadCatalog()
		}
		s.toClient(m)
	}
}

func (s *session) takeInflight(id jsonrpc.ID) *inflight {
	s.mu.Lock()
	defer s.mu.Unlock()
	inf := s.inflight[id]
	delete(s.inflight, id)
	return inf
}

func (s *session) toClient(msg jsonrpc.Message) {
	if err := s.client.Write(s.ctx, msg); err != nil && s.ctx.Err() == nil {
		s.g.log.Warn("write to client failed", "session", s.id, "err", err)
	}
}

func (s *session) reply(id jsonrpc.ID, result any) {
	raw, err := json.Marshal(result)
	if err != nil {
		s.replyError(id, jsonrpc.CodeInternalError, fmt.Sprintf("encode result: %v", err))
		return
	}
	s.toClient(&jsonrpc.Response{ID: id, Result: raw})
}

func (s *session) replyError(id jsonrpc.ID, code int64, msg string) {
	s.toClient(&jsonrpc.Response{ID: id, Error: &jsonrpc.Error{Code: code, Message: msg}})
}

// callOn sends a request of the gateway's own to conn and waits for its
// answer. Its id cannot collide with the client's: the client's ids are
// relayed as they are, and these are strings with a prefix of their own.
func (s *session) callOn(conn sdk.Connection, method string, params any) (*jsonrpc.Response, error) {
	raw, err := json.Marshal(params)
	if err != nil {
		return nil, err
	}
	key := internalIDPrefix + strconv.FormatInt(s.nextID.Add(1), 10)
	ch := make(chan *jsonrpc.Response, 1)
	s.mu.Lock()
	s.internal[key] = ch
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.internal, key)
		s.mu.Unlock()
	}()
	id, _ := jsonrpc.MakeID(key)
	if err := conn.Write(s.ctx, &jsonrpc.Request{ID: id, Method: method, Params: raw}); err != nil {
		return nil, err
	}
	select {
	case resp, ok := <-ch:
		if !ok {
			return nil, errors.New("connection closed before the answer")
		}
		return resp, nil
	case <-s.ctx.Done():
		return nil, s.ctx.Err()
	}
}

func (s *session) deliverInternal(resp *jsonrpc.Response) bool {
	key, ok := resp.ID.Raw().(string)
	if !ok || !strings.HasPrefix(key, internalIDPrefix) {
		return false
	}
	s.mu.Lock()
	ch := s.internal[key]
	delete(s.internal, key)
	s.mu.Unlock()
	if ch == nil {
		return false
	}
	ch <- resp
	return true
}

// catalogReady says whether a call would find a current catalog without
// waiting.
func (s *session) catalogReady() bool {
	s.catMu.Lock()
	defer s.catMu.Unlock()
	return s.catDone
}

// markStale makes calls wait for the next catalog load.
func (s *session) markStale() {
	s.catMu.Lock()
	if s.catDone {
		s.catReady = make(chan struct{})
		s.catDone = false
	}
	s.catMu.Unlock()
}

// loadCatalog lists the upstream's tools itself, all pages, and assesses
// them against the pins.
func (s *session) loadCatalog() {
	s.loadMu.Lock()
	defer s.loadMu.Unlock()
	s.catMu.Lock()
	s.catStart = true
	ch := s.catReady
	s.catMu.Unlock()

	tools, err := s.listTools()
	var cat map[string]*toolState
	if err == nil {
		cat = s.g.assess(s.ctx, tools, true)
		names := make([]string, 0, len(tools))
		for _, t := range tools {
			names = append(names, t.Name)
		}
		s.g.cfg.Registry.set(s.g.cfg.Server, names)
	}
	s.catMu.Lock()
	s.catalog, s.catErr = cat, err
	if s.catReady == ch && !s.catDone {
		close(ch)
		s.catDone = true
	}
	s.catMu.Unlock()
}

func (s *session) listTools() ([]ToolDef, error) {
	up, _, err := s.upstream()
	if err != nil {
		return nil, err
	}
	var tools []ToolDef
	cursor := ""
	for page := 0; ; page++ {
		if page > 1000 {
			return nil, errors.New("tools/list: more than 1000 pages")
		}
		params := map[string]any{}
		if cursor != "" {
			params["cursor"] = cursor
		}
		resp, err := s.callOn(up, methodToolsList, params)
		if err != nil {
			return nil, fmt.Errorf("tools/list: %w", err)
		}
		if resp.Error != nil {
			var we *jsonrpc.Error
			if errors.As(resp.Error, &we) && we.Code == jsonrpc.CodeMethodNotFound {
				return tools, nil // a server without tools
			}
			return nil, fmt.Errorf("tools/list: %w", resp.Error)
		}
		defs, next, err := parseToolsPage(resp.Result)
		if err != nil {
			return nil, err
		}
		tools = append(tools, defs...)
		if next == "" {
			return tools, nil
		}
		cursor = next
	}
}

func parseToolsPage(result json.RawMessage) ([]ToolDef, string, error) {
	var page struct {
		Tools      []json.RawMessage `json:"tools"`
		NextCursor string            `json:"nextCursor"`
	}
	if err := json.Unmarshal(result, &page); err != nil {
		return nil, "", fmt.Errorf("tools/list result: %w", err)
	}
	defs := make([]ToolDef, 0, len(page.Tools))
	for _, raw := range page.Tools {
		t, err := ParseToolDef(raw)
		if err != nil {
			return nil, "", fmt.Errorf("tools/list result: %w", err)
		}
		defs = append(defs, t)
	}
	return defs, page.NextCursor, nil
}

// tool waits for a current catalog and returns the state of one tool,
// nil if the upstream does not offer it.
func (s *session) tool(ctx context.Context, name string) (*toolState, error) {
	s.catMu.Lock()
	start := !s.catStart
	s.catStart = true
	s.catMu.Unlock()
	if start {
		go s.loadCatalog()
	}
	for {
		s.catMu.Lock()
		ch, done := s.catReady, s.catDone
		cat, err := s.catalog, s.catErr
		s.catMu.Unlock()
		if done {
			if err != nil {
				return nil, fmt.Errorf("the tools of upstream %q could not be listed: %w", s.g.cfg.Server, err)
			}
			return cat[name], nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// filterList removes from a tools/list answer every tool the caller must
// not see: quarantined ones and those its policy denies outright.
func (s *session) filterList(resp *jsonrpc.Response) {
	if resp.Error != nil {
		s.toClient(resp)
		return
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(resp.Result, &fields); err != nil {
		s.replyError(resp.ID, codeUpstreamFailure, fmt.Sprintf("upstream %q sent a malformed tools/list result: %v", s.g.cfg.Server, err))
		return
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(fields["tools"], &raws); err != nil {
		s.replyError(resp.ID, codeUpstreamFailure, fmt.Sprintf("upstream %q sent a malformed tools/list result: %v", s.g.cfg.Server, err))
		return
	}
	// Wait for the gateway's own full listing, so that trust on first use
	// has pinned before this page is compared with the pins.
	if _, err := s.tool(s.ctx, ""); err != nil && s.ctx.Err() != nil {
		return
	}
	defs := make([]ToolDef, 0, len(raws))
	keep := make([]json.RawMessage, 0, len(raws))
	for _, raw := range raws {
		t, err := ParseToolDef(raw)
		if err != nil {
			continue // a tool that cannot be read cannot be pinned
		}
		defs = append(defs, t)
	}
	states := s.g.assess(s.ctx, defs, false)
	s.catMu.Lock()
	if s.catalog != nil {
		for name, st := range states {
			s.catalog[name] = st
		}
	}
	s.catMu.Unlock()
	for _, raw := range raws {
		t, err := ParseToolDef(raw)
		if err != nil {
			continue
		}
		st := states[t.Name]
		if st == nil || st.quarantine != "" {
			continue
		}
		if s.deniedOutright(st) {
			continue
		}
		keep = append(keep, raw)
	}
	b, _ := json.Marshal(keep)
	fields["tools"] = b
	out, err := json.Marshal(fields)
	if err != nil {
		s.replyError(resp.ID, jsonrpc.CodeInternalError, err.Error())
		return
	}
	s.toClient(&jsonrpc.Response{ID: resp.ID, Result: out})
}

func (s *session) probe(st *toolState) action.Action {
	return action.Action{
		Agent: s.who.Agent, Principal: s.who.Principal, Session: s.id,
		Point: action.PreToolCall,
		Tool:  action.Tool{Server: s.g.cfg.Server, Name: st.def.Name, Annotations: st.annotations},
	}
}

func (s *session) deniedOutright(st *toolState) bool {
	a := s.probe(st)
	if u, ok := s.g.cfg.Decider.(UnconditionalDenier); ok {
		denied, err := u.DeniesUnconditionally(s.ctx, a)
		return err != nil || denied
	}
	d, err := s.g.cfg.Decider.Decide(s.ctx, a)
	return err != nil || d.Effect == action.Deny
}

// decodeArgs reads tools/call arguments keeping numbers exact.
func decodeArgs(raw json.RawMessage) (map[string]any, error) {
	if len(bytes.TrimSpace(raw)) == 0 || string(bytes.TrimSpace(raw)) == "null" {
		return map[string]any{}, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var args map[string]any
	if err := dec.Decode(&args); err != nil {
		return nil, fmt.Errorf("arguments must be a JSON object: %w", err)
	}
	v, err := action.NormalizeValue(args, "arguments", 1)
	if err != nil {
		return nil, err
	}
	m, _ := v.(map[string]any)
	if m == nil {
		m = map[string]any{}
	}
	return m, nil
}
