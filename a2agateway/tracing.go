package a2agateway

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/agentgov/agentgov/calltrace"
)

// upstreamTraceKey carries the traceparent the upstream agent is sent.
type upstreamTraceKey struct{}

// startSpan starts the span of a message to the agent, in the trace of
// the caller's traceparent if it sent one; nil without a tracer.
func (g *Gateway) startSpan(ctx context.Context, r *http.Request, c *call) (context.Context, calltrace.Span) {
	if g.cfg.Tracer == nil {
		return ctx, nil
	}
	host := ""
	if u, err := url.Parse(g.cfg.URL); err == nil {
		host = u.Hostname()
	}
	ctx, span := g.cfg.Tracer.Start(ctx, calltrace.Call{
		Operation: calltrace.Agent, Name: g.cfg.Name, Upstream: g.cfg.Name, Address: host,
		Session: c.session, TraceParent: r.Header.Get("Traceparent"),
	})
	return context.WithValue(ctx, upstreamTraceKey{}, span.TraceParent()), span
}

// endSpan ends a message's span; error.type is the JSON-RPC error's code
// the caller was answered with (a refusal, the upstream's failure).
func endSpan(span calltrace.Span, e *rpcError) {
	if span == nil {
		return
	}
	var r calltrace.Result
	if e != nil {
		r.ErrorType, r.Error = strconv.FormatInt(e.Code, 10), e.Message
	}
	span.End(r)
}
