// Package calltracetest records the spans a transport starts, for the
// tests of the packages that trace their calls.
package calltracetest

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/agentgov/agentgov/calltrace"
)

// Recorder is a calltrace.Tracer that keeps every call's start and end, as
// the telemetry package's tracer would export them.
type Recorder struct {
	mu    sync.Mutex
	spans []*Span
}

// Span is one recorded call.
type Span struct {
	r    *Recorder
	Call calltrace.Call
	// ID is the span's id in its traceparent.
	ID string
	// Ends counts the calls of End: a span must end once.
	Ends int
	// Ended is what the first End reported.
	Ended calltrace.Result
}

// Start records c.
func (r *Recorder) Start(ctx context.Context, c calltrace.Call) (context.Context, calltrace.Span) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := &Span{r: r, Call: c, ID: fmt.Sprintf("%016x", len(r.spans)+1)}
	r.spans = append(r.spans, s)
	return ctx, s
}

// TraceParent is the span's W3C traceparent, in one fixed trace.
func (s *Span) TraceParent() string {
	return "00-0af7651916cd43dd8448eb211c80319c-" + s.ID + "-01"
}

// End records how the call ended.
func (s *Span) End(res calltrace.Result) {
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	if s.Ends++; s.Ends == 1 {
		s.Ended = res
	}
}

// All is a copy of every span so far, oldest first.
func (r *Recorder) All() []Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Span, len(r.spans))
	for i, s := range r.spans {
		out[i] = *s
	}
	return out
}

// Find is a copy of the spans of method and name.
func (r *Recorder) Find(method, name string) []Span {
	var out []Span
	for _, s := range r.All() {
		if s.Call.Method == method && s.Call.Name == name {
			out = append(out, s)
		}
	}
	return out
}

// Last is a copy of the latest span; the test fails without one.
func (r *Recorder) Last(t testing.TB) Span {
	t.Helper()
	all := r.All()
	if len(all) == 0 {
		t.Fatal("no span")
	}
	return all[len(all)-1]
}
