package identity

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/agentgov/agentgov/action"
)

// DelegationRequest is what an agent asks to hand a sub-agent
// (POST /v1/delegations).
type DelegationRequest struct {
	Agent        string         `json:"agent"`
	Tools        []string       `json:"tools,omitempty"`
	Points       []action.Point `json:"points,omitempty"`
	Destinations []string       `json:"destinations,omitempty"`
	// ExpiresIn is the delegation's life in seconds.
	ExpiresIn int64 `json:"expires_in"`
	// MaxDepth is how many further delegations the sub-agent may make.
	MaxDepth int `json:"max_depth"`
}

// ErrWidening is a delegation that would give more than the delegator
// holds.
var ErrWidening = errors.New("delegation would widen")

// Delegate issues a delegation from the verified subject by to the
// sub-agent req names, returning its token. It refuses (ErrWidening) what
// would widen the delegator's own delegation, and (ErrInvalid) what is
// malformed. The token is random; the store keeps the chain under its
// hash, so that every replica verifies it.
func (v *Verifier) Delegate(ctx context.Context, by Subject, req DelegationRequest) (string, Delegation, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
	}
	widen := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrWidening, fmt.Sprintf(format, args...))
	}
	now := v.opt.Clock().UTC()
	sub := v.reg.get(req.Agent)
	switch {
	case req.Agent == "":
		return "", Delegation{}, bad("agent: name the registered sub-agent")
	case sub == nil:
		return "", Delegation{}, bad("agent: %q is not a registered agent", req.Agent)
	case sub.Revoked():
		return "", Delegation{}, bad("agent: %q is revoked", req.Agent)
	case req.Agent == by.Agent.ID:
		return "", Delegation{}, bad("agent: an agent does not delegate to itself")
	}
	for _, l := range by.Agent.Delegation {
		if l.Agent == req.Agent {
			return "", Delegation{}, bad("agent: %q is already in the delegation chain", req.Agent)
		}
	}
	if req.ExpiresIn <= 0 || req.ExpiresIn > int64(v.opt.MaxDelegationTTL/time.Second) {
		return "", Delegation{}, bad("expires_in: want 1 to %d seconds, got %d", int64(v.opt.MaxDelegationTTL/time.Second), req.ExpiresIn)
	}
	if req.MaxDepth < 0 {
		return "", Delegation{}, bad("max_depth: must not be negative")
	}
	for i, p := range req.Points {
		if !p.Valid() {
			return "", Delegation{}, bad("points[%d]: unknown point %q", i, p)
		}
	}
	for i, t := range req.Tools {
		if t == "" || len(t) > 256 {
			return "", Delegation{}, bad("tools[%d]: want a tool name or glob", i)
		}
	}
	for i, d := range req.Destinations {
		if d == "" || len(d) > 256 {
			return "", Delegation{}, bad("destinations[%d]: want a host name or glob", i)
		}
	}
	link := action.Delegation{
		ID: "dlg_" + rand.Text()[:20], Agent: by.Agent.ID, Delegate: req.Agent,
		Tools: req.Tools, Points: req.Points, Destinations: req.Destinations,
		ExpiresAt: now.Add(time.Duration(req.ExpiresIn) * time.Second), MaxDepth: req.MaxDepth,
	}
	if n := len(by.Agent.Delegation); n > 0 {
		parent := by.Agent.Delegation[n-1]
		if parent.MaxDepth == 0 {
			return "", Delegation{}, widen("delegation %s allows no further delegation", parent.ID)
		}
		if req.MaxDepth > parent.MaxDepth-1 {
			return "", Delegation{}, widen("max_depth %d: delegation %s allows at most %d more", req.MaxDepth, parent.ID, parent.MaxDepth-1)
		}
		if link.ExpiresAt.After(parent.ExpiresAt) {
			return "", Delegation{}, widen("expires_in: delegation %s ends at %s", parent.ID, parent.ExpiresAt.Format(time.RFC3339))
		}
		if len(parent.Tools) > 0 {
			if len(link.Tools) == 0 {
				link.Tools = parent.Tools
			}
			for _, t := range link.Tools {
				if !action.GlobNarrows(t, parent.Tools) {
					return "", Delegation{}, widen("tools: %q is not within delegation %s's %v", t, parent.ID, parent.Tools)
				}
			}
		}
		if len(parent.Destinations) > 0 {
			if len(link.Destinations) == 0 {
				link.Destinations = parent.Destinations
			}
			for _, d := range link.Destinations {
				if !action.GlobNarrows(d, parent.Destinations) {
					return "", Delegation{}, widen("destinations: %q is not within delegation %s's %v", d, parent.ID, parent.Destinations)
				}
			}
		}
		if len(parent.Points) > 0 {
			if len(link.Points) == 0 {
				link.Points = parent.Points
			}
			for _, p := range link.Points {
				if !slices.Contains(parent.Points, p) {
					return "", Delegation{}, widen("points: %q is not within delegation %s's %v", p, parent.ID, parent.Points)
				}
			}
		}
	} else if req.MaxDepth > v.opt.MaxDelegationDepth {
		return "", Delegation{}, widen("max_depth %d: at most %d (identity.max_delegation_depth)", req.MaxDepth, v.opt.MaxDelegationDepth)
	}
	d := Delegation{Chain: append(slices.Clone(by.Agent.Delegation), link), Principal: by.Principal}
	tok := DelegationPrefix + rand.Text() + rand.Text()
	if err := v.st.PutDelegation(ctx, HashToken(tok), d); err != nil {
		return "", Delegation{}, fmt.Errorf("keep delegation: %w", err)
	}
	return tok, d, nil
}

// verifyDelegation checks a delegation token: known to the store, not
// expired, and no agent of its chain revoked.
func (v *Verifier) verifyDelegation(ctx context.Context, tok string, sum [32]byte, now time.Time) (Subject, error) {
	const kind = action.CredentialDelegation
	d, err := v.st.GetDelegation(ctx, HashToken(tok))
	if errors.Is(err, ErrNotFound) {
		return Subject{}, refuse(kind, UnknownToken, "", "no such delegation token")
	}
	if err != nil {
		return Subject{}, &Refusal{Reason: Unavailable, Kind: kind, Msg: "delegations cannot be read: " + err.Error(), Err: err}
	}
	if len(d.Chain) == 0 {
		return Subject{}, refuse(kind, Malformed, "", "the delegation has no chain")
	}
	last := d.Last()
	if !now.Before(last.ExpiresAt) {
		return Subject{}, refuse(kind, Expired, last.Delegate, "delegation %s expired at %s", last.ID, last.ExpiresAt.Format(time.RFC3339))
	}
	s := Subject{
		Agent: action.Agent{ID: last.Delegate, Delegation: d.Chain,
			Credential: &action.Credential{Kind: kind, Subject: last.Delegate, Issuer: last.Agent}},
		Principal: d.Principal,
		Expires:   last.ExpiresAt,
	}
	if a := v.reg.get(last.Delegate); a != nil {
		s.Agent.Type, s.Agent.Labels = a.Type, a.Labels
	}
	if err := v.stillValid(&s); err != nil {
		return Subject{}, err
	}
	v.cache.put(sum, s)
	return s, nil
}
