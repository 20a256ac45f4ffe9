// Package approval keeps the tickets of require_approval decisions. A ticket
// is bound to the whole action that needed approval — the digest of every
// field a policy can read (action.Digest): agent, principal, session, point,
// tool, arguments, resource, destination, model, content and estimate — and
// to the policy set that asked for it. Once a human approves it, the agent
// retries the action with the ticket's id and the ticket lets exactly that
// action through, exactly once; anything else is refused with a reason code
// saying what differs.
//
// A ticket keeps a copy of the action for the approver to read, as the
// caller gives it: the engine masks the secrets and personal data in it
// first, so that none is stored in clear.
package approval

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/jcs"
)

// Status is where a ticket is in its life: pending until a human decides or
// its timeout passes; approved until the action runs, then used.
type Status string

const (
	Pending  Status = "pending"
	Approved Status = "approved"
	Denied   Status = "denied"
	Expired  Status = "expired"
	Used     Status = "used"
)

// Valid reports whether s is a known status.
func (s Status) Valid() bool {
	switch s {
	case Pending, Approved, Denied, Expired, Used:
		return true
	}
	return false
}

// OnTimeout says what an undecided ticket becomes when its timeout passes.
type OnTimeout string

const (
	// TimeoutDeny (the default) refuses the action once the ticket expires.
	TimeoutDeny OnTimeout = "deny"
	// TimeoutAllow lets the action through once, as if approved, when nobody
	// decided in time.
	TimeoutAllow OnTimeout = "allow"
)

// DecidedByTimeout is the DecidedBy of a ticket that nobody decided and
// that on_timeout allow let through.
const DecidedByTimeout = "timeout"

// DefaultTimeout is how long a ticket waits for a human when the rule sets no
// timeout; MaxTimeout bounds what a rule may ask for.
const (
	DefaultTimeout = time.Hour
	MaxTimeout     = 30 * 24 * time.Hour
	MaxNoteLen     = 4096
)

// Ticket is one approval request and what became of it.
type Ticket struct {
	ID     string `json:"id"`
	Status Status `json:"status"`

	// The action the ticket is bound to: ActionDigest (action.Digest) binds
	// all of it. The fields below repeat what an approver scans first.
	ActionDigest string          `json:"action_digest"`
	AgentID      string          `json:"agent_id"`
	Session      string          `json:"session,omitempty"`
	Tool         action.Tool     `json:"tool,omitzero"`
	Point        action.Point    `json:"point"`
	Destination  string          `json:"destination,omitempty"`
	Model        string          `json:"model,omitempty"`
	Resource     action.Resource `json:"resource,omitzero"`
	// ArgsDigest (action.ArgsDigest) and ContentDigest identify the exact
	// arguments and content, so that a refusal can say which of them
	// changed.
	ArgsDigest    string `json:"args_digest"`
	ContentDigest string `json:"content_digest,omitempty"`
	// Action is the whole action as the approver sees it, with secrets and
	// personal data masked; Args is its arguments as canonical JSON.
	Action action.Action   `json:"action"`
	Args   json.RawMessage `json:"args"`

	// Why approval was required, and by whom it may be given.
	PolicyDigest string   `json:"policy_digest"`
	Rules        []string `json:"rules,omitempty"`
	Reasons      []string `json:"reasons,omitempty"`
	// Provenance says where the action's untrusted values came from, so
	// that an approver sees "the recipient came from a file, not from
	// you": {"args.recipient": ["tool:read_file"]}.
	Provenance map[string][]string `json:"provenance,omitempty"`
	Approvers  []string            `json:"approvers,omitempty"`
	OnTimeout  OnTimeout           `json:"on_timeout"`
	DecisionID string              `json:"decision_id,omitempty"`

	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
	DecidedAt time.Time `json:"decided_at,omitzero"`
	DecidedBy string    `json:"decided_by,omitempty"`
	Note      string    `json:"note,omitempty"`
	// RedeemBy is the deadline for using an approved ticket: as long after
	// the approval as the ticket was allowed to wait for it.
	RedeemBy time.Time `json:"redeem_by,omitzero"`
	UsedAt   time.Time `json:"used_at,omitzero"`
	// UsedBy is the decision that the ticket let through.
	UsedBy string `json:"used_by,omitempty"`
}

