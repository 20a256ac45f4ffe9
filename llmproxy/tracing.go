package llmproxy

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/calltrace"
	"github.com/agentgov/agentgov/errcode"
)

// providerNames are the GenAI semantic conventions' gen_ai.provider.name
// of the upstreams.
var providerNames = map[string]string{"openai": "openai", "anthropic": "anthropic", "google": "gcp.gemini"}

// startSpan starts the span of a call about to be decided, in the trace of
// the caller's traceparent if it sent one.
func (p *proxy) startSpan(ctx context.Context, r *http.Request, c *call, up *upstream) (context.Context, calltrace.Span) {
	op := calltrace.Chat
	if c.embedding {
		op = calltrace.Embeddings
	}
	return p.tracer.Start(ctx, calltrace.Call{
		Operation:   op,
		Name:        c.model,
		Provider:    providerNames[up.name],
		Address:     up.host,
		Session:     r.Header.Get(HeaderSession),
		TraceParent: r.Header.Get("Traceparent"),
	})
}

// endRefused ends the span of a call that was not forwarded: error.type is
// the refusal's code.
func endRefused(span calltrace.Span, code errcode.Code, msg string, dec action.Decision) {
	if span == nil {
		return
	}
	r := calltrace.Result{ErrorType: string(code), Error: msg, Effect: string(dec.Effect)}
	if !dec.ID.IsZero() {
		r.Decision = dec.ID.String()
	}
	span.End(r)
}

// endSpan ends the span of a forwarded call with its outcome; failure is
// the upstream's failure as the metrics name it, its error.type.
func (s *settlement) endSpan(o action.Outcome, failure string) {
	s.span.End(calltrace.Result{
		ErrorType: failure, Error: o.Error,
		Effect: string(action.Allow), Decision: s.id.String(),
		ResponseModel: s.respModel,
		Usage:         s.reported, InputTokens: o.InputTokens, OutputTokens: o.OutputTokens,
	})
}

// responseModel is the model an answer (or an OpenAI stream chunk) names,
// or with nested an Anthropic message_start event; read only for a traced
// call's span, so that an untraced call decodes nothing more.
func responseModel(data []byte, nested bool) string {
	var doc struct {
		Model   json.RawMessage `json:"model"`
		Message struct {
			Model json.RawMessage `json:"model"`
		} `json:"message"`
	}
	if json.Unmarshal(data, &doc) != nil {
		return ""
	}
	raw := doc.Model
	if nested {
		raw = doc.Message.Model
	}
	var m string
	if len(raw) == 0 || json.Unmarshal(raw, &m) != nil {
		return ""
	}
	return m
}
