package approval_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/agentgov/agentgov/approval"
)

// An agent that asks for approval again and again would bury the one call
// that matters under its requests: it may have only so many tickets
// waiting. The bound is per agent (another agent still asks), and a
// decided ticket frees its place, as does one past its expiry.
func TestAnAgentCannotFloodTheApprovalQueue(t *testing.T) {
	ctx := context.Background()
	clk := &fakeClock{now: t0}
	m := approval.New(openDB(t, t.TempDir()), clk.Now, approval.MaxPendingPerAgent(3))
	ask := func(agent string, n int) (approval.Ticket, error) {
		a := payment()
		a.Agent.ID = agent
		a.Args["n"] = int64(n)
		return m.Create(ctx, request(a))
	}
	var first approval.Ticket
	for i := range 3 {
		tk, err := ask("payer-1", i)
		if err != nil {
			t.Fatalf("ticket %d: %v", i, err)
		}
		if i == 0 {
			first = tk
		}
	}
	_, err := ask("payer-1", 3)
	if !errors.Is(err, approval.ErrTooManyPending) {
		t.Fatalf("a fourth ticket waiting: %v", err)
	}
	if want := fmt.Sprintf("already has %d tickets waiting", 3); !strings.Contains(err.Error(), want) {
		t.Errorf("refusal %q does not say %q", err, want)
	}
	if _, err := ask("payer-2", 0); err != nil {
		t.Fatalf("another agent's first ticket: %v", err)
	}
	approve(t, m, first.ID)
	if _, err := ask("payer-1", 4); err != nil {
		t.Fatalf("a ticket once one was decided: %v", err)
	}
	if _, err := ask("payer-1", 5); !errors.Is(err, approval.ErrTooManyPending) {
		t.Fatalf("full again: %v", err)
	}
	clk.Advance(approval.DefaultTimeout + 1)
	if _, err := ask("payer-1", 6); err != nil {
		t.Fatalf("a ticket once the others expired: %v", err)
	}
}
