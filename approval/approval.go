// Package approval keeps the tickets of require_approval decisions. A ticket
// is bound to the exact action that needed approval — agent, session, tool,
// point, target and a digest of the canonical arguments — and to the policy
// set that asked for it. Once a human approves it, the agent retries the
// action with the ticket's id and the ticket lets exactly that action through,
// exactly once; anything else is refused with a reason code saying why.
package approval

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/agentgov/agentgov/action"
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

	// The action the ticket is bound to.
	AgentID     string          `json:"agent_id"`
	Session     string          `json:"session,omitempty"`
	Tool        action.Tool     `json:"tool,omitzero"`
	Point       action.Point    `json:"point"`
	Destination string          `json:"destination,omitempty"`
	Model       string          `json:"model,omitempty"`
	Resource    action.Resource `json:"resource,omitzero"`
	// ArgsDigest is the hex SHA-256 of the canonical (RFC 8785) arguments;
	// Args is that canonical text, for the approver to read.
	ArgsDigest string          `json:"args_digest"`
	Args       json.RawMessage `json:"args"`

	// Why approval was required, and by whom it may be given.
	PolicyDigest string    `json:"policy_digest"`
	Rules        []string  `json:"rules,omitempty"`
	Reasons      []string  `json:"reasons,omitempty"`
	Approvers    []string  `json:"approvers,omitempty"`
	OnTimeout    OnTimeout `json:"on_timeout"`
	DecisionID   string    `json:"decision_id,omitempty"`

	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
	DecidedAt time.Time `json:"decided_at,omitzero"`
	DecidedBy string    `json:"decided_by,omitempty"`
	Note      string    `json:"note,omitempty"`
	// RedeemBy is the deadline for using an approved ticket: as long after
	// the approval as the ticket was allowed to wait for it.
	RedeemBy time.Time `json:"redeem_by,omitzero"`
	UsedAt   time.Time `json:"used_at,omitzero"`
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
	Action       *action.Action
	PolicyDigest string
	Rules        []string
	Reasons      []string
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
	ReasonActionChanged = "action_changed" // destination, model or resource differ
	ReasonArgsChanged   = "args_changed"
	ReasonPolicyChanged = "policy_changed"
	ReasonPending       = "pending"
	ReasonDenied        = "denied"
	ReasonExpired       = "expired"
	ReasonAlreadyUsed   = "already_used"
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

// Store persists tickets. DecideTicket and RedeemTicket must each be one
// conditional write, so that of concurrent callers exactly one succeeds.
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
	// RedeemTicket marks the ticket used at now, only if it is approved and
	// redeem_by is after now, or it is pending with on_timeout allow and
	// expires_at is not after now; in that second case it records the
	// ticket as decided by DecidedByTimeout at expires_at.
	RedeemTicket(ctx context.Context, id string, now time.Time) (changed bool, err error)
	// ExpireTickets sets status expired on every pending ticket whose
	// expires_at is not after now, and returns those tickets.
	ExpireTickets(ctx context.Context, now time.Time) ([]Ticket, error)
}

// Approvals manages tickets over a Store.
type Approvals struct {
	st    Store
	clock func() time.Time
}

// New returns a ticket manager. clock decides creation, expiry and use.
func New(st Store, clock func() time.Time) *Approvals {
	return &Approvals{st: st, clock: clock}
}

// Create opens a pending ticket for r.Action.
func (m *Approvals) Create(ctx context.Context, r Request) (Ticket, error) {
	a := r.Action
	switch {
	case a == nil:
		return Ticket{}, fmt.Errorf("create approval: %w: no action", ErrInvalid)
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
	digest, canonical, err := action.ArgsDigest(a.Args)
	if err != nil {
		return Ticket{}, fmt.Errorf("create approval: %w", err)
	}
	now := m.clock().UTC()
	t := Ticket{
		ID:           newID(now),
		Status:       Pending,
		AgentID:      a.Agent.ID,
		Session:      a.Session,
		Tool:         action.Tool{Server: a.Tool.Server, Name: a.Tool.Name},
		Point:        a.PointOrDefault(),
		Destination:  a.Destination,
		Model:        a.Model,
		Resource:     a.Resource,
		ArgsDigest:   digest,
		Args:         canonical,
		PolicyDigest: r.PolicyDigest,
		Rules:        slices.Clone(r.Rules),
		Reasons:      slices.Clone(r.Reasons),
		Approvers:    slices.Clone(r.Approvers),
		OnTimeout:    onTimeout,
		DecisionID:   r.DecisionID,
		CreatedAt:    now,
		ExpiresAt:    now.Add(timeout),
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

// Decide approves or denies a pending ticket on behalf of by. Whether by is
// one of the ticket's approvers is for the caller to enforce, which knows
// the groups. A ticket that is decided already or has expired is a conflict.
func (m *Approvals) Decide(ctx context.Context, id string, approve bool, by, note string) (Ticket, error) {
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
	to, redeemBy := Denied, time.Time{}
	if approve {
		to, redeemBy = Approved, now.Add(t.ExpiresAt.Sub(t.CreatedAt))
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

// Redeem lets a through on ticket id if the ticket was approved (or timed
// out with on_timeout allow) for exactly this action under the policy set
// with digest policyDigest, and was never used. It consumes the ticket. A
// refusal is a *RedeemError whose Reason says what did not match.
func (m *Approvals) Redeem(ctx context.Context, id string, a *action.Action, policyDigest string) (Ticket, error) {
	t, err := m.st.GetTicket(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return Ticket{}, &RedeemError{ID: id, Reason: ReasonNotFound, Detail: "no such ticket"}
	}
	if err != nil {
		return Ticket{}, fmt.Errorf("redeem approval %s: %w", id, err)
	}
	if err := binding(t, a, policyDigest); err != nil {
		return Ticket{}, err
	}
	now := m.clock().UTC()
	if err := redeemable(t, now); err != nil {
		return Ticket{}, err
	}
	changed, err := m.st.RedeemTicket(ctx, id, now)
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
	t.Status, t.UsedAt = Used, now
	return t, nil
}

// Expire records as expired every pending ticket whose timeout has passed,
// and returns them, so that the caller can audit and announce each expiry
// once. Status reads do not depend on it: an undecided ticket past its
// timeout reads as expired either way.
func (m *Approvals) Expire(ctx context.Context) ([]Ticket, error) {
	list, err := m.st.ExpireTickets(ctx, m.clock().UTC())
	if err != nil {
		return nil, fmt.Errorf("expire approvals: %w", err)
	}
	return list, nil
}

// binding checks that a is the action t was issued for.
func binding(t Ticket, a *action.Action, policyDigest string) error {
	refuse := func(reason, detail string) error { return &RedeemError{ID: t.ID, Reason: reason, Detail: detail} }
	if a == nil {
		return refuse(ReasonArgsChanged, "no action given")
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
	if a.Destination != t.Destination || a.Model != t.Model || a.Resource != t.Resource {
		return refuse(ReasonActionChanged, "the destination, model or resource differ from the approved action")
	}
	digest, _, err := action.ArgsDigest(a.Args)
	if err != nil {
		return refuse(ReasonArgsChanged, err.Error())
	}
	if digest != t.ArgsDigest {
		return refuse(ReasonArgsChanged, "the arguments differ from the approved ones")
	}
	if policyDigest != t.PolicyDigest {
		return refuse(ReasonPolicyChanged, "the policy set changed since approval was requested")
	}
	return nil
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
