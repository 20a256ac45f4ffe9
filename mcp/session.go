package mcp

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/calltrace"
	"github.com/agentgov/agentgov/errcode"
	"github.com/agentgov/agentgov/mcp/pin"
	"github.com/agentgov/agentgov/mcp/wire"
)

// MCP method names the gateway acts on.
const (
	methodInitialize         = "initialize"
	methodInitialized        = "notifications/initialized"
	methodPing               = "ping"
	methodToolsList          = "tools/list"
	methodToolsCall          = "tools/call"
	methodResourcesRead      = "resources/read"
	methodResourcesSubscribe = "resources/subscribe"
	methodPromptsGet         = "prompts/get"
	methodListChanged        = "notifications/tools/list_changed"
	methodCancelled          = "notifications/cancelled"
	methodProgress           = "notifications/progress"
	methodRootsChanged       = "notifications/roots/list_changed"
	methodElicit             = "elicitation/create"
)

// JSON-RPC error codes the gateway answers with itself, here and nowhere
// else.
const (
	// codeRefused: agentgov refused the request (a denial, an approval
	// that is needed, a kill switch, a session limit). The error's data
	// carries agentgov/effect, agentgov/code and, when there is one,
	// agentgov/decision.
	codeRefused = errcode.RPCRefused
	// codeUpstreamFailure: the upstream could not answer.
	codeUpstreamFailure = errcode.RPCInternal
)

// internalIDPrefix begins the id of every request the gateway sends of its
// own accord, to the upstream (its tools/list, a restarted upstream's
// initialize) or to the client (elicitation). The rest of the id is a
// random per-session part and a counter, so it cannot be guessed; a
// message of the client or the upstream that uses the prefix is refused
// and audited.
const internalIDPrefix = "agentgov-"

// clientNotifications are the notifications a client may send a server. A
// message without an id gets no answer, so any other method sent that way
// (a tools/call above all) would reach the upstream with nothing decided:
// it is refused and audited instead.
var clientNotifications = map[string]bool{
	methodInitialized:  true,
	methodCancelled:    true,
	methodProgress:     true,
	methodRootsChanged: true,
}

// maxRelayed bounds the upstream's requests that wait for the client's
// answer at once.
const maxRelayed = 1024

// Who sent a refused message.
const (
	sideClient   = "client"
	sideUpstream = "upstream"
)

// session relays one client connection to its upstream.
type session struct {
	g      *Gateway
	id     string
	who    Identity
	client sdk.Connection
	ctx    context.Context
	cancel context.CancelFunc
	// elicitApprovals says the person at the client is not the agent (a
	// stdio client on a person's desktop), so that a call needing approval
	// may be put to that person. Never set for an HTTP session.
	elicitApprovals bool

	// The parts with a concern, and a lock, of their own.
	link          upstreamLink     // the upstream connection, by generation
	catalog       *toolCatalog     // the upstream's tools as the gateway assessed them
	approvals     *ticketMemo      // the ticket each call waits on
	upPending     *pendingRequests // the gateway's own requests to the upstream...
	clientPending *pendingRequests // ...and to the client, so that an answer is only taken from the side its request went to
	idPrefix      string           // of the gateway's own request ids: unguessable per session
	nextID        atomic.Int64
	// closing refuses the requests read once the session stops taking them.
	closing atomic.Bool
	// quit is closed once the client has gone or the session stops taking
	// requests: what waits on the session's behalf (a chaos latency) ends.
	quit     chan struct{}
	quitOnce sync.Once

	// The relay's own state, under mu.
	mu       sync.Mutex
	inflight map[jsonrpc.ID]*inflight
	// busy counts work under way that may still answer the client or write
	// to the audit log; with inflight it says when the session has finished
	// what it took (see drain). settled is signalled whenever either falls.
	busy    int
	settled chan struct{}
	elicit  bool // the client can answer elicitation
	// relayed holds the upstream's requests to the client that wait for
	// its answer, with the upstream generation they came from: the only
	// answers of the client that go upstream.
	relayed map[jsonrpc.ID]int
	// callerTrace holds the traceparent header of the HTTP request that
	// carried a request, until the request is taken in (see tracing.go).
	callerTrace map[jsonrpc.ID]string
}

