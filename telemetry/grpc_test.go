package telemetry

import (
	"context"
	"encoding/hex"
	"net"
	"sync"
	"testing"

	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/agentgov/agentgov/calltrace"
)

// grpcReceiver is a real OTLP/gRPC receiver: the collector's TraceService
// on a grpc.Server.
type grpcReceiver struct {
	coltrace.UnimplementedTraceServiceServer
	mu       sync.Mutex
	spans    []*tracepb.Span
	service  string
	contents []string
}

func (r *grpcReceiver) Export(ctx context.Context, req *coltrace.ExportTraceServiceRequest) (*coltrace.ExportTraceServiceResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		r.contents = append(r.contents, md.Get("content-type")...)
	}
	for _, rs := range req.ResourceSpans {
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.Key == "service.name" {
				r.service = kv.Value.GetStringValue()
			}
		}
		for _, ss := range rs.ScopeSpans {
			r.spans = append(r.spans, ss.Spans...)
		}
	}
	return &coltrace.ExportTraceServiceResponse{}, nil
}

// With protocol grpc, spans go to a real OTLP/gRPC receiver: the
// endpoint's host and port, in clear for an http URL.
func TestSpansReachAnOTLPGRPCReceiver(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &grpcReceiver{}
	srv := grpc.NewServer()
	coltrace.RegisterTraceServiceServer(srv, r)
	go srv.Serve(l)
	defer srv.Stop()

	cfg := Config{OTLP: OTLP{Endpoint: "http://" + l.Addr().String(), Protocol: "grpc"}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	tr, err := New(context.Background(), cfg, "agentgov", "test")
	if err != nil {
		t.Fatal(err)
	}
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	_, sp := tr.Start(context.Background(), calltrace.Call{Operation: calltrace.Tool, Name: "echo", Method: "tools/call",
		TraceParent: "00-" + traceID + "-00f067aa0ba902b7-01"})
	sp.End(calltrace.Result{ErrorType: "tool_error", Error: "the tool failed"})
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.spans) != 1 || r.service != "agentgov" || len(r.contents) == 0 || r.contents[0] != "application/grpc" {
		t.Fatalf("%d spans, service %q, content types %v", len(r.spans), r.service, r.contents)
	}
	s := r.spans[0]
	a := attrs(s)
	if s.Name != "execute_tool echo" || hex.EncodeToString(s.TraceId) != traceID || a["gen_ai.tool.name"] != "echo" ||
		a["error.type"] != "tool_error" || s.Status.GetCode() != tracepb.Status_STATUS_CODE_ERROR {
		t.Errorf("span %s trace %x attrs %v status %v", s.Name, s.TraceId, a, s.Status)
	}
}
