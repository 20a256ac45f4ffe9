package govern

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/approval"
	"github.com/agentgov/agentgov/budget"
	"github.com/agentgov/agentgov/killswitch"
	"github.com/agentgov/agentgov/session"
)

// auditTimeout bounds an append made on a context detached from the
// caller's.
const auditTimeout = 10 * time.Second

// ErrNotAudited is wrapped by the error of a change of state whose audit
// record could not be written: the change was not made.
var ErrNotAudited = errors.New("the change could not be written to the audit log, so it was not made")

// ErrNotConfigured is returned for a change to a part the engine was built
// without (approvals, kill switches, sessions or budgets).
var ErrNotConfigured = errors.New("not configured on this engine")

// Change makes a change of state that the audit log must hold. apply
// prepares the change and, before it writes anything, calls record with
// everything it will write; record appends that to the log as an entry of
// kind, and if it cannot, apply must write nothing and return its error
// (which wraps ErrNotAudited). Should apply fail after its record was
// written, the failure is appended too, as kind+".failed" naming the entry,
// so that the log never claims a change that did not happen.
//
// Both run on a context detached from ctx and bounded, so that a client
// hanging up cannot leave a change made and unrecorded, or recorded and
// not made. Without an audit log record does nothing. Every change of
// state outside the decision itself goes through here: approvals decided
// or expired, kill switches engaged or released, sessions created or moved,
// budgets created, replaced or deleted.
func (e *Engine) Change(ctx context.Context, kind string, apply func(ctx context.Context, record func(context.Context, any) error) error) error {
	bound := auditTimeout
	if e.changeTimeout > 0 {
		bound = e.changeTimeout
	}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), bound)
	defer cancel()
	var logged *uint64
	record := func(ctx context.Context, entry any) error {
		if e.audit == nil {
			return nil
		}
		idx, err := e.audit.Append(ctx, kind, entry)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrNotAudited, err)
		}
		logged = &idx
		return nil
	}
	err := apply(actx, record)
	if err != nil && logged != nil {
		if _, ferr := e.audit.Append(actx, kind+".failed", map[string]any{"entry": *logged, "error": err.Error()}); ferr != nil {
			return fmt.Errorf("%w (its failure could not be recorded either: %v)", err, ferr)
		}
	}
	return err
}

// ApprovalDecision is an approver's answer to a ticket.
type ApprovalDecision struct {
	Ticket  string
	Approve bool
	// By is who decides, Note what they say; both are recorded.
	By   string
	Note string
	// Via says how the answer reached the engine ("api",
	// "mcp_elicitation"); it is recorded.
	Via string
	// May refuses the answer when By may not decide this ticket: the
	// caller knows roles and groups. Nil lets anyone.
	May func(approval.Ticket) error
}

type approvalEntry struct {
	approval.Change
	Via string `json:"via,omitempty"`
}

// DecideApproval approves or denies a pending ticket, recording the answer
// in the audit log before it is stored. The server's approval endpoints and
// the MCP gateway's elicitation both answer through it.
func (e *Engine) DecideApproval(ctx context.Context, v ApprovalDecision) (approval.Ticket, error) {
	if e.approval == nil {
		return approval.Ticket{}, fmt.Errorf("decide approval: approvals are %w", ErrNotConfigured)
	}
	t, err := e.approval.Get(ctx, v.Ticket)
	if err != nil {
		return approval.Ticket{}, err
	}
	if v.May != nil {
		if err := v.May(t); err != nil {
			return approval.Ticket{}, err
		}
	}
	var out approval.Ticket
	err = e.Change(ctx, "approval", func(ctx context.Context, record func(context.Context, any) error) error {
		var err error
		out, err = e.approval.Decide(ctx, v.Ticket, v.Approve, v.By, v.Note, func(ctx context.Context, c approval.Change) error {
			return record(ctx, approvalEntry{Change: c, Via: v.Via})
		})
		return err
	})
	if err == nil {
		err = e.approvalDecided(ctx, out, v.Approve, v.By)
	}
	return out, err
}

// ExpireApprovals records the expiry of every undecided ticket whose
// timeout has passed, each in the audit log before it is stored, and
// returns those it expired. A ticket that cannot be expired stays pending
// (and reads as expired all the same); the first error is returned after
// trying the others.
func (e *Engine) ExpireApprovals(ctx context.Context) ([]approval.Ticket, error) {
	if e.approval == nil {
		return nil, nil
	}
	due, err := e.approval.Due(ctx)
	if err != nil {
		return nil, err
	}
	var out []approval.Ticket
	var first error
	for _, t := range due {
		err := e.Change(ctx, "approval", func(ctx context.Context, record func(context.Context, any) error) error {
			got, err := e.approval.Expire(ctx, t.ID, func(ctx context.Context, c approval.Change) error {
				return record(ctx, approvalEntry{Change: c, Via: "timeout"})
			})
			if err == nil {
				out = append(out, got)
			}
			return err
		})
		if err != nil && first == nil {
			first = err
		}
	}
	return out, first
}

// RunApprovalExpiry expires due tickets every interval until ctx ends. A
// failed round is retried at the next one: expiry is a record of what
// already holds, since a ticket past its timeout reads as expired anyway.
func (e *Engine) RunApprovalExpiry(ctx context.Context, every time.Duration) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if _, err := e.ExpireApprovals(ctx); err != nil && ctx.Err() == nil {
				e.emit(ctx, Notice{Kind: "approval", Message: "expiring approval tickets: " + err.Error()})
			}
		}
	}
}

type killEntry struct {
	killswitch.Change
	// Decision is the decision whose response or budget engaged the switch.
	Decision string `json:"decision,omitempty"`
}

