package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/config"
	"github.com/agentgov/agentgov/errcode"
	"github.com/agentgov/agentgov/govern"
	"github.com/agentgov/agentgov/identity"
)

// identityRoutes are the agent registry (admin) and delegations (agents)
// of DESIGN §9.
func (s *Server) identityRoutes(m *http.ServeMux) {
	m.Handle("POST /v1/agents", s.route(admins, s.registerAgent))
	m.Handle("GET /v1/agents", s.route(admins, s.listAgents))
	m.Handle("GET /v1/agents/{id}", s.route(admins, s.getAgent))
	m.Handle("DELETE /v1/agents/{id}", s.route(admins, s.revokeAgent))
	m.Handle("POST /v1/delegations", s.route(agents, s.delegate))
}

// verifyCredential authenticates a credential that is not a static token.
func (s *Server) verifyCredential(r *http.Request, tok string, sum [32]byte) (*caller, error) {
	sub, err := s.opt.Identity.VerifySum(r.Context(), tok, sum)
	if err != nil {
		var rf *identity.Refusal
		if !errors.As(err, &rf) {
			rf = &identity.Refusal{Reason: identity.Unavailable, Msg: err.Error(), Err: err}
		}
		s.refused(r, rf)
		code := errcode.Unauthorized
		if rf.Reason == identity.Unavailable {
			code = errcode.Unavailable
		}
		return nil, errcode.Wrap(code, rf.Error(), rf)
	}
	cred := sub.Agent.Credential
	return &caller{name: cred.Kind + ":" + sub.Agent.ID, role: config.AgentRole, agent: sub.Agent, principal: sub.Principal, cred: cred}, nil
}

// maxClaimed bounds what a refused credential's claimed subject adds to
// the audit log.
const maxClaimed = 128

// refused records a refused credential in the audit log: who it claimed
// to be, why it was refused, and where it was presented, within the
// bounds of refusalLimiter.
func (s *Server) refused(r *http.Request, rf *identity.Refusal) {
	ok, unaudited := s.refusals.admit(s.clock(), sourceOf(r))
	if !ok {
		return
	}
	claimed := rf.Subject
	if len(claimed) > maxClaimed {
		claimed = claimed[:maxClaimed]
	}
	rec := map[string]any{
		"reason": string(rf.Reason), "kind": rf.Kind, "claimed": claimed, "message": rf.Msg,
		"method": r.Method, "path": r.URL.Path, "source": sourceOf(r),
	}
	if unaudited > 0 {
		rec["unaudited_before"] = unaudited
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 5*time.Second)
	defer cancel()
	if _, err := s.opt.Audit.Append(ctx, "credential_refused", rec); err != nil {
		s.log.Error("credential refusal not audited", "reason", string(rf.Reason), "err", err)
	}
}

// reasonOf is the reason code of a refused credential, for the error body.
func reasonOf(err error) string {
	var rf *identity.Refusal
	if errors.As(err, &rf) {
		return string(rf.Reason)
	}
	return ""
}

func (s *Server) registry() (*identity.Registry, error) {
	if s.opt.Identity == nil {
		return nil, errorf(errcode.Conflict, "the agent registry is not enabled on this server")
	}
	return s.opt.Identity.Registry(), nil
}

// agentRequest is a registration: what an admin may set. The thumbprints,
// owner and times are the server's.
type agentRequest struct {
	ID        string            `json:"id"`
	Type      string            `json:"type"`
	Labels    map[string]string `json:"labels"`
	Principal action.Principal  `json:"principal"`
	Ring      *int              `json:"ring"`
	Keys      []struct {
		KID       string `json:"kid"`
		PublicKey string `json:"public_key"`
	} `json:"keys"`
	SPIFFEID  string   `json:"spiffe_id"`
	Audiences []string `json:"audiences"`
}

func (s *Server) registerAgent(w http.ResponseWriter, r *http.Request) error {
	reg, err := s.registry()
	if err != nil {
		return err
	}
	body, err := s.readBody(w, r)
	if err != nil {
		return err
	}
	var req agentRequest
	if err := decodeStrict(body, &req); err != nil {
		return err
	}
	// The registry's ring is the agent's base ring: one left out is the
	// least privileged, never the most (Go's zero).
	ring := identity.MaxRing
	if req.Ring != nil {
		ring = *req.Ring
	}
	a := identity.Agent{ID: req.ID, Type: req.Type, Labels: req.Labels, Principal: req.Principal, Ring: ring,
		SPIFFEID: req.SPIFFEID, Audiences: req.Audiences}
	for _, k := range req.Keys {
		a.Keys = append(a.Keys, identity.Key{KID: k.KID, PublicKey: k.PublicKey})
	}
	if err := a.Validate(); err != nil {
		return errorf(errcode.BadRequest, err.Error())
	}
	c := callerOf(r.Context())
	if _, ok := reg.Get(a.ID); ok {
		return errorf(errcode.Conflict, fmt.Sprintf("agent %s is already registered (ids are never reused, even once revoked)", a.ID))
	}
	// Audited before it is kept, on a context the client cannot cancel: a
	// registration the log does not show does not happen, and one the
	// registry then refuses is taken back in the log (agent.failed).
	var got identity.Agent
	err = s.opt.Engine.Change(r.Context(), "agent", func(ctx context.Context, record func(context.Context, any) error) error {
		if err := record(ctx, map[string]any{"event": "register", "agent": a.ID, "by": c.name,
			"keys": thumbprints(a.Keys), "spiffe_id": a.SPIFFEID, "ring": a.Ring}); err != nil {
			return err
		}
		var err error
		got, err = reg.Register(ctx, a, c.name)
		return err
	})
	switch {
	case errors.Is(err, govern.ErrNotAudited):
		return errcode.Wrap(errcode.Unavailable, "the audit log cannot be written, so the agent was not registered", err)
	case errors.Is(err, identity.ErrExists):
		return errorf(errcode.Conflict, err.Error())
	case errors.Is(err, identity.ErrInvalid):
		return errorf(errcode.BadRequest, err.Error())
	case err != nil:
		return errcode.Wrap(errcode.Unavailable, "the registry cannot be written", err)
	}
	writeJSON(w, http.StatusCreated, got)
	return nil
}

