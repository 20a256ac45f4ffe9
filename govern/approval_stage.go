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
// opens a ticket for every require_approval decision, redeems it when the
// agent retries the same action with its id, and makes every change an
// approver or a timeout asks for (see DecideApproval, ExpireApprovals).
type Approvals interface {
	Create(ctx context.Context, r approval.Request) (approval.Ticket, error)
	Check(ctx context.Context, id string, a *action.Action, policyDigest string) (approval.Ticket, error)
	Redeem(ctx context.Context, id string, a *action.Action, policyDigest, usedBy string) (approval.Ticket, error)
	Unredeem(ctx context.Context, id, usedBy string) error
	Cancel(ctx context.Context, id string) error
	Get(ctx context.Context, id string) (approval.Ticket, error)
	Decide(ctx context.Context, id string, approve bool, by, note string, records ...approval.Record) (approval.Ticket, error)
	Due(ctx context.Context) ([]approval.Ticket, error)
	Expire(ctx context.Context, id string, records ...approval.Record) (approval.Ticket, error)
}

// WithApprovals creates and redeems approval tickets.
func WithApprovals(a Approvals) Option { return func(e *Engine) { e.approval = a } }

// redeem lets an action that needs approval (by policy or by a budget
// throttle) through when it carries an approved ticket bound to exactly
// this action: the ticket is checked, the budgets reserve for the action
// (the approval lifting their throttle), the rate limits count it, and
// only then is the ticket used. Whatever refuses it gives back what was
// held before. policyAsks says the policy asked for the approval, so that
// the rate limits have not counted the action yet; reserved, that the
// budgets already hold its estimate.
func (e *Engine) redeem(ctx context.Context, a *action.Action, d *action.Decision, set *policy.Set, now time.Time, policyAsks, reserved bool, h *holds) {
	release := func() {
		if reserved {
			_ = e.budgets.Release(context.WithoutCancel(ctx), d.ID.String())
		}
	}
	if _, err := e.approval.Check(ctx, a.ApprovalID, a, set.Digest()); err != nil {
		release()
		deny(d, refusal(err))
		return
	}
	if e.budgets != nil && !reserved {
		switch e.reserve(ctx, a, d, true) {
		case budgetRefused:
			return
		case budgetThrottled:
			// ReserveApproved never asks for approval again; should it,
			// there is no second ticket to ask with.
			deny(d, "budget throttle not lifted by approval "+a.ApprovalID)
			return
		}
		reserved = true
	}
	if policyAsks && !e.admit(a, d, set, now) {
		release()
		return
	}
	t, err := e.approval.Redeem(ctx, a.ApprovalID, a, set.Digest(), d.ID.String())
	if err != nil {
		release()
		deny(d, refusal(err))
		return
	}
	h.redeemed = t.ID
	d.Effect = action.Allow
	d.Approval = t.Ref(now)
	by := "approved by " + t.DecidedBy
	if t.DecidedBy == approval.DecidedByTimeout {
		by = "approved on timeout (on_timeout: allow)"
	}
	d.Reasons = append(append([]string(nil), d.Reasons...), by+" (ticket "+t.ID+")")
}

// refusal is the reason a deny gives for a ticket that did not let its
// action through.
func refusal(err error) string {
	var re *approval.RedeemError
	if errors.As(err, &re) {
		return re.Error()
	}
	return "approval state unavailable: " + err.Error()
}

// ticket opens an approval ticket for a require_approval decision. If it
// cannot be stored the decision becomes a deny: asking for an approval that
// can never be given would leave the agent waiting forever. The ticket
// keeps the action for the approver to read as the audit log would: with
// redaction obligations applied and secrets and personal data masked.
func (e *Engine) ticket(ctx context.Context, a *action.Action, d *action.Decision, spec *policy.ApprovalSpec, set *policy.Set, h *holds) {
	if e.approval == nil {
		return
	}
	shown := maskSensitive(redact(a, d.Obligations))
	req := approval.Request{Action: a, Shown: &shown, PolicyDigest: set.Digest(), Rules: d.Rules, Reasons: d.Reasons, Provenance: d.Provenance, DecisionID: d.ID.String()}
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
	h.opened = t.ID
	d.Approval = t.Ref(e.clock())
}
