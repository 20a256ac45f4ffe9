package config

import (
	"strings"
	"testing"
)

func TestApprovalsBound(t *testing.T) {
	c, err := Parse("agentgov.yaml", []byte("approvals: {max_pending_per_agent: 20}\n"))
	if err != nil || c.Approvals.MaxPendingPerAgent != 20 {
		t.Fatalf("%+v, %v", c.Approvals, err)
	}
	for _, src := range []string{"approvals: {max_pending_per_agent: -1}", "approvals: {max_pending_per_agent: 100001}", "approvals: {max_pending: 5}"} {
		if _, err := Parse("agentgov.yaml", []byte(src)); err == nil || !strings.Contains(err.Error(), "max_pending") {
			t.Errorf("%s: %v, want an error naming the key", src, err)
		}
	}
}