// StatusAt is the ticket's status at time now: a pending ticket whose
// timeout has passed is expired, whatever the store still says.
func (t Ticket) StatusAt(now time.Time) Status {
	if t.Status == Pending && !now.Before(t.ExpiresAt) {
		return Expired
	}
	return t.Status
}

// Ref is the ticket as a Decision shows it.
func (t Ticket) Ref(now time.Time) *action.ApprovalRef {
	return &action.ApprovalRef{ID: t.ID, Status: string(t.StatusAt(now)), ExpiresAt: t.ExpiresAt.UTC().Format(time.RFC3339)}
}

// Request is what the engine knows when a decision requires approval.
type Request struct {
	// Action is the action as decided: the ticket is bound to it.
	Action *action.Action
	// Shown is the same action as the approver may see it, with secrets and
	// personal data masked by the caller; it is stored as given.
	Shown        *action.Action
	PolicyDigest string
	Rules        []string
	Reasons      []string
	Provenance   map[string][]string
	Approvers    []string
	// Timeout is how long the ticket waits for a decision; zero means
	// DefaultTimeout.
	Timeout time.Duration
	// OnTimeout is what an undecided ticket becomes; empty means deny.
	OnTimeout  OnTimeout
	DecisionID string
}

var (
	// ErrNotFound is returned for a ticket id that does not exist.
	ErrNotFound = errors.New("approval ticket not found")
	// ErrConflict is returned when deciding a ticket that is no longer
	// pending (already decided, or expired). The server maps it to 409.
	ErrConflict = errors.New("approval ticket conflict")
	// ErrInvalid is returned for malformed requests.
	ErrInvalid = errors.New("invalid approval request")
	// ErrTooManyPending is returned when the agent already has as many
	// tickets waiting as it may.
	ErrTooManyPending = errors.New("too many approval tickets waiting")
	// ErrRefused is wrapped by every *RedeemError.
	ErrRefused = errors.New("approval refused")
)

// Reason codes of a refused redemption.
const (
	ReasonNotFound      = "not_found"
	ReasonWrongAgent    = "wrong_agent"
	ReasonWrongSession  = "wrong_session"
	ReasonWrongTool     = "wrong_tool"
	ReasonWrongPoint    = "wrong_point"
	ReasonActionChanged = "action_changed" // destination, model, resource or anything else bound
	ReasonArgsChanged   = "args_changed"
	// ReasonContentChanged and ReasonEstimateChanged: the text, or the
	// estimate budgets reserve, differ from the approved action's.
	ReasonContentChanged  = "content_changed"
	ReasonEstimateChanged = "estimate_changed"
	ReasonPolicyChanged   = "policy_changed"
	ReasonPending         = "pending"
	ReasonDenied          = "denied"
	ReasonExpired         = "expired"
	ReasonAlreadyUsed     = "already_used"
)

// RedeemError says why a ticket did not let an action through.
type RedeemError struct {
	ID     string
	Reason string // one of the Reason constants
	Detail string
}

func (e *RedeemError) Error() string {
	return "approval " + e.ID + " refused (" + e.Reason + "): " + e.Detail
}

func (e *RedeemError) Unwrap() error { return ErrRefused }

// Store persists tickets. DecideTicket, RedeemTicket, UnredeemTicket,
// DeleteTicket and ExpireTicket must each be one conditional write, so that
// of concurrent callers exactly one succeeds.
type Store interface {
	InsertTicket(ctx context.Context, t Ticket) error
	// GetTicket returns a ticket, or an error wrapping ErrNotFound.
	GetTicket(ctx context.Context, id string) (Ticket, error)
	// ListTickets returns tickets with any of the given stored statuses
	// (all when none are given), oldest first.
	ListTickets(ctx context.Context, statuses ...Status) ([]Ticket, error)
	// DecideTicket sets status to (approved or denied), decided_at, decided_by,
	// note and redeem_by, only if the ticket is pending and expires after now.
	DecideTicket(ctx context.Context, id string, to Status, by, note string, now, redeemBy time.Time) (changed bool, err error)
	// RedeemTicket marks the ticket used at now by decision usedBy, only if
	// it is approved and redeem_by is after now, or it is pending or expired
	// with on_timeout allow and expires_at is not after now; in that second
	// case it records the ticket as decided by DecidedByTimeout at
	// expires_at.
	RedeemTicket(ctx context.Context, id string, now time.Time, usedBy string) (changed bool, err error)
	// UnredeemTicket undoes RedeemTicket, only if the ticket is used by
	// decision usedBy: an approved ticket becomes approved again, one let
	// through by its timeout becomes expired and undecided again.
	UnredeemTicket(ctx context.Context, id, usedBy string) (changed bool, err error)
	// DeleteTicket removes a ticket, only if it is pending.
	DeleteTicket(ctx context.Context, id string) (changed bool, err error)
	// DueTickets returns the pending tickets whose expires_at is not after
	// now, oldest first.
	DueTickets(ctx context.Context, now time.Time) ([]Ticket, error)
	// ExpireTicket sets status expired, only if the ticket is pending and
	// its expires_at is not after now.
	ExpireTicket(ctx context.Context, id string, now time.Time) (changed bool, err error)
	// CountPendingTickets counts the pending tickets of one agent that
	// expire after now.
	CountPendingTickets(ctx context.Context, agentID string, now time.Time) (int, error)
}