func thumbprints(keys []identity.Key) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k.KID + ":" + k.Thumbprint
	}
	return out
}

func (s *Server) listAgents(w http.ResponseWriter, r *http.Request) error {
	reg, err := s.registry()
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"agents": reg.List()})
	return nil
}

func (s *Server) getAgent(w http.ResponseWriter, r *http.Request) error {
	reg, err := s.registry()
	if err != nil {
		return err
	}
	a, ok := reg.Get(r.PathValue("id"))
	if !ok {
		return errorf(errcode.NotFound, "no agent "+r.PathValue("id"))
	}
	writeJSON(w, http.StatusOK, a)
	return nil
}

// revokeAgent revokes an agent: kept first (a revocation must hold even
// when the log cannot be written), then audited.
func (s *Server) revokeAgent(w http.ResponseWriter, r *http.Request) error {
	reg, err := s.registry()
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	a, err := reg.Revoke(r.Context(), id)
	if errors.Is(err, identity.ErrNotFound) {
		return errorf(errcode.NotFound, "no agent "+id)
	}
	if err != nil {
		return errcode.Wrap(errcode.Unavailable, "the registry cannot be written, so the agent was not revoked", err)
	}
	c := callerOf(r.Context())
	actx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 10*time.Second)
	defer cancel()
	if _, err := s.opt.Audit.Append(actx, "agent", map[string]any{"event": "revoke", "agent": id, "by": c.name, "revoked_at": a.RevokedAt}); err != nil {
		return errcode.Wrap(errcode.Unavailable, "agent "+id+" is revoked, but the audit log could not record it", err)
	}
	writeJSON(w, http.StatusOK, a)
	return nil
}

// delegate issues a delegation from the calling agent to a registered
// sub-agent; a request that would widen what the caller holds is refused
// (403) and audited.
func (s *Server) delegate(w http.ResponseWriter, r *http.Request) error {
	if s.opt.Identity == nil {
		return errorf(errcode.Conflict, "delegation is not enabled on this server")
	}
	c := callerOf(r.Context())
	if c.role != config.AgentRole {
		return errorf(errcode.Forbidden, "only an agent delegates, to a sub-agent of its own")
	}
	body, err := s.readBody(w, r)
	if err != nil {
		return err
	}
	var req identity.DelegationRequest
	if err := decodeStrict(body, &req); err != nil {
		return err
	}
	by := identity.Subject{Agent: c.agent, Principal: c.principal}
	tok, d, err := s.opt.Identity.Delegate(r.Context(), by, req)
	actx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 10*time.Second)
	defer cancel()
	switch {
	case errors.Is(err, identity.ErrWidening):
		if _, aerr := s.opt.Audit.Append(actx, "delegation", map[string]any{"event": "refused", "by": c.agent.ID, "agent": req.Agent,
			"reason": err.Error(), "credential": c.cred}); aerr != nil {
			s.log.Error("refused delegation not audited", "err", aerr)
		}
		return errorf(errcode.Forbidden, err.Error())
	case errors.Is(err, identity.ErrInvalid):
		return errorf(errcode.BadRequest, err.Error())
	case err != nil:
		return errcode.Wrap(errcode.Unavailable, "the delegation cannot be kept", err)
	}
	last := d.Last()
	if _, err := s.opt.Audit.Append(actx, "delegation", map[string]any{"event": "issue", "delegation": *last, "by": c.agent.ID,
		"depth": len(d.Chain), "credential": c.cred}); err != nil {
		// Not handed out: a credential the log does not show must not act.
		return errcode.Wrap(errcode.Unavailable, "the audit log cannot be written, so no delegation was issued", err)
	}
	writeJSON(w, http.StatusCreated, map[string]any{"token": tok, "expires_at": last.ExpiresAt, "delegation": d.Chain})
	return nil
}
