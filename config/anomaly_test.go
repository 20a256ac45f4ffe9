package config

import (
	"strings"
	"testing"
	"time"
)

func TestAnomalyDefaultsAndKeys(t *testing.T) {
	c, err := Parse("agentgov.yaml", []byte(""))
	if err != nil {
		t.Fatal(err)
	}
	a := c.Anomaly
	if a.Disabled || a.Interval != time.Minute || a.WarmupIntervals != 30 || a.RateZ != 4 || a.EntropyWindow != 50 || len(a.Responses) != 0 {
		t.Fatalf("defaults %+v", a)
	}
	c, err = Parse("agentgov.yaml", []byte(`
anomaly:
  interval: 30s
  warmup_intervals: 60
  rate_z: 5
  entropy_window: 20
  responses:
    - {when: new_tool, action: approval}
    - {when: rate_z, action: isolate}
trust:
  events:
    anomaly: {rate_z: -40}
`))
	if err != nil {
		t.Fatal(err)
	}
	if a := c.Anomaly; a.Interval != 30*time.Second || a.WarmupIntervals != 60 || a.RateZ != 5 || a.EntropyWindow != 20 || len(a.Responses) != 2 || a.Responses[1].Action != "isolate" {
		t.Fatalf("keys %+v", a)
	}
	if *c.Trust.Events.Anomaly.RateZ != -40 || *c.Trust.Events.Anomaly.NewTool != -2 {
		t.Fatalf("trust weights %+v", c.Trust.Events.Anomaly)
	}
}

// An invalid anomaly: key is refused up front, naming the key and the
// line it is written on.
func TestAnomalyErrorsPointAtTheLine(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{"addr: 127.0.0.1:1\nanomaly:\n  rate_z: 0.2\n", "agentgov.yaml:3: anomaly.rate_z: want a z-score from 1 to 1000, got 0.2"},
		{"anomaly:\n  responses:\n    - {when: new_tool, action: flag}\n    - {when: new_tool, action: kill}\n", `agentgov.yaml:4: anomaly.responses[1].action: want flag, approval or isolate, got "kill"`},
		{"anomaly:\n  responses:\n    - when: rate\n      action: flag\n", `agentgov.yaml:3: anomaly.responses[0].when: want rate_z, new_tool or entropy, got "rate"`},
		{"anomaly:\n  entropy_window: 200\n", "agentgov.yaml:1: anomaly.max_tools_per_agent: want more than entropy_window (200)"},
		{"anomaly:\n  interval: 10ms\n", "agentgov.yaml:2: anomaly.interval: want a duration from 1s to 24h0m0s, got 10ms"},
		{"anomaly:\n  treshold: 3\n", "agentgov.yaml:2: field treshold is not a known key"},
		{"trust:\n  events:\n    anomaly: {new_tool: 3}\n", "trust.events.anomaly.new_tool: want 0 to -1000 points"},
	} {
		_, err := Parse("agentgov.yaml", []byte(tc.src))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("config %q: error %v, want it to contain %q", tc.src, err, tc.want)
		}
	}
}
