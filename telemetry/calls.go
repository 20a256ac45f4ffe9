package telemetry

import (
	"context"
	"sync"
	"unicode/utf8"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/agentgov/agentgov/calltrace"
)

var _ calltrace.Tracer = (*Tracing)(nil)

// Start implements calltrace.Tracer: the span of one upstream call, named
// and attributed after the GenAI semantic conventions (and the MCP ones
// for the gateway's requests), a child of the caller's traceparent when
// it sent one. The decision made with the returned context is a child of
// this span, so the caller's trace holds both.
func (t *Tracing) Start(ctx context.Context, c calltrace.Call) (context.Context, calltrace.Span) {
	if c.TraceParent != "" && !trace.SpanContextFromContext(ctx).IsValid() {
		ctx = propagation.TraceContext{}.Extract(ctx, carrier(c.TraceParent))
	}
	// What a caller chose (a model's name, a resource's URI, a request
	// id) is bounded before it reaches a span and the collector.
	c.Name, c.CallID, c.Session = truncate(c.Name, maxAttr), truncate(c.CallID, maxAttr), truncate(c.Session, maxAttr)
	attrs := make([]attribute.KeyValue, 0, 10)
	if c.Operation != "" {
		attrs = append(attrs, attribute.String("gen_ai.operation.name", c.Operation))
	}
	switch c.Operation {
	case calltrace.Tool:
		attrs = append(attrs, attribute.String("gen_ai.tool.name", c.Name))
		if c.CallID != "" {
			attrs = append(attrs, attribute.String("gen_ai.tool.call.id", c.CallID))
		}
	case calltrace.Chat, calltrace.Embeddings:
		attrs = append(attrs, attribute.String("gen_ai.request.model", c.Name))
	case calltrace.Agent:
		attrs = append(attrs, attribute.String("gen_ai.agent.name", c.Name))
	}
	if c.Provider != "" {
		attrs = append(attrs, attribute.String("gen_ai.provider.name", c.Provider))
	}
	if c.Method != "" {
		attrs = append(attrs, attribute.String("mcp.method.name", c.Method))
		if c.CallID != "" {
			attrs = append(attrs, attribute.String("jsonrpc.request.id", c.CallID))
		}
		if c.Session != "" {
			attrs = append(attrs, attribute.String("mcp.session.id", c.Session))
		}
	} else if c.Session != "" {
		attrs = append(attrs, attribute.String("gen_ai.conversation.id", c.Session))
	}
	if c.Upstream != "" {
		attrs = append(attrs, attribute.String("agentgov.upstream", c.Upstream))
	}
	if c.Address != "" {
		attrs = append(attrs, attribute.String("server.address", c.Address))
	}
	ctx, span := t.tracer.Start(ctx, spanName(c), trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
	return ctx, &callSpan{span: span}
}

// spanName is "{gen_ai.operation.name} {name}", or for another MCP
// request "{mcp.method.name} {target}".
func spanName(c calltrace.Call) string {
	op := c.Operation
	if op == calltrace.Request {
		op = c.Method
	}
	if c.Name == "" {
		return op
	}
	return op + " " + c.Name
}

type callSpan struct {
	span trace.Span
	once sync.Once
}

// TraceParent implements calltrace.Span.
func (s *callSpan) TraceParent() string {
	sc := s.span.SpanContext()
	flags := "00"
	if sc.IsSampled() {
		flags = "01"
	}
	return "00-" + sc.TraceID().String() + "-" + sc.SpanID().String() + "-" + flags
}

// End implements calltrace.Span.
func (s *callSpan) End(r calltrace.Result) {
	s.once.Do(func() {
		sp := s.span
		attrs := make([]attribute.KeyValue, 0, 6)
		if r.Effect != "" {
			attrs = append(attrs, attribute.String("agentgov.decision.effect", r.Effect))
		}
		if r.Decision != "" {
			attrs = append(attrs, attribute.String("agentgov.decision.id", r.Decision))
		}
		if r.ResponseModel != "" {
			attrs = append(attrs, attribute.String("gen_ai.response.model", truncate(r.ResponseModel, maxAttr)))
		}
		if r.Usage {
			attrs = append(attrs, attribute.Int64("gen_ai.usage.input_tokens", r.InputTokens), attribute.Int64("gen_ai.usage.output_tokens", r.OutputTokens))
		}
		if r.ErrorType != "" {
			attrs = append(attrs, attribute.String("error.type", truncate(r.ErrorType, maxAttr)))
			msg := r.Error
			if msg == "" {
				msg = r.ErrorType
			}
			sp.SetStatus(codes.Error, truncate(msg, maxAttr))
		}
		sp.SetAttributes(attrs...)
		sp.End()
	})
}

// maxAttr bounds the strings of a span that its caller or its upstream
// chose.
const maxAttr = 256

// truncate cuts s to at most n bytes, at a character's start.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
