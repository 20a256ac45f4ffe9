package config

import (
	"strings"
	"testing"
)

func TestProvenanceBounds(t *testing.T) {
	c, err := Parse("agentgov.yaml", []byte("provenance: {max_session_bytes: 1048576, max_total_bytes: 67108864, max_sessions: 500}\n"))
	if err != nil || c.Provenance != (Provenance{MaxSessionBytes: 1 << 20, MaxTotalBytes: 64 << 20, MaxSessions: 500}) {
		t.Fatalf("%+v, %v", c, err)
	}
	for _, c := range []struct{ src, want string }{
		{"provenance: {max_session_bytes: 100}", "provenance.max_session_bytes"},
		{"provenance: {max_total_bytes: -1}", "provenance.max_total_bytes"},
		{"provenance: {max_sessions: -5}", "provenance.max_sessions"},
		{"provenance: {max_session_bytes: 1048576, max_total_bytes: 524288}", "must not exceed"},
		{"provenance: {max_bytes: 1}", "max_bytes"},
	} {
		if _, err := Parse("agentgov.yaml", []byte(c.src)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error naming %q", c.src, err, c.want)
		}
	}
}