// inflight is a client request forwarded upstream and not yet answered.
type inflight struct {
	method    string
	gen       int // upstream generation it was sent to; 0 before it was sent
	call      *callState
	cancelled bool
	// span is the request's span and traceparent the caller's, when
	// traced.
	span        calltrace.Span
	spanCtx     context.Context
	traceparent string
	// abandon, when set, is closed when the client cancels the request
	// before it was sent (see forwardCall).
	abandon chan struct{}
}

// callState follows an allowed governed request (a tools/call, a resource
// read, a prompt) to its result.
type callState struct {
	req      *jsonrpc.Request
	method   string
	action   action.Action
	decision action.Decision
	digest   string
	start    int64 // clock at forwarding, in nanoseconds
	// span is the call's span and spanCtx the session's context carrying
	// it, for the decision on the result; both nil when not traced.
	span    calltrace.Span
	spanCtx context.Context
}

func newSession(ctx context.Context, g *Gateway, client sdk.Connection, who Identity, id string, elicitApprovals bool) *session {
	ctx, cancel := context.WithCancel(action.WithEnforcer(ctx, "mcp_gateway"))
	return &session{
		g: g, id: id, who: who, client: client, ctx: ctx, cancel: cancel,
		elicitApprovals: elicitApprovals,
		inflight:        map[jsonrpc.ID]*inflight{},
		settled:         make(chan struct{}, 1),
		approvals:       newTicketMemo(),
		idPrefix:        internalIDPrefix + rand.Text() + "-",
		upPending:       newPendingRequests(),
		clientPending:   newPendingRequests(),
		relayed:         map[jsonrpc.ID]int{},
		catalog:         newToolCatalog(g.cfg.Pins.Version()),
		quit:            make(chan struct{}),
	}
}

func (s *session) close() {
	s.cancel()
	s.link.close()
	s.client.Close()
}

// sessionRecord is the audit record of this session's start or end.
func (s *session) sessionRecord(event, reason string) sessionRecord {
	transport := "stdio"
	if _, ok := s.client.(*clientStream); ok {
		transport = "http"
	}
	return sessionRecord{
		Event: event, Server: s.g.cfg.Server, Session: s.id, Agent: s.who.Agent, Principal: s.who.Principal,
		Transport: transport, Reason: reason,
	}
}

