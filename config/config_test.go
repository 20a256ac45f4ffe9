package config

import (
	"strings"
	"testing"
	"time"
)

const hash = "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8"

func TestDefaults(t *testing.T) {
	c, err := Parse("agentgov.yaml", []byte(""))
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != DefaultAddr || c.Data != DefaultData || c.MaxBodyBytes != DefaultMaxBodyBytes || c.Log != (Log{Format: "text", Level: "info"}) {
		t.Fatalf("defaults not filled: %+v", c)
	}
}

func TestInvalidConfigsNameTheKey(t *testing.T) {
	for _, c := range []struct{ src, want string }{
		{"adress: x\n", `agentgov.yaml:1: field adress is not a known key of config.Config`},
		{"addr: nope\n", `agentgov.yaml:1: addr: want host:port`},
		{"tokens:\n  - {name: a, role: root, sha256: " + hash + "}\n", `tokens[0].role: want admin, approver or agent, got "root"`},
		{"tokens:\n  - {name: a, role: agent, sha256: " + hash + "}\n", `tokens[0].agent: an agent token must name its agent id`},
		{"tokens:\n  - {name: a, role: admin, sha256: abc}\n", `tokens[0].sha256: want the 64 hex digits`},
		{"tokens:\n  - {name: a, role: admin, sha256: " + hash + "}\n  - {name: b, role: admin, sha256: " + strings.ToUpper(hash) + "}\n", `the same token is configured twice`},
		{"mcp:\n  servers:\n    fs: {command: [x], url: 'http://a'}\n", `mcp.servers.fs: give exactly one of command or url`},
		{"audit: {checkpoint_interval: soon}\n", `agentgov.yaml:1:`},
		{"audit: {commit_delay: -1ms}\n", `audit.commit_delay: want a duration from 0 (never wait) to 100ms, got -1ms`},
		{"audit: {commit_delay: 2s}\n", `audit.commit_delay: want a duration from 0 (never wait) to 100ms, got 2s`},
		{"tokens:\n  - {name: a, role: admin, sha256: " + hash + ", colour: red}\n", `field colour is not a known key`},
		{"data: /srv/ag\naudit: {key_file: /srv/ag/audit.key}\n", `audit.key_file: /srv/ag/audit.key is in the data directory /srv/ag`},
		{"audit: {key_file: agentgov-data/signing.key}\n", `audit.key_file: agentgov-data/signing.key is in the data directory ./agentgov-data`},
		{"log: {format: xml}\n", `log.format: want text or json, got "xml"`},
		{"log: {level: verbose}\n", `log.level: want debug, info, warn or error, got "verbose"`},
		{"log: {colour: red}\n", `field colour is not a known key`},
		{"telemetry:\n  otlp: {metrics: true}\n", `agentgov.yaml:2: telemetry.otlp.endpoint: metrics: true without an endpoint`},
		{"telemetry:\n  otlp: {endpoint: 'http://c:4318', metrics_interval: 10s}\n", `telemetry.otlp.metrics_interval: an interval without metrics: true`},
		{"telemetry:\n  otlp: {endpoint: 'http://c:4318', metrics: true, metrics_interval: 10ms}\n", `telemetry.otlp.metrics_interval: want a duration from 1s to 1h, got 10ms`},
	} {
		_, err := Parse("agentgov.yaml", []byte(c.src))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("config %q: error %v, want it to contain %q", c.src, err, c.want)
		}
	}
}

// audit.commit_delay: absent is the log's default, 0 turns the wait off.
func TestAuditCommitDelay(t *testing.T) {
	for src, want := range map[string]time.Duration{
		"":                             0,
		"audit: {commit_delay: 0}\n":   -1,
		"audit: {commit_delay: 0s}\n":  -1,
		"audit: {commit_delay: 3ms}\n": 3 * time.Millisecond,
	} {
		c, err := Parse("agentgov.yaml", []byte(src))
		if err != nil {
			t.Fatalf("%q: %v", src, err)
		}
		if got := c.Audit.AuditCommitDelay(); got != want {
			t.Errorf("%q: commit delay %v, want %v", src, got, want)
		}
	}
}

// The mcp: bounds of DESIGN §5: absent means the gateway's default; a
// value out of range is an error naming the key, never quietly replaced.
func TestMCPSessionBounds(t *testing.T) {
	c, err := Parse("agentgov.yaml", []byte(""))
	if err != nil {
		t.Fatal(err)
	}
	if c.MCP.SessionIdleTimeout != 10*time.Minute || c.MCP.MaxSessionsPerAgent != 16 || c.MCP.MaxMessageBytes != 4<<20 || c.MCP.ReadTimeout != 30*time.Second {
		t.Fatalf("mcp defaults = %+v", c.MCP)
	}
	c, err = Parse("agentgov.yaml", []byte("mcp: {session_idle_timeout: 90s, max_sessions_per_agent: 3, max_message_bytes: 1048576, read_timeout: 5s}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.MCP.SessionIdleTimeout != 90*time.Second || c.MCP.MaxSessionsPerAgent != 3 || c.MCP.MaxMessageBytes != 1<<20 || c.MCP.ReadTimeout != 5*time.Second {
		t.Fatalf("mcp keys = %+v", c.MCP)
	}
	for _, tc := range []struct{ src, want string }{
		{"mcp: {session_idle_timeout: -1m}\n", "mcp.session_idle_timeout: want a duration from 1s to 24h0m0s, got -1m0s"},
		{"mcp: {session_idle_timeout: 10ms}\n", "mcp.session_idle_timeout: want a duration from 1s"},
		{"mcp: {session_idle_timeout: ten}\n", "agentgov.yaml:1:"},
		{"mcp: {max_sessions_per_agent: -2}\n", "mcp.max_sessions_per_agent: want 1 to 1000 sessions, got -2"},
		{"mcp: {max_sessions_per_agent: 5000}\n", "mcp.max_sessions_per_agent: want 1 to 1000 sessions, got 5000"},
		{"mcp: {max_message_bytes: 100}\n", "mcp.max_message_bytes: want 65536 to 67108864 bytes, got 100"},
		{"mcp: {read_timeout: 1h}\n", "mcp.read_timeout: want a duration from 1s to 10m0s, got 1h0m0s"},
	} {
		_, err := Parse("agentgov.yaml", []byte(tc.src))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("config %q: error %v, want it to contain %q", tc.src, err, tc.want)
		}
	}
}
