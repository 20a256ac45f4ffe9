package telemetry

import (
	"context"
	"testing"

	"github.com/agentgov/agentgov/calltrace"
)

// BenchmarkCallSpan is what a traced call adds on its path: its span
// started (joined to the caller's traceparent), its traceparent for the
// upstream, its end with usage, handed to the batcher of a real OTLP/HTTP
// receiver.
func BenchmarkCallSpan(b *testing.B) {
	r := newReceiver(b)
	cfg := Config{OTLP: OTLP{Endpoint: r.URL}}
	cfg.Fill()
	tr, err := New(context.Background(), cfg, "agentgov", "bench")
	if err != nil {
		b.Fatal(err)
	}
	defer tr.Shutdown(context.Background())
	call := calltrace.Call{Operation: calltrace.Chat, Name: "gpt-4o-mini", Provider: "openai", Address: "api.openai.com",
		TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
	b.ReportAllocs()
	for b.Loop() {
		_, sp := tr.Start(context.Background(), call)
		_ = sp.TraceParent()
		sp.End(calltrace.Result{Effect: "allow", Decision: "dec_01", ResponseModel: "gpt-4o-mini-2024-07-18", Usage: true, InputTokens: 12, OutputTokens: 3})
	}
}
