package action

import (
	"strings"

	"github.com/agentgov/agentgov/errcode"
)

// RefusalCode is the error code an enforcement point answers a decision
// other than an allow with: approval_required, budget_exceeded (a budget
// denied it), rate_limited (a rate limit did) or policy_denied (anything
// else: a rule, a kill switch, a session state). An allow has none.
func (d *Decision) RefusalCode() errcode.Code {
	switch d.Effect {
	case Allow, Audit:
		return ""
	case RequireApproval:
		return errcode.ApprovalRequired
	}
	code := errcode.PolicyDenied
	for _, s := range d.Reasons {
		switch {
		case strings.HasPrefix(s, "budget "):
			return errcode.BudgetExceeded
		case strings.HasPrefix(s, "rate limit "):
			code = errcode.RateLimited
		case strings.HasPrefix(s, "circuit breaker "):
			return errcode.CircuitOpen
		}
	}
	return code
}
