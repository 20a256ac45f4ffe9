// Package telemetry exports traces through the OpenTelemetry Go SDK to an
// OTLP endpoint (gRPC or HTTP/protobuf): a span for each decision, joined
// to the trace of the caller that sent a W3C traceparent, with the
// decision's stages as events and, for a model call, the attributes of the
// GenAI semantic conventions; and (calls.go) a span for each call the MCP
// gateway, the model proxy and the A2A gateway forward upstream, the
// parent of its decision's.
package telemetry

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/govern"
)

// Config is the telemetry: section of agentgov.yaml.
type Config struct {
	OTLP OTLP `yaml:"otlp"`
}

// OTLP is where traces go.
type OTLP struct {
	// Endpoint is the receiver's URL, such as http://127.0.0.1:4318 (HTTP;
	// /v1/traces is added) or http://127.0.0.1:4317 (gRPC). An http URL
	// is sent in clear, an https one over TLS.
	Endpoint string `yaml:"endpoint"`
	// Protocol is grpc or http/protobuf (the default).
	Protocol string `yaml:"protocol"`
}

// KeyError names the configuration key at fault.
type KeyError struct{ Key, Msg string }

func (e *KeyError) Error() string { return e.Key + ": " + e.Msg }

// Enabled reports whether traces are exported.
func (c *Config) Enabled() bool { return c.OTLP.Endpoint != "" }

// Fill sets the default protocol.
func (c *Config) Fill() {
	if c.OTLP.Endpoint != "" && c.OTLP.Protocol == "" {
		c.OTLP.Protocol = "http/protobuf"
	}
}

// Validate checks the endpoint and protocol.
func (c *Config) Validate() error {
	if c.OTLP.Endpoint == "" {
		if c.OTLP.Protocol != "" {
			return &KeyError{"telemetry.otlp.endpoint", "a protocol without an endpoint"}
		}
		return nil
	}
	u, err := url.Parse(c.OTLP.Endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return &KeyError{"telemetry.otlp.endpoint", fmt.Sprintf("want an http or https URL such as http://127.0.0.1:4318, got %q", c.OTLP.Endpoint)}
	}
	if c.OTLP.Protocol != "grpc" && c.OTLP.Protocol != "http/protobuf" {
		return &KeyError{"telemetry.otlp.protocol", fmt.Sprintf("want grpc or http/protobuf, got %q", c.OTLP.Protocol)}
	}
	return nil
}

// Tracing is the tracer provider and the engine's tracer over it.
type Tracing struct {
	provider *sdktrace.TracerProvider
	tracer   trace.Tracer
}

var _ govern.Tracer = (*Tracing)(nil)

// New builds the exporter and the provider of cfg (filled and valid).
// Nothing is sent until a span ends.
func New(ctx context.Context, cfg Config, service, version string) (*Tracing, error) {
	u, _ := url.Parse(cfg.OTLP.Endpoint)
	var client otlptrace.Client
	if cfg.OTLP.Protocol == "grpc" {
		opts := []otlptracegrpc.Option{otlptracegrpc.WithEndpoint(u.Host)}
		if u.Scheme == "http" {
			opts = append(opts, otlptracegrpc.WithInsecure())
		}
		client = otlptracegrpc.NewClient(opts...)
	} else {
		path := strings.TrimSuffix(u.Path, "/") + "/v1/traces"
		opts := []otlptracehttp.Option{otlptracehttp.WithEndpoint(u.Host), otlptracehttp.WithURLPath(path)}
		if u.Scheme == "http" {
			opts = append(opts, otlptracehttp.WithInsecure())
		}
		client = otlptracehttp.NewClient(opts...)
	}
	exp, err := otlptrace.New(ctx, client)
	if err != nil {
		return nil, fmt.Errorf("telemetry: %w", err)
	}
	res := resource.NewSchemaless(attribute.String("service.name", service), attribute.String("service.version", version))
	p := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(time.Second)), sdktrace.WithResource(res))
	return &Tracing{provider: p, tracer: p.Tracer("github.com/agentgov/agentgov")}, nil
}

// Run holds the provider until ctx ends, then flushes what is left.
func (t *Tracing) Run(ctx context.Context) error {
	<-ctx.Done()
	return t.Shutdown(context.WithoutCancel(ctx))
}

// Shutdown sends the spans not yet sent, within five seconds.
func (t *Tracing) Shutdown(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return t.provider.Shutdown(ctx)
}

type carrier string

func (c carrier) Get(key string) string {
	if key == "traceparent" {
		return string(c)
	}
	return ""
}
func (c carrier) Set(string, string) {}
func (c carrier) Keys() []string     { return []string{"traceparent"} }

// StartDecision implements govern.Tracer.
func (t *Tracing) StartDecision(ctx context.Context, traceparent string) govern.DecisionSpan {
	// A call's span already in ctx (see Start) is the parent; it joined
	// the caller's trace itself.
	if traceparent != "" && !trace.SpanContextFromContext(ctx).IsValid() {
		ctx = propagation.TraceContext{}.Extract(ctx, carrier(traceparent))
	}
	_, span := t.tracer.Start(ctx, "agentgov.decide", trace.WithSpanKind(trace.SpanKindInternal))
	return decisionSpan{span}
}

type decisionSpan struct{ span trace.Span }

// End implements govern.DecisionSpan.
func (s decisionSpan) End(entry string, a *action.Action, d *action.Decision, t *govern.StageTimes) {
	sp := s.span
	attrs := []attribute.KeyValue{
		attribute.String("agentgov.decision.id", d.ID.String()),
		attribute.String("agentgov.decision.effect", string(d.Effect)),
		attribute.String("agentgov.entry", entry),
		attribute.String("agentgov.point", string(a.PointOrDefault())),
		attribute.String("agentgov.agent.id", a.Agent.ID),
	}
	if len(d.Rules) > 0 {
		attrs = append(attrs, attribute.StringSlice("agentgov.decision.rules", d.Rules))
	}
	if a.Session != "" {
		attrs = append(attrs, attribute.String("gen_ai.conversation.id", a.Session))
	}
	if a.Tool.Name != "" {
		// GenAI semantic conventions for tool execution.
		attrs = append(attrs, attribute.String("gen_ai.operation.name", "execute_tool"), attribute.String("gen_ai.tool.name", a.Tool.Name))
		if a.Tool.Server != "" {
			attrs = append(attrs, attribute.String("agentgov.tool.server", a.Tool.Server))
		}
	}
	if a.Model != "" {
		// ... and for a model call.
		attrs = append(attrs, attribute.String("gen_ai.operation.name", "chat"), attribute.String("gen_ai.request.model", a.Model))
		if a.Destination != "" {
			attrs = append(attrs, attribute.String("server.address", a.Destination))
		}
	}
	sp.SetAttributes(attrs...)
	if t != nil {
		for st := range govern.NumStages {
			if t.Ran[st] {
				sp.AddEvent(st.String(), trace.WithAttributes(attribute.Float64("duration_ms", float64(t.Stage[st])/float64(time.Millisecond))))
			}
		}
	}
	if d.Effect == action.Deny {
		sp.AddEvent("denied", trace.WithAttributes(attribute.StringSlice("reasons", d.Reasons)))
	}
	if d.AuditIndex == nil && d.Effect == action.Deny && len(d.Reasons) > 0 && strings.Contains(d.Reasons[0], "audit log unavailable") {
		sp.SetStatus(codes.Error, d.Reasons[0])
	}
	sp.End()
}