// run reads the client until it goes away.
func (s *session) run() error {
	for {
		msg, err := s.client.Read(s.ctx)
		if err != nil {
			var fe *wire.FrameError
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
	s.hold()
	defer s.release()
	switch m := msg.(type) {
	case *jsonrpc.Request:
		s.fromClient(m, own)
	case *jsonrpc.Response:
		s.fromClientResponse(m)
	}
}

func isEOF(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, sdk.ErrConnectionClosed)
}

// fromClientResponse passes on the client's answer to a request, which
// must be one sent to the client: by the gateway itself (elicitation), or
// by the upstream through the gateway. Anything else is refused: an
// answer of the client must never stand in for one of the upstream's.
func (s *session) fromClientResponse(m *jsonrpc.Response) {
	if key, ok := internalKey(m.ID); ok {
		if !s.clientPending.deliver(key, m) {
			s.refuse(sideClient, "", m.ID, "it answers no request the gateway sent to the client")
		}
		return
	}
	s.mu.Lock()
	gen, ok := s.relayed[m.ID]
	delete(s.relayed, m.ID)
	s.mu.Unlock()
	if !ok {
		s.refuse(sideClient, "", m.ID, "it answers no request the upstream has pending with the client")
		return
	}
	up := s.link.of(gen)
	if up == nil {
		s.g.log.Info("answer of the client dropped: the upstream that asked has gone", "session", s.id)
		return
	}
	if err := up.Write(s.ctx, m); err != nil {
		s.g.log.Warn("response to upstream lost", "session", s.id, "err", err)
	}
}

func (s *session) fromClient(req *jsonrpc.Request, own bool) {
	if !req.IsCall() {
		s.fromClientNotification(req)
		return
	}
	if s.isClosing() {
		s.replyRefused(req.ID, "agentgov: the gateway is shutting down; the request was not sent", map[string]any{"agentgov/effect": string(action.Deny)})
		return
	}
	if _, ok := internalKey(req.ID); ok {
		s.replyError(req.ID, jsonrpc.CodeInvalidRequest, fmt.Sprintf("request ids beginning with %q are reserved for the gateway's own requests; use another id", internalIDPrefix))
		s.refuse(sideClient, req.Method, req.ID, "its id begins with the prefix the gateway reserves for its own requests")
		return
	}
	s.noteCapabilities(req.Params)
	s.mu.Lock()
	tp, traced := s.callerTrace[req.ID]
	if traced {
		delete(s.callerTrace, req.ID)
	}
	if _, dup := s.inflight[req.ID]; dup {
		s.mu.Unlock()
		s.replyError(req.ID, jsonrpc.CodeInvalidRequest, fmt.Sprintf("request id %v is already in flight", req.ID.Raw()))
		return
	}
	inf := &inflight{method: req.Method, traceparent: tp}
	s.inflight[req.ID] = inf
	s.mu.Unlock()
	switch req.Method {
	case methodInitialize:
		s.initialize(req, inf, own)
	case methodPing:
		// The gateway is the server this client speaks to; it answers for
		// itself.
		s.takeInflight(req.ID)
		s.reply(req.ID, struct{}{})
	case methodToolsCall, methodResourcesRead, methodResourcesSubscribe, methodPromptsGet:
		switch {
		case own:
			s.handleCall(req, false)
		case len(req.Params) <= inlineLimit && (req.Method != methodToolsCall || s.catalog.current()):
			s.handleCall(req, true)
		default:
			// The first call waits for the catalog, which must not hold up
			// reading the client.
			s.goHeld(func() { s.handleCall(req, false) })
		}
	default:
		s.gate(req, own)
	}
}

// fromClientNotification passes on a notification a client may send, and
// refuses any other message without an id.
func (s *session) fromClientNotification(req *jsonrpc.Request) {
	if !clientNotifications[req.Method] {
		s.refuse(sideClient, req.Method, req.ID, notificationRefusal(req.Method))
		return
	}
	switch req.Method {
	case methodInitialized:
		s.link.setStarted()
		s.sendUp(req, false)
		s.goHeld(s.loadCatalog)
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
					if inf.abandon != nil {
						close(inf.abandon)
						inf.abandon = nil
					}
				}
				s.mu.Unlock()
			}
		}
	}
	s.sendUp(req, false)
}

// notificationRefusal says why a message without an id is refused.
func notificationRefusal(method string) string {
	return fmt.Sprintf("a message without an id (or with a null one) is a notification, and %q is not one a client may send: a request sent that way would reach the upstream with nothing decided and no answer", method)
}

// initialize forwards the client's initialize, unless a kill switch stops
// the agent, and bounds the upstream's time to answer it.
func (s *session) initialize(req *jsonrpc.Request, inf *inflight, own bool) {
	if reason, stopped := s.g.stopped(s.who, s.id); stopped {
		s.takeInflight(req.ID)
		s.g.record(s.ctx, "mcp.session", s.sessionRecord("refused", reason))
		s.replyRefused(req.ID, "agentgov refused the session: "+reason, map[string]any{"agentgov/effect": string(action.Deny), "agentgov/code": errcode.PolicyDenied})
		return
	}
	var p struct {
		Capabilities struct {
			Elicitation json.RawMessage `json:"elicitation"`
		} `json:"capabilities"`
	}
	_ = json.Unmarshal(req.Params, &p)
	s.mu.Lock()
	s.elicit = len(p.Capabilities.Elicitation) > 0 && string(p.Capabilities.Elicitation) != "null"
	s.mu.Unlock()
	s.link.setInit(req.Params)
	// An upstream that never answers would hold the client, and the
	// session with its upstream process, for good.
	timer := time.AfterFunc(s.g.cfg.InitTimeout, func() {
		s.mu.Lock()
		if s.inflight[req.ID] != inf {
			s.mu.Unlock()
			return
		}
		delete(s.inflight, req.ID)
		gen := inf.gen
		s.mu.Unlock()
		defer s.signal()
		err := fmt.Errorf("upstream MCP server %q did not answer initialize within %v", s.g.cfg.Server, s.g.cfg.InitTimeout)
		s.replyError(req.ID, codeUpstreamFailure, err.Error())
		if gen > 0 {
			s.upstreamDied(gen, err)
		}
	})
	context.AfterFunc(s.ctx, func() { timer.Stop() })
	s.forward(req, own)
}