// EngageKill engages a kill switch, recording it in the audit log before
// it is stored. Engaging a scope that is already stopped returns the switch
// in force and records nothing.
func (e *Engine) EngageKill(ctx context.Context, sw killswitch.Switch) (killswitch.Switch, error) {
	return e.engageKill(ctx, sw, "")
}

func (e *Engine) engageKill(ctx context.Context, sw killswitch.Switch, decision string) (killswitch.Switch, error) {
	if e.kill == nil {
		return killswitch.Switch{}, fmt.Errorf("engage kill switch: kill switches are %w", ErrNotConfigured)
	}
	var out killswitch.Switch
	fresh := false // a scope already stopped keeps its switch, and records nothing
	err := e.Change(ctx, "kill", func(ctx context.Context, record func(context.Context, any) error) error {
		var err error
		out, err = e.kill.Engage(ctx, sw, func(ctx context.Context, c killswitch.Change) error {
			fresh = true
			return record(ctx, killEntry{Change: c, Decision: decision})
		})
		return err
	})
	if err == nil && fresh {
		e.killNotice(ctx, "kill", out, decision)
	}
	return out, err
}

// killNotice tells the operator that a switch was engaged or released.
func (e *Engine) killNotice(ctx context.Context, kind string, sw killswitch.Switch, decision string) {
	n := Notice{Kind: kind, Message: sw.Reason, Fields: map[string]any{
		"switch": sw.ID, "scope": string(sw.Scope), "target": sw.Target, "by": sw.By,
	}}
	if sw.Scope == killswitch.Agent {
		n.Agent = sw.Target
	}
	if sw.Agent != "" {
		n.Agent = sw.Agent
	}
	if kind == "kill_release" {
		n.Fields["by"] = sw.ReleasedBy
	}
	if id, err := action.ParseID(decision); err == nil {
		n.Decision = id
	}
	e.emit(ctx, n)
}

// ReleaseKill lifts a kill switch on behalf of by, recording the release in
// the audit log before it is stored; until then the switch stays engaged.
func (e *Engine) ReleaseKill(ctx context.Context, id, by string) (killswitch.Switch, error) {
	if e.kill == nil {
		return killswitch.Switch{}, fmt.Errorf("release kill switch: kill switches are %w", ErrNotConfigured)
	}
	var out killswitch.Switch
	err := e.Change(ctx, "kill", func(ctx context.Context, record func(context.Context, any) error) error {
		var err error
		out, err = e.kill.Release(ctx, id, by, func(ctx context.Context, c killswitch.Change) error {
			return record(ctx, killEntry{Change: c})
		})
		return err
	})
	if err == nil {
		e.killNotice(ctx, "kill_release", out, "")
	}
	return out, err
}

type budgetEntry struct {
	budget.Change
	By string `json:"by"`
}

// PutBudget creates or replaces a budget on behalf of by, recording the
// config in the audit log before it is stored.
func (e *Engine) PutBudget(ctx context.Context, c budget.Config, by string) error {
	if e.budgets == nil {
		return fmt.Errorf("put budget: budgets are %w", ErrNotConfigured)
	}
	return e.Change(ctx, "budget", func(ctx context.Context, record func(context.Context, any) error) error {
		return e.budgets.Put(ctx, c, func(ctx context.Context, ch budget.Change) error {
			return record(ctx, budgetEntry{Change: ch, By: by})
		})
	})
}

// DeleteBudget deletes a budget and its counters on behalf of by, recording
// it in the audit log first.
func (e *Engine) DeleteBudget(ctx context.Context, id, by string) error {
	if e.budgets == nil {
		return fmt.Errorf("delete budget: budgets are %w", ErrNotConfigured)
	}
	return e.Change(ctx, "budget", func(ctx context.Context, record func(context.Context, any) error) error {
		return e.budgets.Delete(ctx, id, func(ctx context.Context, ch budget.Change) error {
			return record(ctx, budgetEntry{Change: ch, By: by})
		})
	})
}

// CreateSession opens a session of agentID on behalf of by, recording it in
// the audit log before it is stored.
func (e *Engine) CreateSession(ctx context.Context, agentID, id string, by session.Actor) (session.Session, error) {
	if e.sessions == nil {
		return session.Session{}, fmt.Errorf("create session: sessions are %w", ErrNotConfigured)
	}
	var out session.Session
	err := e.Change(ctx, "session", func(ctx context.Context, record func(context.Context, any) error) error {
		var err error
		out, err = e.sessions.Create(ctx, agentID, id, by, func(ctx context.Context, c session.Change) error {
			return record(ctx, c)
		})
		return err
	})
	return out, err
}

// MoveSession pauses, resumes, closes or kills agentID's session id on
// behalf of by, recording the change in the audit log before it is stored.
// An operator's pause holds until an operator resumes the session.
func (e *Engine) MoveSession(ctx context.Context, agentID, id string, to session.State, by session.Actor) (session.Session, error) {
	if e.sessions == nil {
		return session.Session{}, fmt.Errorf("session %s: sessions are %w", id, ErrNotConfigured)
	}
	var out session.Session
	err := e.Change(ctx, "session", func(ctx context.Context, record func(context.Context, any) error) error {
		var err error
		out, err = e.sessions.Transition(ctx, agentID, id, to, by, func(ctx context.Context, c session.Change) error {
			return record(ctx, c)
		})
		return err
	})
	if err == nil && e.prov != nil && (to == session.Closed || to == session.Killed) {
		// The ledger lives as long as the session.
		e.prov.Close(LedgerKey(agentID, id))
	}
	if err == nil && e.prov != nil && (to == session.Closed || to == session.Killed) {
		// The ledger lives as long as the session.
		e.prov.Close(LedgerKey(agentID, id))
	}
	return out, err
}