// Record writes a change to the audit log before it is made: it is given
// everything the change will write, and an error from it stops the change.
// The engine supplies it (govern.Engine.DecideApproval and
// ExpireApprovals); a nil Record records nothing.
type Record func(ctx context.Context, c Change) error

func record(ctx context.Context, rs []Record, c Change) error {
	for _, r := range rs {
		if r == nil {
			continue
		}
		if err := r(ctx, c); err != nil {
			return err
		}
	}
	return nil
}

// Approvals manages tickets over a Store.
type Approvals struct {
	st         Store
	clock      func() time.Time
	maxPending int
}

// DefaultMaxPending is how many tickets one agent may have waiting for a
// decision at once, unless MaxPendingPerAgent says otherwise.
const DefaultMaxPending = 100

// Option adjusts a ticket manager.
type Option func(*Approvals)

// MaxPendingPerAgent bounds the tickets one agent may have waiting at once
// (n > 0). Every require_approval decision opens a ticket: without a bound
// an agent could bury the approvers' queue, and the one call that matters
// with it, under thousands of requests.
func MaxPendingPerAgent(n int) Option {
	return func(m *Approvals) {
		if n > 0 {
			m.maxPending = n
		}
	}
}

// New returns a ticket manager. clock decides creation, expiry and use.
func New(st Store, clock func() time.Time, opts ...Option) *Approvals {
	m := &Approvals{st: st, clock: clock, maxPending: DefaultMaxPending}
	for _, o := range opts {
		o(m)
	}
	return m
}

// Create opens a pending ticket for r.Action.
func (m *Approvals) Create(ctx context.Context, r Request) (Ticket, error) {
	a := r.Action
	switch {
	case a == nil:
		return Ticket{}, fmt.Errorf("create approval: %w: no action", ErrInvalid)
	case r.Shown == nil:
		return Ticket{}, fmt.Errorf("create approval: %w: no copy of the action to show the approver", ErrInvalid)
	case a.Agent.ID == "":
		return Ticket{}, fmt.Errorf("create approval: %w: action has no agent id", ErrInvalid)
	case r.Timeout < 0 || r.Timeout > MaxTimeout:
		return Ticket{}, fmt.Errorf("create approval: %w: timeout %s is outside 0..%s", ErrInvalid, r.Timeout, MaxTimeout)
	}
	onTimeout := r.OnTimeout
	switch onTimeout {
	case "":
		onTimeout = TimeoutDeny
	case TimeoutDeny, TimeoutAllow:
	default:
		return Ticket{}, fmt.Errorf("create approval: %w: on_timeout %q (want deny or allow)", ErrInvalid, r.OnTimeout)
	}
	timeout := r.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	// Counted, then inserted: concurrent requests of one agent may pass the
	// bound by as many as run at once, which the bound tolerates.
	waiting, err := m.st.CountPendingTickets(ctx, a.Agent.ID, m.clock())
	if err != nil {
		return Ticket{}, fmt.Errorf("create approval: %w", err)
	}
	if waiting >= m.maxPending {
		return Ticket{}, fmt.Errorf("create approval: %w: agent %s already has %d tickets waiting for a decision (at most %d): decide or cancel some, or let them expire",
			ErrTooManyPending, a.Agent.ID, waiting, m.maxPending)
	}
	actionDigest, err := action.Digest(a)
	if err != nil {
		return Ticket{}, fmt.Errorf("create approval: %w", err)
	}
	digest, _, err := action.ArgsDigest(a.Args)
	if err != nil {
		return Ticket{}, fmt.Errorf("create approval: %w", err)
	}
	shown := *r.Shown
	shown.ApprovalID = ""
	_, canonical, err := action.ArgsDigest(shown.Args)
	if err != nil {
		return Ticket{}, fmt.Errorf("create approval: %w", err)
	}
	now := m.clock().UTC()
	t := Ticket{
		ID:            newID(now),
		Status:        Pending,
		ActionDigest:  actionDigest,
		AgentID:       a.Agent.ID,
		Session:       a.Session,
		Tool:          action.Tool{Server: a.Tool.Server, Name: a.Tool.Name},
		Point:         a.PointOrDefault(),
		Destination:   a.Destination,
		Model:         a.Model,
		Resource:      a.Resource,
		ArgsDigest:    digest,
		ContentDigest: contentDigest(a.Content),
		Action:        shown,
		Args:          canonical,
		PolicyDigest:  r.PolicyDigest,
		Rules:         slices.Clone(r.Rules),
		Reasons:       slices.Clone(r.Reasons),
		Provenance:    cloneProvenance(r.Provenance),
		Approvers:     slices.Clone(r.Approvers),
		OnTimeout:     onTimeout,
		DecisionID:    r.DecisionID,
		CreatedAt:     now,
		ExpiresAt:     now.Add(timeout),
	}
	if err := m.st.InsertTicket(ctx, t); err != nil {
		return Ticket{}, fmt.Errorf("create approval: %w", err)
	}
	return t, nil
}