// gate forwards a request that no policy decides (a listing, a
// completion, the end of a subscription, ...): it is still refused to an
// agent a kill switch stops, and it is in the audit log either way.
func (s *session) gate(req *jsonrpc.Request, own bool) {
	if !own && s.g.cfg.Recorder != nil {
		// The audit append waits for a commit, which must not hold up
		// reading the client.
		s.goHeld(func() { s.gate(req, true) })
		return
	}
	if s.g.cfg.Tracer != nil {
		s.startSpan(req, calltrace.Call{Operation: calltrace.Request})
	}
	reason, stopped := s.g.stopped(s.who, s.id)
	rec := requestRecord{
		Server: s.g.cfg.Server, Session: s.id, Agent: s.who.Agent, Principal: s.who.Principal,
		Method: truncate(req.Method, 128), Effect: action.Allow,
	}
	if stopped {
		rec.Effect, rec.Reason = action.Deny, reason
	}
	err := s.g.record(s.ctx, "mcp.request", rec)
	switch {
	case stopped:
		if inf := s.takeInflight(req.ID); inf != nil {
			endSpan(inf.span, refusedResult(denial(reason), reason))
		}
		s.replyRefused(req.ID, fmt.Sprintf("agentgov refused %s: %s", req.Method, reason), map[string]any{"agentgov/effect": string(action.Deny), "agentgov/code": errcode.PolicyDenied})
		return
	case err != nil:
		if inf := s.takeInflight(req.ID); inf != nil {
			endSpan(inf.span, calltrace.Result{ErrorType: string(errcode.Unavailable), Error: err.Error()})
		}
		s.replyRefused(req.ID, fmt.Sprintf("agentgov refused %s: it could not be written to the audit log: %v", req.Method, err), map[string]any{"agentgov/effect": string(action.Deny), "agentgov/code": errcode.Unavailable})
		return
	}
	s.mu.Lock()
	inf := s.inflight[req.ID]
	cancelled := inf == nil || inf.cancelled
	s.mu.Unlock()
	if cancelled {
		if inf := s.takeInflight(req.ID); inf != nil { // the client gave up while it was audited
			endSpan(inf.span, calltrace.Result{ErrorType: "cancelled"})
		}
		return
	}
	s.forward(req, own)
}

