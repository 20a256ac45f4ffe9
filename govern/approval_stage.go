package govern

import (
	"context"
	"errors"
	"time"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/approval"
	"github.com/agentgov/agentgov/policy"
)

// Approvals holds approval tickets; *approval.Approvals is one. The engine
// creates a ticket for every require_approval decision and redeems it when
// the agent retries the same action with its id.
type Approvals interface {
	Create(ctx context.Context, r approval.Request) (approval.Ticket, error)
	Redeem(ctx context.Context, id string, a *action.Action, policyDigest string) (approval.Ticket, error)
}

// WithApprovals creates and redeems approval tickets.
func WithApprovals(a Approvals) Option { return func(e *Engine) { e.approval = a } }

// redeem lets an action that policy says needs approval through when it
// carries an approved ticket bound to exactly this action. It reports
// whether the pipeline goes on.
func (e *Engine) redeem(ctx context.Context, a *action.Action, d *action.Decision, set *policy.Set) bool {
	t, err := e.approval.Redeem(ctx, a.ApprovalID, a, set.Digest())
	if err != nil {
		var re *approval.RedeemError
		if errors.As(err, &re) {
			deny(d, re.Error())
		} else {
			deny(d, "approval state unavailable: "+err.Error())
		}
		return false
	}
	d.Effect = action.Allow
	d.Approval = t.Ref(e.clock())
	by := "approved by " + t.DecidedBy
	if t.DecidedBy == approval.DecidedByTimeout {
		by = "approved on timeout (on_timeout: allow)"
	}
	d.Reasons = append(append([]string(nil), d.Reasons...), by+" (ticket "+t.ID+")")
	return true
}

// ticket opens an approval ticket for a require_approval decision. If it
// cannot be stored the decision becomes a deny: asking for an approval that
// can never be given would leave the agent waiting forever.
func (e *Engine) ticket(ctx context.Context, a *action.Action, d *action.Decision, spec *policy.ApprovalSpec, set *policy.Set) {
	if e.approval == nil {
		return
	}
	req := approval.Request{Action: a, PolicyDigest: set.Digest(), Rules: d.Rules, Reasons: d.Reasons, DecisionID: d.ID.String()}
	if spec != nil {
		req.Approvers = spec.Approvers
		req.Timeout = time.Duration(spec.Timeout)
		req.OnTimeout = approval.OnTimeout(spec.OnTimeout)
	}
	t, err := e.approval.Create(ctx, req)
	if err != nil {
		deny(d, "approval ticket could not be created: "+err.Error())
		return
	}
	d.Approval = t.Ref(e.clock())
}