// Get returns a ticket with its status as of now.
func (m *Approvals) Get(ctx context.Context, id string) (Ticket, error) {
	t, err := m.st.GetTicket(ctx, id)
	if err != nil {
		return Ticket{}, fmt.Errorf("get approval %s: %w", id, err)
	}
	t.Status = t.StatusAt(m.clock())
	return t, nil
}

// List returns the tickets whose status as of now is status, oldest first;
// every ticket when status is empty.
func (m *Approvals) List(ctx context.Context, status Status) ([]Ticket, error) {
	if status != "" && !status.Valid() {
		return nil, fmt.Errorf("list approvals: %w: unknown status %q (want pending, approved, denied, expired or used)", ErrInvalid, status)
	}
	var stored []Status
	switch status {
	case "":
	case Expired:
		stored = []Status{Pending, Expired}
	default:
		stored = []Status{status}
	}
	list, err := m.st.ListTickets(ctx, stored...)
	if err != nil {
		return nil, fmt.Errorf("list approvals: %w", err)
	}
	now := m.clock()
	out := list[:0]
	for _, t := range list {
		t.Status = t.StatusAt(now)
		if status == "" || t.Status == status {
			out = append(out, t)
		}
	}
	return out, nil
}

// Change is the audit record of a change to a ticket by a human or by its
// timeout: everything the change writes.
type Change struct {
	Event  string `json:"event"` // "approve", "deny" or "expire"
	Ticket string `json:"ticket"`
	Status Status `json:"status"`
	By     string `json:"by,omitempty"`
	Note   string `json:"note,omitempty"`
	// At is when the change is made; RedeemBy, for an approval, is until
	// when the approved action may run.
	At       time.Time `json:"at"`
	RedeemBy time.Time `json:"redeem_by,omitzero"`
	// The ticket's own: the decision that opened it, and the action it
	// binds.
	Decision     string `json:"decision,omitempty"`
	ActionDigest string `json:"action_digest"`
}