// refuse audits a message refused for misusing the protocol.
func (s *session) refuse(from, method string, id jsonrpc.ID, reason string) {
	rec := refusalRecord{
		Server: s.g.cfg.Server, Session: s.id, Agent: s.who.Agent, Principal: s.who.Principal,
		From: from, Method: truncate(method, 128), Reason: reason,
	}
	switch v := id.Raw().(type) {
	case string:
		rec.ID = truncate(v, 128)
	case int64:
		rec.ID = v
	}
	s.g.log.Warn("mcp message refused", "session", s.id, "from", from, "method", rec.Method, "id", rec.ID, "reason", reason)
	s.g.record(s.ctx, "mcp.refused", rec)
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
	if s.g.cfg.Tracer != nil {
		s.propagate(req)
	}
	if err := s.sendUp(req, own); err != nil {
		if inf := s.takeInflight(req.ID); inf != nil {
			msg := fmt.Sprintf("upstream MCP server %q is unavailable: %v", s.g.cfg.Server, err)
			s.replyError(req.ID, codeUpstreamFailure, msg)
			endSpan(inf.span, calltrace.Result{ErrorType: "unavailable", Error: msg})
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
	if ww, ok := up.(wire.WaitingWriter); ok && own {
		write = ww.WriteAndWait
	}
	if err := write(s.ctx, msg); err != nil {
		s.upstreamDied(gen, err)
		return fmt.Errorf("write to upstream: %w", err)
	}
	return nil
}

func (s *session) upstream() (sdk.Connection, int, error) {
	return s.link.get(s.dialUpstream)
}

// dialUpstream opens generation gen of the upstream connection, brought
// to where the client believes the upstream is when it is a restart.
func (s *session) dialUpstream(gen int, r restart) (sdk.Connection, bool, error) {
	if s.ctx.Err() != nil {
		return nil, false, s.ctx.Err()
	}
	up, err := s.g.cfg.Dial(s.ctx)
	if err != nil {
		return nil, false, fmt.Errorf("start upstream: %w", err)
	}
	if p, ok := up.(wire.Pusher); ok {
		p.PushTo(func(m jsonrpc.Message) { s.fromUpstream(m, gen) })
	}
	go s.readUpstream(up, gen)
	if r.again && r.init != nil {
		// A restarted upstream: bring it to where the client believes it
		// is, within the same bound as the client's own initialize.
		ctx, cancel := context.WithTimeout(s.ctx, s.g.cfg.InitTimeout)
		resp, err := s.callOn(ctx, up, s.upPending, methodInitialize, r.init)
		cancel()
		if err == nil && resp.Error != nil {
			err = resp.Error
		}
		if err != nil {
			up.Close()
			return nil, true, fmt.Errorf("re-initialise restarted upstream: %w", err)
		}
		if r.started {
			n := &jsonrpc.Request{Method: methodInitialized, Params: json.RawMessage(`{}`)}
			if err := up.Write(s.ctx, n); err != nil {
				up.Close()
				return nil, true, fmt.Errorf("re-initialise restarted upstream: %w", err)
			}
			s.catalog.markStale()
			s.goHeld(s.loadCatalog)
		}
		s.g.log.Info("upstream restarted", "server", s.g.cfg.Server, "session", s.id)
	}
	return up, true, nil
}

// upstreamDied fails every request sent to generation gen, so that no
// client waits for an answer that cannot come.
func (s *session) upstreamDied(gen int, cause error) {
	s.hold()
	defer s.release()
	s.link.drop(gen)
	if s.ctx.Err() != nil {
		return
	}
	s.mu.Lock()
	var failed []jsonrpc.ID
	var calls []*callState
	var spans []calltrace.Span
	for id, inf := range s.inflight {
		if inf.gen == gen {
			failed = append(failed, id)
			if inf.call != nil {
				calls = append(calls, inf.call)
			} else if inf.span != nil {
				spans = append(spans, inf.span)
			}
			delete(s.inflight, id)
		}
	}
	for id, g := range s.relayed {
		if g == gen {
			delete(s.relayed, id)
		}
	}
	s.mu.Unlock()
	s.upPending.closeAll()
	msg := fmt.Sprintf("upstream MCP server %q closed the connection: %v", s.g.cfg.Server, cause)
	s.g.log.Warn("upstream died", "server", s.g.cfg.Server, "session", s.id, "err", cause)
	for _, id := range failed {
		s.replyError(id, codeUpstreamFailure, msg)
	}
	for _, sp := range spans {
		sp.End(calltrace.Result{ErrorType: "upstream_closed", Error: msg})
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
		s.fromUpstream(msg, gen)
	}
}

// fromUpstream acts on one message from upstream generation gen. It may
// run on several goroutines at once (see wire.Pusher). An answer is taken
// only for a request that went upstream: the client's, or the gateway's
// own.
func (s *session) fromUpstream(msg jsonrpc.Message, gen int) {
	switch m := msg.(type) {
	case *jsonrpc.Response:
		// Held from before its request leaves inflight until its result
		// is recorded, so that a drain never sees the session idle between.
		s.hold()
		defer s.release()
		if key, ok := internalKey(m.ID); ok {
			if !s.upPending.deliver(key, m) {
				s.refuse(sideUpstream, "", m.ID, "it answers no request the gateway sent upstream")
			}
			return
		}
		inf := s.takeInflight(m.ID)
		if inf != nil && inf.call == nil && inf.span != nil {
			inf.span.End(answerResult(m.Error))
		}
		switch {
		case inf == nil:
			// Nothing waits for it: the gateway already answered the
			// client (a timeout, a dead upstream), or nobody asked.
			s.g.log.Info("answer of the upstream dropped: no request of the client waits for it", "session", s.id, "id", m.ID.Raw())
		case inf.call != nil:
			if len(m.Result) <= inlineLimit {
				s.finishCall(inf.call, m, true)
			} else {
				s.goHeld(func() { s.finishCall(inf.call, m, false) })
			}
		case inf.method == methodToolsList:
			s.goHeld(func() { s.filterList(m) })
		default:
			s.toClient(m)
		}
	case *jsonrpc.Request:
		if m.IsCall() && !s.relayToClient(m, gen) {
			return
		}
		if m.Method == methodListChanged {
			s.catalog.markStale()
			s.goHeld(s.loadCatalog)
		}
		if err := s.client.Write(s.ctx, m); err != nil && s.ctx.Err() == nil {
			s.g.log.Warn("write to client failed", "session", s.id, "err", err)
			if m.IsCall() {
				// Nobody will answer it: say so, rather than leave the
				// upstream waiting.
				s.mu.Lock()
				delete(s.relayed, m.ID)
				s.mu.Unlock()
				s.answerUpstream(gen, m.ID, fmt.Sprintf("the client cannot be reached: %v", err))
			}
		}
	}
}

// relayToClient notes a request of the upstream to the client, so that
// the client's answer may go back; false means it was refused.
func (s *session) relayToClient(m *jsonrpc.Request, gen int) bool {
	if _, ok := internalKey(m.ID); ok {
		s.refuse(sideUpstream, m.Method, m.ID, "its id begins with the prefix the gateway reserves for its own requests")
		s.answerUpstream(gen, m.ID, fmt.Sprintf("request ids beginning with %q are reserved for the gateway's own requests", internalIDPrefix))
		return false
	}
	s.mu.Lock()
	if len(s.relayed) >= maxRelayed {
		s.mu.Unlock()
		s.answerUpstream(gen, m.ID, fmt.Sprintf("more than %d requests to the client are waiting for an answer", maxRelayed))
		return false
	}
	s.relayed[m.ID] = gen
	s.mu.Unlock()
	return true
}

// answerUpstream answers a request of upstream generation gen with an
// error, if that upstream is still the session's.
func (s *session) answerUpstream(gen int, id jsonrpc.ID, msg string) {
	if up := s.link.of(gen); up != nil {
		_ = up.Write(s.ctx, &jsonrpc.Response{ID: id, Error: &jsonrpc.Error{Code: jsonrpc.CodeInvalidRequest, Message: "agentgov gateway: " + msg}})
	}
}

func (s *session) takeInflight(id jsonrpc.ID) *inflight {
	s.mu.Lock()
	defer s.mu.Unlock()
	inf := s.inflight[id]
	delete(s.inflight, id)
	s.signal()
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

// replyRefused answers a request agentgov refused with codeRefused and the
// decision's particulars as the error's data.
func (s *session) replyRefused(id jsonrpc.ID, msg string, data map[string]any) {
	e := &jsonrpc.Error{Code: codeRefused, Message: msg}
	if raw, err := json.Marshal(data); err == nil {
		e.Data = raw
	}
	s.toClient(&jsonrpc.Response{ID: id, Error: e})
}

// callOn sends a request of the gateway's own to conn and waits for its
// answer, which is taken only from pending: s.upPending for a request to
// the upstream, s.clientPending for one to the client. Its id is the
// session's unguessable prefix and a counter; the ids the client and the
// upstream may use never begin with internalIDPrefix.
func (s *session) callOn(ctx context.Context, conn sdk.Connection, pending *pendingRequests, method string, params any) (*jsonrpc.Response, error) {
	raw, err := json.Marshal(params)
	if err != nil {
		return nil, err
	}
	key := s.idPrefix + strconv.FormatInt(s.nextID.Add(1), 10)
	ch := pending.add(key)
	defer pending.remove(key)
	id, _ := jsonrpc.MakeID(key)
	if err := conn.Write(ctx, &jsonrpc.Request{ID: id, Method: method, Params: raw}); err != nil {
		return nil, err
	}
	select {
	case resp, ok := <-ch:
		if !ok {
			return nil, errors.New("connection closed before the answer")
		}
		return resp, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("no answer to %s: %w", method, ctx.Err())
	}
}

// internalKey returns id as a string when it begins with internalIDPrefix.
func internalKey(id jsonrpc.ID) (string, bool) {
	key, ok := id.Raw().(string)
	return key, ok && strings.HasPrefix(key, internalIDPrefix)
}

// loadCatalog lists the upstream's tools itself, all pages, and assesses
// them against the pins.
func (s *session) loadCatalog() {
	s.catalog.load(s.g.now, func() (map[string]*toolState, error) {
		tools, err := s.listTools()
		if err != nil {
			return nil, err
		}
		names := make([]string, 0, len(tools))
		for _, t := range tools {
			names = append(names, t.Name)
		}
		s.g.cfg.Registry.set(s.g.cfg.Server, names)
		return s.g.assess(s.ctx, tools, true), nil
	})
}

func (s *session) listTools() ([]pin.ToolDef, error) {
	up, _, err := s.upstream()
	if err != nil {
		return nil, err
	}
	// Calls wait for this listing: an upstream that never finishes it
	// must not hold them for good.
	ctx, cancel := context.WithTimeout(s.ctx, s.g.cfg.InitTimeout)
	defer cancel()
	var tools []pin.ToolDef
	cursor := ""
	for page := 0; ; page++ {
		if page > 1000 {
			return nil, errors.New("tools/list: more than 1000 pages")
		}
		params := map[string]any{}
		if cursor != "" {
			params["cursor"] = cursor
		}
		resp, err := s.callOn(ctx, up, s.upPending, methodToolsList, params)
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

func parseToolsPage(result json.RawMessage) ([]pin.ToolDef, string, error) {
	var page struct {
		Tools      []json.RawMessage `json:"tools"`
		NextCursor string            `json:"nextCursor"`
	}
	if err := json.Unmarshal(result, &page); err != nil {
		return nil, "", fmt.Errorf("tools/list result: %w", err)
	}
	defs := make([]pin.ToolDef, 0, len(page.Tools))
	for _, raw := range page.Tools {
		t, err := pin.ParseToolDef(raw)
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
	if s.catalog.claimListing(s.g.cfg.Pins.Version()) || s.catalog.expire(s.g.now(), s.g.cfg.RelistInterval) {
		s.goHeld(s.loadCatalog)
	}
	retried := false
	for {
		ch, done, cat, err := s.catalog.state()
		if done {
			if err != nil && !retried {
				// A listing that failed, most often because the upstream
				// went away while answering it, is no catalog: list again.
				retried = true
				s.catalog.markStale()
				s.goHeld(s.loadCatalog)
				continue
			}
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
	defs := make([]pin.ToolDef, 0, len(raws))
	keep := make([]json.RawMessage, 0, len(raws))
	for _, raw := range raws {
		t, err := pin.ParseToolDef(raw)
		if err != nil {
			continue // a tool that cannot be read cannot be pinned
		}
		defs = append(defs, t)
	}
	states := s.g.assess(s.ctx, defs, false)
	s.catalog.update(states)
	for _, raw := range raws {
		t, err := pin.ParseToolDef(raw)
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
		return nil, fmt.Errorf("arguments must be a JSON object: %s", errcode.DescribeJSON(err))
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
