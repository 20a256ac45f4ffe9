package approval_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/approval"
)

// An account number beyond 2^53 has a neighbour that a double cannot tell
// apart from it. A ticket approved for the account the approver was shown
// must not pay the neighbour, and the approver must be shown the number the
// agent sent, digit for digit.
func TestTicketBindsIntegersADoubleCannotHold(t *testing.T) {
	ctx := context.Background()
	m, _ := setup(t)
	pay := func(account int64) *action.Action {
		a := payment()
		a.Args["account"] = account
		return a
	}
	for _, c := range []struct {
		name              string
		approved, redeem  int64
		shownAs, notShown string
	}{
		{"the account one above", 12345678901234567, 12345678901234568, "12345678901234567", "12345678901234568"},
		{"a negative neighbour", -9007199254740993, -9007199254740992, "-9007199254740993", "-9007199254740992"},
	} {
		t.Run(c.name, func(t *testing.T) {
			tk := create(t, m, request(pay(c.approved)))
			if !strings.Contains(string(tk.Args), c.shownAs) {
				t.Fatalf("the ticket shows %s, want the account %s as sent", tk.Args, c.shownAs)
			}
			got, err := m.Get(ctx, tk.ID)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := json.Marshal(got)
			if !strings.Contains(string(raw), c.shownAs) || strings.Contains(string(raw), c.notShown) {
				t.Fatalf("the stored ticket reads %s, want %s", raw, c.shownAs)
			}
			approve(t, m, tk.ID)
			_, err = m.Redeem(ctx, tk.ID, pay(c.redeem), policyDigest, "dec_use")
			wantRefused(t, err, approval.ReasonArgsChanged)
			if _, err := m.Redeem(ctx, tk.ID, pay(c.approved), policyDigest, "dec_use"); err != nil {
				t.Fatalf("the approved call was refused: %v", err)
			}
		})
	}
}
