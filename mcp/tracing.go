package mcp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/calltrace"
	"github.com/agentgov/agentgov/mcp/wire"
)

// With a Config.Tracer, every request the gateway decides or forwards
// upstream is a span (execute_tool {tool} for a tools/call, {method}
// {target} for the others), joined to the caller's trace: the
// params._meta.traceparent of the request (the MCP convention) or else
// the traceparent header of the HTTP request that carried it. The
// decision's span is its child, and the request goes upstream with the
// span's own traceparent in its _meta, so that the server's spans join
// too. Without a tracer none of this runs.

// noteTraceparent remembers the traceparent header of the HTTP request
// that carried msgs, for the spans of the requests among them.
func (s *session) noteTraceparent(msgs []jsonrpc.Message, tp string) {
	if len(tp) > 128 {
		return // no valid traceparent is this long
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range msgs {
		if req, ok := m.(*jsonrpc.Request); ok && req.IsCall() {
			if s.callerTrace == nil {
				s.callerTrace = map[jsonrpc.ID]string{}
			}
			s.callerTrace[req.ID] = tp
		}
	}
}

// metaTraceparent is params._meta.traceparent, if the request has one.
func metaTraceparent(params json.RawMessage) string {
	if !bytes.Contains(params, []byte(`"traceparent"`)) {
		return ""
	}
	var p struct {
		Meta struct {
			TraceParent json.RawMessage `json:"traceparent"`
		} `json:"_meta"`
	}
	var tp string
	if json.Unmarshal(params, &p) != nil || json.Unmarshal(p.Meta.TraceParent, &tp) != nil || len(tp) > 128 {
		return ""
	}
	return tp
}

// startSpan starts the span of request req, keeps it with the request in
// flight, and returns the session's context carrying it, for the decision.
func (s *session) startSpan(req *jsonrpc.Request, c calltrace.Call) context.Context {
	c.Method, c.Upstream, c.Session = req.Method, s.g.cfg.Server, s.id
	c.CallID = fmt.Sprint(req.ID.Raw())
	s.mu.Lock()
	inf := s.inflight[req.ID]
	if inf != nil {
		c.TraceParent = inf.traceparent
	}
	s.mu.Unlock()
	if tp := metaTraceparent(req.Params); tp != "" {
		c.TraceParent = tp
	}
	ctx, sp := s.g.cfg.Tracer.Start(s.ctx, c)
	s.mu.Lock()
	kept := inf != nil && s.inflight[req.ID] == inf
	if kept {
		inf.span, inf.spanCtx = sp, ctx
	}
	s.mu.Unlock()
	if !kept {
		sp.End(calltrace.Result{ErrorType: "cancelled", Error: "the client gave up on the request"})
	}
	return ctx
}

// governedSpan starts the span of a request the gateway decides.
func (s *session) governedSpan(req *jsonrpc.Request, p governedRequest) context.Context {
	c := calltrace.Call{Operation: calltrace.Request}
	switch p.method {
	case methodToolsCall:
		c.Operation, c.Name = calltrace.Tool, p.tool
	case methodResourcesRead, methodResourcesSubscribe:
		c.Name, _ = p.args["uri"].(string)
	case methodPromptsGet:
		c.Name, _ = p.args["name"].(string)
	}
	return s.startSpan(req, c)
}

// traced is ctx, or the context carrying the call's span when it has one,
// so that the decision on its result is a child of the span too.
func (c *callState) traced(ctx context.Context) context.Context {
	if c.spanCtx != nil {
		return c.spanCtx
	}
	return ctx
}

type callerTraceKey struct{}

// withCallerTrace is r's context, carrying its traceparent header when
// the gateway traces, for a request relayed through the agent's
// stateless session.
func (h *HTTPHandler) withCallerTrace(r *http.Request) context.Context {
	tp := r.Header.Get("Traceparent")
	if tp == "" || h.g.cfg.Tracer == nil {
		return r.Context()
	}
	return context.WithValue(r.Context(), callerTraceKey{}, tp)
}

// endSpan ends a span, if there is one.
func endSpan(sp calltrace.Span, r calltrace.Result) {
	if sp != nil {
		sp.End(r)
	}
}

// refusedResult is how the span of a call the gateway refused ends.
func refusedResult(d action.Decision, why string) calltrace.Result {
	r := calltrace.Result{ErrorType: string(d.RefusalCode()), Error: why, Effect: string(d.Effect)}
	if !d.ID.IsZero() {
		r.Decision = d.ID.String()
	}
	return r
}

// answerResult is how the span of a forwarded request ends with the
// upstream's answer: error.type is a JSON-RPC error's code.
func answerResult(err error) calltrace.Result {
	if err == nil {
		return calltrace.Result{}
	}
	r := calltrace.Result{ErrorType: "error", Error: err.Error()}
	var we *jsonrpc.Error
	if errors.As(err, &we) {
		r.ErrorType = strconv.FormatInt(we.Code, 10)
	}
	return r
}

// propagate puts the traceparent of req's span in its _meta, for the
// upstream; the caller's own, if it sent one there, is replaced, since
// the upstream's spans are children of the gateway's.
func (s *session) propagate(req *jsonrpc.Request) {
	s.mu.Lock()
	var sp calltrace.Span
	if inf := s.inflight[req.ID]; inf != nil {
		sp = inf.span
	}
	s.mu.Unlock()
	if sp == nil {
		return
	}
	var p map[string]json.RawMessage
	if len(req.Params) > 0 && !wire.IsNull(req.Params) {
		if json.Unmarshal(req.Params, &p) != nil {
			return // not an object: the upstream will say so
		}
	}
	if p == nil {
		p = map[string]json.RawMessage{}
	}
	meta := map[string]json.RawMessage{}
	if m, ok := p["_meta"]; ok && !wire.IsNull(m) {
		if json.Unmarshal(m, &meta) != nil {
			return
		}
	}
	meta["traceparent"], _ = json.Marshal(sp.TraceParent())
	p["_meta"], _ = json.Marshal(meta)
	if b, err := json.Marshal(p); err == nil {
		req.Params = b
	}
}

// endSpanWithError ends the span of an allowed call the upstream answered
// with a JSON-RPC error: error.type is its code.
func (c *callState) endSpanWithError(err error) {
	if c.span == nil {
		return
	}
	r := answerResult(err)
	r.Effect, r.Decision = string(c.decision.Effect), c.decision.ID.String()
	c.span.End(r)
}

// settledResult is how the span of an allowed call ends: error.type is
// tool_error for a tool's own error result, error for a malformed answer
// or an upstream that failed (a JSON-RPC error's span has ended with its
// code already), withheld when the post-call decision kept the result
// from the client.
func settledResult(c *callState, status, errText string, rr *resultRecord) calltrace.Result {
	r := calltrace.Result{Effect: string(c.decision.Effect)}
	if !c.decision.ID.IsZero() {
		r.Decision = c.decision.ID.String()
	}
	switch {
	case status != "ok" && rr != nil && !rr.rpcError:
		r.ErrorType, r.Error = "tool_error", errText
	case status != "ok":
		r.ErrorType, r.Error = "error", errText
	case rr != nil && rr.Withheld:
		r.ErrorType, r.Error = "withheld", "the post-call decision withheld the result"
	}
	return r
}
