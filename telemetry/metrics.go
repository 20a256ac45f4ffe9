package telemetry

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	promclient "github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/contrib/bridges/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
)

// DefaultMetricsInterval is how often metrics are exported when the
// configuration does not say.
const DefaultMetricsInterval = time.Minute

// MetricExport sends the metrics served at /metrics to the OTLP receiver
// as well, for deployments whose collector takes OTLP and scrapes
// nothing. It reads the same Prometheus registry, so both carry the same
// names and values.
type MetricExport struct {
	provider *sdkmetric.MeterProvider
}

// NewMetrics builds the exporter of cfg (filled and valid) over the
// metrics g gathers, sending every interval (DefaultMetricsInterval when
// 0) and once more at Shutdown.
func NewMetrics(ctx context.Context, cfg Config, interval time.Duration, g promclient.Gatherer, service, version string) (*MetricExport, error) {
	if interval <= 0 {
		interval = DefaultMetricsInterval
	}
	u, _ := url.Parse(cfg.OTLP.Endpoint)
	var exp sdkmetric.Exporter
	var err error
	if cfg.OTLP.Protocol == "grpc" {
		opts := []otlpmetricgrpc.Option{otlpmetricgrpc.WithEndpoint(u.Host)}
		if u.Scheme == "http" {
			opts = append(opts, otlpmetricgrpc.WithInsecure())
		}
		exp, err = otlpmetricgrpc.New(ctx, opts...)
	} else {
		path := strings.TrimSuffix(u.Path, "/") + "/v1/metrics"
		opts := []otlpmetrichttp.Option{otlpmetrichttp.WithEndpoint(u.Host), otlpmetrichttp.WithURLPath(path)}
		if u.Scheme == "http" {
			opts = append(opts, otlpmetrichttp.WithInsecure())
		}
		exp, err = otlpmetrichttp.New(ctx, opts...)
	}
	if err != nil {
		return nil, fmt.Errorf("telemetry metrics: %w", err)
	}
	reader := sdkmetric.NewPeriodicReader(exp, sdkmetric.WithInterval(interval),
		sdkmetric.WithProducer(prometheus.NewMetricProducer(prometheus.WithGatherer(g))))
	res := resource.NewSchemaless(attribute.String("service.name", service), attribute.String("service.version", version))
	return &MetricExport{provider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader), sdkmetric.WithResource(res))}, nil
}

// Run exports until ctx ends, then sends the last values.
func (m *MetricExport) Run(ctx context.Context) error {
	<-ctx.Done()
	return m.Shutdown(context.WithoutCancel(ctx))
}

// Shutdown sends the current values, within five seconds, and stops.
func (m *MetricExport) Shutdown(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return m.provider.Shutdown(ctx)
}