// Decide approves or denies a pending ticket on behalf of by. Whether by is
// one of the ticket's approvers is for the caller to enforce, which knows
// the groups. A ticket that is decided already or has expired is a
// conflict. Each record given is called with the Change before it is
// stored; if one fails, nothing is stored.
func (m *Approvals) Decide(ctx context.Context, id string, approve bool, by, note string, records ...Record) (Ticket, error) {
	if by == "" {
		return Ticket{}, fmt.Errorf("decide approval %s: %w: who decides (by) is required", id, ErrInvalid)
	}
	if len(note) > MaxNoteLen {
		return Ticket{}, fmt.Errorf("decide approval %s: %w: note is longer than %d bytes", id, ErrInvalid, MaxNoteLen)
	}
	t, err := m.st.GetTicket(ctx, id)
	if err != nil {
		return Ticket{}, fmt.Errorf("decide approval %s: %w", id, err)
	}
	now := m.clock().UTC()
	if s := t.StatusAt(now); s != Pending {
		return Ticket{}, fmt.Errorf("decide approval %s: %w: the ticket is %s", id, ErrConflict, s)
	}
	to, redeemBy, event := Denied, time.Time{}, "deny"
	if approve {
		to, redeemBy, event = Approved, now.Add(t.ExpiresAt.Sub(t.CreatedAt)), "approve"
	}
	if err := record(ctx, records, Change{
		Event: event, Ticket: id, Status: to, By: by, Note: note, At: now, RedeemBy: redeemBy,
		Decision: t.DecisionID, ActionDigest: t.ActionDigest,
	}); err != nil {
		return Ticket{}, fmt.Errorf("decide approval %s: %w", id, err)
	}
	changed, err := m.st.DecideTicket(ctx, id, to, by, note, now, redeemBy)
	if err != nil {
		return Ticket{}, fmt.Errorf("decide approval %s: %w", id, err)
	}
	if !changed {
		cur, err := m.st.GetTicket(ctx, id)
		if err != nil {
			return Ticket{}, fmt.Errorf("decide approval %s: %w", id, err)
		}
		return Ticket{}, fmt.Errorf("decide approval %s: %w: the ticket is %s", id, ErrConflict, cur.StatusAt(now))
	}
	t.Status, t.DecidedAt, t.DecidedBy, t.Note, t.RedeemBy = to, now, by, note, redeemBy
	return t, nil
}

// Check reports whether ticket id would let a through under the policy set
// with digest policyDigest, without using it: it was approved (or timed out
// with on_timeout allow) for exactly this action and was never used. A
// refusal is a *RedeemError whose Reason says what did not match.
func (m *Approvals) Check(ctx context.Context, id string, a *action.Action, policyDigest string) (Ticket, error) {
	t, err := m.st.GetTicket(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return Ticket{}, &RedeemError{ID: id, Reason: ReasonNotFound, Detail: "no such ticket"}
	}
	if err != nil {
		return Ticket{}, fmt.Errorf("check approval %s: %w", id, err)
	}
	if err := binding(t, a, policyDigest); err != nil {
		return Ticket{}, err
	}
	if err := redeemable(t, m.clock().UTC()); err != nil {
		return Ticket{}, err
	}
	return t, nil
}

// Redeem is Check, and then uses the ticket for decision usedBy: of
// concurrent redemptions exactly one succeeds. Unredeem gives it back.
func (m *Approvals) Redeem(ctx context.Context, id string, a *action.Action, policyDigest, usedBy string) (Ticket, error) {
	if usedBy == "" {
		return Ticket{}, fmt.Errorf("redeem approval %s: %w: the decision using it (usedBy) is required", id, ErrInvalid)
	}
	t, err := m.Check(ctx, id, a, policyDigest)
	if err != nil {
		return Ticket{}, err
	}
	now := m.clock().UTC()
	changed, err := m.st.RedeemTicket(ctx, id, now, usedBy)
	if err != nil {
		return Ticket{}, fmt.Errorf("redeem approval %s: %w", id, err)
	}
	if !changed {
		// Someone else changed it between our read and our write: most
		// likely a concurrent redemption.
		if cur, err := m.st.GetTicket(ctx, id); err == nil {
			if err := redeemable(cur, now); err != nil {
				return Ticket{}, err
			}
		}
		return Ticket{}, &RedeemError{ID: id, Reason: ReasonAlreadyUsed, Detail: "the ticket has been used"}
	}
	if t.Status != Approved {
		t.DecidedBy, t.DecidedAt = DecidedByTimeout, t.ExpiresAt
	}
	t.Status, t.UsedAt, t.UsedBy = Used, now, usedBy
	return t, nil
}

