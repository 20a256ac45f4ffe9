package config

import (
	"strings"
	"testing"
)

func TestA2AValidated(t *testing.T) {
	c, err := Parse("agentgov.yaml", []byte("a2a:\n  agents:\n    billing: {url: \"http://127.0.0.1:4100\"}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.A2A.Agents["billing"].Trust; got != "untrusted" {
		t.Errorf("an agent nobody vouched for has trust %q, want untrusted", got)
	}
	if c.A2A.MaxArtifactBytes == 0 || c.A2A.Timeout == 0 {
		t.Errorf("bounds not filled: %+v", c.A2A)
	}
	for _, tc := range []struct{ yaml, want string }{
		{"a2a:\n  agents:\n    billing: {}\n", "a2a.agents.billing.url: missing"},
		{"a2a:\n  agents:\n    billing: {url: \"ftp://x\"}\n", "a2a.agents.billing.url: want an absolute http or https URL"},
		{"a2a:\n  agents:\n    billing: {url: \"http://u:p@x\"}\n", "without credentials"},
		{"a2a:\n  agents:\n    billing: {url: \"http://x\", trust: high}\n", "a2a.agents.billing.trust: want one of"},
		{"a2a:\n  agents:\n    Bad/Name: {url: \"http://x\"}\n", "a2a.agents.Bad/Name: agent names"},
		{"a2a:\n  max_artifact_bytes: 10\n", "a2a.max_artifact_bytes: want"},
		{"a2a:\n  timeout: 5h\n", "a2a.timeout: want"},
		{"a2a:\n  agents:\n    billing: {url: \"http://x\", tls: true}\n", "tls"},
	} {
		_, err := Parse("agentgov.yaml", []byte(tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want an error with %q", tc.yaml, err, tc.want)
		}
	}
}
