package llmproxy

import (
	"testing"

	"github.com/agentgov/agentgov/calltrace/calltracetest"
)

const callerTraceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

// With a tracer, each model call is a span (chat or embeddings, the
// provider's name in the semantic conventions' words) in the caller's
// trace, ended once with the provider's usage and answering model, or
// with what went wrong; the provider is sent the span's traceparent.
func TestModelCallSpans(t *testing.T) {
	tr := &calltracetest.Recorder{}
	r := newRig(t, func(c *Config) { c.Tracer = tr })

	for _, tc := range []struct {
		path, body, op, provider, model string
		in, out                         int64
	}{
		{"/llm/v1/chat/completions", `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`, "chat", "openai", "gpt-4o-mini", chatPromptTokens, chatCompletionTokens},
		{"/llm/v1/chat/completions", `{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}`, "chat", "openai", "gpt-4o-mini", chatPromptTokens, chatCompletionTokens},
		{"/llm/anthropic/v1/messages", `{"model":"claude-haiku-4-5","max_tokens":5,"stream":true,"messages":[{"role":"user","content":"hi"}]}`, "chat", "anthropic", "claude-haiku-4-5", msgInputTokens + msgCacheReadTokens, msgOutputTokens},
		{"/llm/v1/embeddings", `{"model":"text-embedding-3-small","input":["alpha"]}`, "embeddings", "openai", "text-embedding-3-small", embedTokens, 0},
	} {
		res := r.do("POST", tc.path, tc.body, "Traceparent", callerTraceparent, "Tracestate", "vendor=1")
		if res.status != 200 {
			t.Fatalf("%s: %d %s", tc.body, res.status, res.body)
		}
		s := tr.Last(t)
		c, e := s.Call, s.Ended
		if c.Operation != tc.op || c.Provider != tc.provider || c.Name != tc.model || c.Address != "127.0.0.1" || c.TraceParent != callerTraceparent {
			t.Errorf("%s: call %+v", tc.body, c)
		}
		if s.Ends != 1 || e.ErrorType != "" || e.Effect != "allow" || e.Decision != res.header.Get(HeaderDecision) ||
			!e.Usage || e.InputTokens != tc.in || e.OutputTokens != tc.out || e.ResponseModel != tc.model {
			t.Errorf("%s: ended %d times with %+v", tc.body, s.Ends, e)
		}
		h := r.up.last().Header
		if h.Get("Traceparent") != s.TraceParent() || h.Get("Tracestate") != "vendor=1" {
			t.Errorf("%s: the provider got traceparent %q tracestate %q, want the span's and the caller's", tc.body, h.Get("Traceparent"), h.Get("Tracestate"))
		}
	}

	sent := len(r.up.seen())
	res := r.do("POST", "/llm/v1/chat/completions", `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"forbidden"}]}`)
	if s := tr.Last(t); res.status != 403 || s.Ends != 1 || s.Ended.ErrorType != "policy_denied" || s.Ended.Effect != "deny" || len(r.up.seen()) != sent {
		t.Errorf("denied call: %d, span %+v", res.status, s)
	}
	res = r.do("POST", "/llm/v1/chat/completions", `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"upstream-error"}]}`)
	if s := tr.Last(t); res.status != 400 || s.Ended.ErrorType != "http_4xx" || s.Ended.Error != "upstream answered 400" || s.Ended.Usage {
		t.Errorf("upstream error: %d, span %+v", res.status, s)
	}
}

// Without a tracer the proxy passes the caller's trace headers to the
// provider as they came, so its spans still join the caller's trace.
func TestUntracedProxyPassesTheCallersTraceHeaders(t *testing.T) {
	r := newRig(t, nil)
	if res := r.do("POST", "/llm/v1/chat/completions", `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`, "Traceparent", callerTraceparent, "Tracestate", "vendor=1"); res.status != 200 {
		t.Fatalf("%d %s", res.status, res.body)
	}
	if h := r.up.last().Header; h.Get("Traceparent") != callerTraceparent || h.Get("Tracestate") != "vendor=1" {
		t.Errorf("the provider got traceparent %q tracestate %q", h.Get("Traceparent"), h.Get("Tracestate"))
	}
}