// Unredeem gives back a ticket that decision usedBy redeemed, for a
// decision that could not be completed (its audit record could not be
// written): the approval is not lost with it.
func (m *Approvals) Unredeem(ctx context.Context, id, usedBy string) error {
	changed, err := m.st.UnredeemTicket(ctx, id, usedBy)
	if err != nil {
		return fmt.Errorf("give back approval %s: %w", id, err)
	}
	if !changed {
		return fmt.Errorf("give back approval %s: %w: it is not used by %s", id, ErrConflict, usedBy)
	}
	return nil
}

// Cancel removes a pending ticket whose decision could not be completed
// (its audit record could not be written): a ticket for a decision that did
// not happen must not be approved.
func (m *Approvals) Cancel(ctx context.Context, id string) error {
	changed, err := m.st.DeleteTicket(ctx, id)
	if err != nil {
		return fmt.Errorf("cancel approval %s: %w", id, err)
	}
	if !changed {
		return fmt.Errorf("cancel approval %s: %w: it is no longer pending", id, ErrConflict)
	}
	return nil
}

// Due returns the pending tickets whose timeout has passed and whose expiry
// is not yet recorded, oldest first. Status reads do not depend on that
// record: an undecided ticket past its timeout reads as expired either way.
func (m *Approvals) Due(ctx context.Context) ([]Ticket, error) {
	list, err := m.st.DueTickets(ctx, m.clock().UTC())
	if err != nil {
		return nil, fmt.Errorf("expire approvals: %w", err)
	}
	return list, nil
}

// Expire records that ticket id, undecided, timed out. Each record given is
// called with the Change before it is stored; if one fails, nothing is
// stored. A ticket that is not pending and past its timeout is a conflict.
func (m *Approvals) Expire(ctx context.Context, id string, records ...Record) (Ticket, error) {
	t, err := m.st.GetTicket(ctx, id)
	if err != nil {
		return Ticket{}, fmt.Errorf("expire approval %s: %w", id, err)
	}
	now := m.clock().UTC()
	if t.Status != Pending || now.Before(t.ExpiresAt) {
		return Ticket{}, fmt.Errorf("expire approval %s: %w: the ticket is %s", id, ErrConflict, t.StatusAt(now))
	}
	if err := record(ctx, records, Change{
		Event: "expire", Ticket: id, Status: Expired, At: t.ExpiresAt,
		Decision: t.DecisionID, ActionDigest: t.ActionDigest,
	}); err != nil {
		return Ticket{}, fmt.Errorf("expire approval %s: %w", id, err)
	}
	changed, err := m.st.ExpireTicket(ctx, id, now)
	if err != nil {
		return Ticket{}, fmt.Errorf("expire approval %s: %w", id, err)
	}
	if !changed {
		return Ticket{}, fmt.Errorf("expire approval %s: %w: it changed meanwhile", id, ErrConflict)
	}
	t.Status = Expired
	return t, nil
}

// binding checks that a is the action t was issued for.
func binding(t Ticket, a *action.Action, policyDigest string) error {
	refuse := func(reason, detail string) error { return &RedeemError{ID: t.ID, Reason: reason, Detail: detail} }
	if a == nil {
		return refuse(ReasonActionChanged, "no action given")
	}
	if a.Agent.ID != t.AgentID {
		return refuse(ReasonWrongAgent, "the ticket was issued to another agent")
	}
	if a.Session != t.Session {
		return refuse(ReasonWrongSession, fmt.Sprintf("the ticket is for session %q, not %q", t.Session, a.Session))
	}
	if a.Tool.Server != t.Tool.Server || a.Tool.Name != t.Tool.Name {
		return refuse(ReasonWrongTool, fmt.Sprintf("the ticket is for tool %q, not %q", toolName(t.Tool), toolName(a.Tool)))
	}
	if p := a.PointOrDefault(); p != t.Point {
		return refuse(ReasonWrongPoint, fmt.Sprintf("the ticket is for point %s, not %s", t.Point, p))
	}
	if t.ActionDigest == "" {
		return refuse(ReasonActionChanged, "the ticket was issued before tickets were bound to the whole action; retry without it to ask for approval again")
	}
	digest, err := action.Digest(a)
	if err != nil {
		return refuse(ReasonActionChanged, err.Error())
	}
	if digest != t.ActionDigest {
		return refuse(difference(t, a))
	}
	if policyDigest != t.PolicyDigest {
		return refuse(ReasonPolicyChanged, "the policy set changed since approval was requested")
	}
	return nil
}

