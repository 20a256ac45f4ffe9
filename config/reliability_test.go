package config

import (
	"strings"
	"testing"
	"time"

	"github.com/agentgov/agentgov/sre"
)

func TestReliabilityConfiguration(t *testing.T) {
	c, err := Parse("agentgov.yaml", []byte(`
slos:
  - {id: tools-ok, sli: success, target: 0.99, window: 30d, match: {tools: ["github/*"]}}
  - {id: fast, sli: latency, target: 0.95, latency_ms: 500}
breakers:
  - {id: upstreams, match: {servers: ["*"]}, window: 2m, open_for: 1m}
`))
	if err != nil {
		t.Fatal(err)
	}
	r := c.Reliability()
	if len(r.SLOs) != 2 || r.SLOs[0].Window != sre.Duration(720*time.Hour) || r.SLOs[1].Window != sre.DefaultSLOWindow {
		t.Fatalf("slos %+v", r.SLOs)
	}
	b := r.Breakers[0]
	if b.Window != sre.Duration(2*time.Minute) || b.OpenFor != sre.Duration(time.Minute) || b.MinCalls != sre.DefaultMinCalls || b.HalfOpenProbes != 1 || b.FailureRatio != 0.5 {
		t.Fatalf("breaker %+v", b)
	}
	for src, want := range map[string]string{
		`slos: [{id: x, sli: success, target: 99}]`:                     "slos[0].target",
		`slos: [{id: x, sli: success, target: 0.9, window: 30days}]`:    "line 1",
		`slos: [{id: x, sli: success, target: 0.9, windwo: 3d}]`:        "windwo",
		`breakers: [{id: b, match: {tools: ["*"]}, failure_ratio: -1}]`: "breakers[0].failure_ratio",
		`breakers: [{id: b}]`: "breakers[0].match",
	} {
		_, err := Parse("agentgov.yaml", []byte(src))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want it to name %s", src, err, want)
		}
	}
}
