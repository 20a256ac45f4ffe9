package telemetry

import (
	"context"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	colmetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/govern"
	"github.com/agentgov/agentgov/policy"
)

// otlpReceiver is a real OTLP/HTTP receiver: it decodes the protobuf
// export requests the SDK posts to /v1/traces.
type otlpReceiver struct {
	*httptest.Server
	mu    sync.Mutex
	spans []*tracepb.Span
	paths []string
}

func newReceiver(t testing.TB) *otlpReceiver {
	r := &otlpReceiver{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		var ex coltrace.ExportTraceServiceRequest
		if err := proto.Unmarshal(b, &ex); err != nil {
			t.Errorf("not an OTLP export request: %v", err)
			w.WriteHeader(400)
			return
		}
		r.mu.Lock()
		r.paths = append(r.paths, req.URL.Path)
		for _, rs := range ex.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				r.spans = append(r.spans, ss.Spans...)
			}
		}
		r.mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
		out, _ := proto.Marshal(&coltrace.ExportTraceServiceResponse{})
		w.Write(out)
	}))
	t.Cleanup(r.Close)
	return r
}

type memAudit struct{ n uint64 }

func (m *memAudit) Append(context.Context, string, any) (uint64, error) { m.n++; return m.n, nil }

func attrs(s *tracepb.Span) map[string]string {
	out := map[string]string{}
	for _, kv := range s.Attributes {
		out[kv.Key] = kv.Value.GetStringValue()
	}
	return out
}

// Decisions arrive as spans at a real OTLP receiver: named, with the
// decision's attributes (GenAI's for a model call), joined to the trace of
// the traceparent the caller sent; a decision without one starts a trace.
func TestDecisionSpansReachAnOTLPReceiver(t *testing.T) {
	r := newReceiver(t)
	cfg := Config{OTLP: OTLP{Endpoint: r.URL}}
	cfg.Fill()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	tr, err := New(context.Background(), cfg, "agentgov", "test")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := policy.Parse("p.yaml", []byte("version: agentgov/v1\nname: p\ndefault: allow\nrules:\n  - {id: no-rm, match: {tools: [rm]}, effect: deny}\n"))
	if err != nil {
		t.Fatal(err)
	}
	set, err := policy.Compile([]*policy.Document{doc})
	if err != nil {
		t.Fatal(err)
	}
	eng := govern.New(set, govern.WithAudit(&memAudit{}), govern.WithTracer(tr))
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	ctx := govern.WithTrace(context.Background(), govern.Trace{TraceParent: "00-" + traceID + "-00f067aa0ba902b7-01"})
	d1, _ := eng.Decide(ctx, action.Action{Agent: action.Agent{ID: "a1"}, Tool: action.Tool{Server: "fs", Name: "rm"}})
	d2, _ := eng.Decide(context.Background(), action.Action{Agent: action.Agent{ID: "a1"}, Point: action.PreModelCall, Model: "gpt-4o-mini", Destination: "api.openai.com"})
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.spans) != 2 || r.paths[0] != "/v1/traces" {
		t.Fatalf("%d spans at %v", len(r.spans), r.paths)
	}
	byID := map[string]*tracepb.Span{}
	for _, s := range r.spans {
		if s.Name != "agentgov.decide" {
			t.Errorf("span name %q", s.Name)
		}
		byID[attrs(s)["agentgov.decision.id"]] = s
	}
	s1, s2 := byID[d1.ID.String()], byID[d2.ID.String()]
	if s1 == nil || s2 == nil {
		t.Fatalf("spans %v", byID)
	}
	if hex.EncodeToString(s1.TraceId) != traceID || hex.EncodeToString(s1.ParentSpanId) != "00f067aa0ba902b7" {
		t.Errorf("not joined to the caller's trace: trace %x parent %x", s1.TraceId, s1.ParentSpanId)
	}
	if hex.EncodeToString(s2.TraceId) == traceID || len(s2.ParentSpanId) != 0 {
		t.Errorf("a decision without a traceparent joined a trace")
	}
	a1 := attrs(s1)
	if a1["agentgov.decision.effect"] != "deny" || a1["gen_ai.tool.name"] != "rm" || a1["gen_ai.operation.name"] != "execute_tool" || a1["agentgov.agent.id"] != "a1" {
		t.Errorf("tool decision attributes %v", a1)
	}
	a2 := attrs(s2)
	if a2["gen_ai.operation.name"] != "chat" || a2["gen_ai.request.model"] != "gpt-4o-mini" || a2["server.address"] != "api.openai.com" || a2["agentgov.decision.effect"] != "allow" {
		t.Errorf("model decision attributes %v", a2)
	}
	denied := false
	for _, e := range s1.Events {
		denied = denied || e.Name == "denied"
	}
	if !denied {
		t.Errorf("events %v", s1.Events)
	}
}

func TestConfig(t *testing.T) {
	for _, c := range []struct {
		cfg Config
		key string
	}{
		{Config{OTLP: OTLP{Endpoint: "127.0.0.1:4318"}}, "telemetry.otlp.endpoint"},
		{Config{OTLP: OTLP{Endpoint: "http://x:4317", Protocol: "thrift"}}, "telemetry.otlp.protocol"},
		{Config{OTLP: OTLP{Protocol: "grpc"}}, "telemetry.otlp.endpoint"},
	} {
		c.cfg.Fill()
		if ke, ok := c.cfg.Validate().(*KeyError); !ok || ke.Key != c.key {
			t.Errorf("%+v: %v", c.cfg, c.cfg.Validate())
		}
	}
}

// The metrics of /metrics reach a real OTLP/HTTP receiver at /v1/metrics,
// under the same names and with the same values; what is left is sent at
// shutdown.
func TestMetricsReachAnOTLPReceiver(t *testing.T) {
	var mu sync.Mutex
	got := map[string]float64{}
	var paths []string
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		var ex colmetrics.ExportMetricsServiceRequest
		if err := proto.Unmarshal(b, &ex); err != nil {
			t.Errorf("not an OTLP metrics export: %v", err)
			w.WriteHeader(400)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		paths = append(paths, req.URL.Path)
		for _, rm := range ex.ResourceMetrics {
			for _, sm := range rm.ScopeMetrics {
				for _, m := range sm.Metrics {
					for _, p := range m.GetSum().GetDataPoints() {
						got[m.Name] += p.GetAsDouble() + float64(p.GetAsInt())
					}
				}
			}
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
		out, _ := proto.Marshal(&colmetrics.ExportMetricsServiceResponse{})
		w.Write(out)
	}))
	defer recv.Close()

	reg := prometheus.NewRegistry()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "agentgov_decisions_total", Help: "decisions"}, []string{"effect"})
	reg.MustRegister(c)
	cfg := Config{OTLP: OTLP{Endpoint: recv.URL}}
	cfg.Fill()
	m, err := NewMetrics(context.Background(), cfg, time.Hour, reg, "agentgov", "test")
	if err != nil {
		t.Fatal(err)
	}
	c.WithLabelValues("allow").Add(3)
	c.WithLabelValues("deny").Inc()
	if err := m.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(paths) == 0 || paths[0] != "/v1/metrics" || got["agentgov_decisions_total"] != 4 {
		t.Fatalf("paths %v, metrics %v; want agentgov_decisions_total 4 at /v1/metrics", paths, got)
	}
}
