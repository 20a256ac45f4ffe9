package govern_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/govern"
	"github.com/agentgov/agentgov/sre"
)

var _ govern.Reliability = (*sre.Monitor)(nil)

const breakerPolicy = `
version: agentgov/v1
name: breakers
default: allow
rules:
  - id: careful-while-probing
    match: {tools: ["pay"]}
    when: 'breaker.state == "half_open"'
    effect: require_approval
`

func monitor(t *testing.T, clock func() time.Time) *sre.Monitor {
	t.Helper()
	cfg := sre.Config{
		SLOs:     []sre.SLO{{ID: "tools", SLI: sre.SLISuccess, Target: 0.99}},
		Breakers: []sre.Breaker{{ID: "up", Match: sre.Match{Tools: []string{"*"}}, MinCalls: 2, OpenFor: sre.Duration(10 * time.Second)}},
	}
	cfg.Fill()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return sre.New(cfg, sre.Options{Clock: clock})
}

// Outcomes recorded through the engine open a circuit; while it is open
// every decision for that tool is a deny naming the circuit, before any
// policy is asked; after open_for, policies see breaker.state half_open.
// The same holds on the library's path and on the audited one.
func TestOpenCircuitDeniesAndPoliciesSeeBreakerState(t *testing.T) {
	for _, audited := range []bool{false, true} {
		now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
		clock := func() time.Time { return now }
		m := monitor(t, clock)
		opts := []govern.Option{govern.WithClock(clock), govern.WithReliability(m)}
		if audited {
			log, _ := openAudit(t)
			opts = append(opts, govern.WithAudit(log))
		}
		eng := govern.New(mustSet(t, breakerPolicy), opts...)
		ctx := context.Background()
		for range 2 {
			d, err := eng.Decide(ctx, tool("fetch", nil))
			if err != nil || d.Effect != action.Allow {
				t.Fatalf("audited=%v: %+v %v", audited, d, err)
			}
			if err := eng.Outcome(ctx, d.ID, action.Outcome{Status: "error", Error: "upstream 502"}); err != nil {
				t.Fatal(err)
			}
		}
		d, _ := eng.Decide(ctx, tool("fetch", nil))
		if d.Effect != action.Deny || len(d.Reasons) != 1 || !strings.Contains(d.Reasons[0], "circuit breaker up is open for tool:fetch") {
			t.Fatalf("audited=%v: open circuit decided %+v", audited, d)
		}
		if audited && d.AuditIndex == nil {
			t.Fatal("the refusal is not in the audit log")
		}
		if d, _ := eng.Decide(ctx, tool("other", nil)); d.Effect != action.Allow {
			t.Fatalf("another tool's circuit refused: %+v", d)
		}
		// The policy sees half_open while pay's circuit probes.
		for range 2 {
			d, _ := eng.Decide(ctx, tool("pay", nil))
			eng.Outcome(ctx, d.ID, action.Outcome{Status: "error"})
		}
		now = now.Add(11 * time.Second)
		d, _ = eng.Decide(ctx, tool("pay", nil))
		if d.Effect != action.RequireApproval || len(d.Rules) != 1 || d.Rules[0] != "careful-while-probing" {
			t.Fatalf("audited=%v: policy did not see breaker.state half_open: %+v", audited, d)
		}
		st := m.SLOs()[0]
		if st.Total != 4 || st.Good != 0 {
			t.Fatalf("audited=%v: SLI %d/%d, want 0/4", audited, st.Good, st.Total)
		}
	}
}