// difference says what of a differs from the action t was approved for,
// as far as the ticket can tell: arguments and content are compared by
// digest, since the ticket keeps them only masked.
func difference(t Ticket, a *action.Action) (reason, detail string) {
	was := t.Action
	if a.Agent.Type != was.Agent.Type || !sameJSON(a.Agent.Labels, was.Agent.Labels) || a.Principal != was.Principal {
		return ReasonWrongAgent, "the agent's type, labels or principal differ from the approved action's"
	}
	if !sameJSON(a.Tool.Annotations, was.Tool.Annotations) {
		return ReasonWrongTool, "the tool's annotations differ from the approved ones"
	}
	if d, _, err := action.ArgsDigest(a.Args); err != nil || d != t.ArgsDigest {
		return ReasonArgsChanged, "the arguments differ from the approved ones"
	}
	if contentDigest(a.Content) != t.ContentDigest {
		return ReasonContentChanged, "the content differs from the approved content"
	}
	if a.Estimate != was.Estimate {
		return ReasonEstimateChanged, fmt.Sprintf("the estimate (%d tokens, %g USD) differs from the approved one (%d tokens, %g USD)",
			a.Estimate.Tokens, a.Estimate.CostUSD, was.Estimate.Tokens, was.Estimate.CostUSD)
	}
	var fields []string
	if a.Destination != t.Destination {
		fields = append(fields, fmt.Sprintf("destination (%q, approved %q)", a.Destination, t.Destination))
	}
	if a.Model != t.Model {
		fields = append(fields, fmt.Sprintf("model (%q, approved %q)", a.Model, t.Model))
	}
	if a.Resource != t.Resource {
		fields = append(fields, "resource")
	}
	if len(fields) > 0 {
		return ReasonActionChanged, "the " + strings.Join(fields, ", ") + " differ from the approved action"
	}
	return ReasonActionChanged, "the action differs from the approved one"
}

// sameJSON compares two maps as canonical JSON, where an empty map is none
// and numbers compare by value.
func sameJSON[M ~map[K]V, K comparable, V any](x, y M) bool {
	if len(x) == 0 || len(y) == 0 {
		return len(x) == len(y)
	}
	bx, err1 := jcs.Marshal(x)
	by, err2 := jcs.Marshal(y)
	return err1 == nil && err2 == nil && string(bx) == string(by)
}

// contentDigest identifies an action's content: "sha256:" and its hex
// SHA-256; empty for no content.
func contentDigest(s string) string {
	if s == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(s))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// redeemable checks that t may be used at now.
func redeemable(t Ticket, now time.Time) error {
	refuse := func(reason, detail string) error { return &RedeemError{ID: t.ID, Reason: reason, Detail: detail} }
	switch t.StatusAt(now) {
	case Approved:
		if !now.Before(t.RedeemBy) {
			return refuse(ReasonExpired, "the approval lapsed at "+t.RedeemBy.UTC().Format(time.RFC3339)+" without being used")
		}
		return nil
	case Expired:
		if t.OnTimeout == TimeoutAllow {
			return nil
		}
		return refuse(ReasonExpired, "nobody decided before "+t.ExpiresAt.UTC().Format(time.RFC3339))
	case Pending:
		return refuse(ReasonPending, "the ticket is still waiting for an approver")
	case Denied:
		return refuse(ReasonDenied, "an approver denied the ticket")
	case Used:
		return refuse(ReasonAlreadyUsed, "the ticket has been used")
	}
	return refuse(ReasonDenied, fmt.Sprintf("the ticket has unknown status %q", t.Status))
}

func toolName(t action.Tool) string {
	if t.Server == "" {
		return t.Name
	}
	return t.Server + "/" + t.Name
}

// newID makes "apr_" and 26 base32 characters: the time, for ordering, and
// 80 random bits, which make the id unguessable.
func newID(now time.Time) string {
	var r [10]byte
	rand.Read(r[:])
	id := action.NewID(now.UnixMilli(), binary.BigEndian.Uint16(r[:2]), binary.BigEndian.Uint64(r[2:]))
	return "apr_" + id.String()[len("dec_"):]
}

func cloneProvenance(p map[string][]string) map[string][]string {
	if len(p) == 0 {
		return nil
	}
	out := make(map[string][]string, len(p))
	for k, v := range p {
		out[k] = slices.Clone(v)
	}
	return out
}
