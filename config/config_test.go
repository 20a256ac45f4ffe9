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
	if c.Addr != DefaultAddr || c.Data != DefaultData || c.MaxBodyBytes != DefaultMaxBodyBytes {
		t.Fatalf("defaults not filled: %+v", c)
	}
}

func TestInvalidConfigsNameTheKey(t *testing.T) {
	for _, c := range []struct{ src, want string }{
		{"adress: x\n", `agentgov.yaml:1: field adress is not a known key of config.Config`},
		{"addr: nope\n", `agentgov.yaml: addr: want host:port`},
		{"tokens:\n  - {name: a, role: root, sha256: " + hash + "}\n", `tokens[0].role: want admin, approver or agent, got "root"`},
		{"tokens:\n  - {name: a, role: agent, sha256: " + hash + "}\n", `tokens[0].agent: an agent token must name its agent id`},
		{"tokens:\n  - {name: a, role: admin, sha256: abc}\n", `tokens[0].sha256: want the 64 hex digits`},
		{"tokens:\n  - {name: a, role: admin, sha256: " + hash + "}\n  - {name: b, role: admin, sha256: " + strings.ToUpper(hash) + "}\n", `the same token is configured twice`},
		{"mcp:\n  servers:\n    fs: {command: [x], url: 'http://a'}\n", `mcp.servers.fs: give exactly one of command or url`},
		{"audit: {checkpoint_interval: soon}\n", `agentgov.yaml:1:`},
		{"audit: {commit_delay: -1ms}\n", `audit.commit_delay: want a duration from 0 (never wait) to 100ms, got -1ms`},
		{"audit: {commit_delay: 2s}\n", `audit.commit_delay: want a duration from 0 (never wait) to 100ms, got 2s`},
		{"tokens:\n  - {name: a, role: admin, sha256: " + hash + ", colour: red}\n", `field colour is not a known key`},
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
