package config

import (
	"fmt"
	"net/url"
	"time"
)

// Telemetry is where traces are exported (docs/reliability.md).
type Telemetry struct {
	OTLP OTLP `yaml:"otlp"`
}

// OTLP is an OpenTelemetry receiver.
type OTLP struct {
	// Endpoint is the receiver's URL: http://HOST:4318 for HTTP (the
	// /v1/traces path is added), http://HOST:4317 for gRPC; https for TLS.
	Endpoint string `yaml:"endpoint"`
	// Protocol is grpc or http/protobuf (the default).
	Protocol string `yaml:"protocol"`
	// Metrics sends the metrics of /metrics to the receiver too (for
	// HTTP, to /v1/metrics), every MetricsInterval (1m when 0).
	Metrics         bool          `yaml:"metrics"`
	MetricsInterval time.Duration `yaml:"metrics_interval"`
}

func (c *Config) fillTelemetry() {
	if c.Telemetry.OTLP.Endpoint != "" && c.Telemetry.OTLP.Protocol == "" {
		c.Telemetry.OTLP.Protocol = "http/protobuf"
	}
}

func (c *Config) validateTelemetry() error {
	o := c.Telemetry.OTLP
	if o.MetricsInterval != 0 && !o.Metrics {
		return &Error{Key: "telemetry.otlp.metrics_interval", Msg: "an interval without metrics: true"}
	}
	if o.Metrics && (o.MetricsInterval < 0 || o.MetricsInterval != 0 && (o.MetricsInterval < time.Second || o.MetricsInterval > time.Hour)) {
		return &Error{Key: "telemetry.otlp.metrics_interval", Msg: fmt.Sprintf("want a duration from 1s to 1h, got %v", o.MetricsInterval)}
	}
	if o.Endpoint == "" {
		if o.Protocol != "" {
			return &Error{Key: "telemetry.otlp.endpoint", Msg: "a protocol without an endpoint"}
		}
		if o.Metrics {
			return &Error{Key: "telemetry.otlp.endpoint", Msg: "metrics: true without an endpoint to send them to"}
		}
		return nil
	}
	u, err := url.Parse(o.Endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return &Error{Key: "telemetry.otlp.endpoint", Msg: fmt.Sprintf("want an http or https URL such as http://127.0.0.1:4318, got %q", o.Endpoint)}
	}
	if o.Protocol != "grpc" && o.Protocol != "http/protobuf" {
		return &Error{Key: "telemetry.otlp.protocol", Msg: fmt.Sprintf("want grpc or http/protobuf, got %q", o.Protocol)}
	}
	return nil
}
