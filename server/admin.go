package server

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/agentgov/agentgov/approval"
	"github.com/agentgov/agentgov/budget"
	"github.com/agentgov/agentgov/config"
	"github.com/agentgov/agentgov/killswitch"
	"github.com/agentgov/agentgov/session"
)

// --- approvals ---

func (s *Server) listApprovals(w http.ResponseWriter, r *http.Request) error {
	st := approval.Status(r.URL.Query().Get("status"))
	if st != "" && !st.Valid() {
		return errorf(codeBadRequest, fmt.Sprintf("status: unknown status %q", st))
	}
	ts, err := s.opt.Approvals.List(r.Context(), st)
	if err != nil {
		return err
	}
	c := callerOf(r.Context())
	out := make([]approval.Ticket, 0, len(ts))
	for _, t := range ts {
		if mayApprove(c, t) {
			out = append(out, t)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"approvals": out})
	return nil
}

// mayApprove: admins decide any ticket; an approver decides tickets whose
// rule names no approvers, names it ("user:NAME" or its bare name), or names
// one of its groups ("group:NAME").
func mayApprove(c *caller, t approval.Ticket) bool {
	if c.role == config.Admin || len(t.Approvers) == 0 {
		return true
	}
	for _, a := range t.Approvers {
		if a == c.name || a == "user:"+c.name {
			return true
		}
		if g, ok := strings.CutPrefix(a, "group:"); ok && slices.Contains(c.groups, g) {
			return true
		}
	}
	return false
}

func (s *Server) getApproval(w http.ResponseWriter, r *http.Request) error {
	t, err := s.opt.Approvals.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	if !mayApprove(callerOf(r.Context()), t) {
		return errorf(codeNotFound, "approval ticket not found")
	}
	writeJSON(w, http.StatusOK, t)
	return nil
}

func (s *Server) decideApproval(approve bool) handler {
	return func(w http.ResponseWriter, r *http.Request) error {
		body, err := s.readBody(w, r)
		if err != nil {
			return err
		}
		var req struct {
			Note string `json:"note"`
		}
		if len(body) > 0 {
			if err := decodeStrict(body, &req); err != nil {
				return err
			}
		}
		ctx := r.Context()
		c := callerOf(ctx)
		id := r.PathValue("id")
		t, err := s.opt.Approvals.Get(ctx, id)
		if err != nil {
			return err
		}
		if !mayApprove(c, t) {
			return errorf(codeForbidden, fmt.Sprintf("%s is not among the approvers of %s (%s)", c.name, id, strings.Join(t.Approvers, ", ")))
		}
		t, err = s.opt.Approvals.Decide(ctx, id, approve, c.name, req.Note)
		if err != nil {
			return err
		}
		if _, err := s.opt.Audit.Append(ctx, "approval", map[string]any{"ticket": t.ID, "status": t.Status, "by": c.name, "note": req.Note, "decision": t.DecisionID}); err != nil {
			return &apiError{code: codeUnavailable, msg: "the approval was stored but could not be audited", cause: err}
		}
		writeJSON(w, http.StatusOK, t)
		return nil
	}
}

// --- sessions ---

func (s *Server) createSession(w http.ResponseWriter, r *http.Request) error {
	body, err := s.readBody(w, r)
	if err != nil {
		return err
	}
	var req struct {
		ID    string `json:"id"`
		Agent string `json:"agent"`
	}
	if len(body) > 0 {
		if err := decodeStrict(body, &req); err != nil {
			return err
		}
	}
	c := callerOf(r.Context())
	agent := c.agent.ID
	if c.role == config.Admin {
		if req.Agent == "" {
			return errorf(codeBadRequest, "agent: an admin creating a session must name its agent")
		}
		agent = req.Agent
	} else if req.Agent != "" && req.Agent != agent {
		return errorf(codeForbidden, "agent: a session is created for the token's own agent")
	}
	se, err := s.opt.Sessions.Create(r.Context(), agent, req.ID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, se)
	return nil
}

func (s *Server) ownSession(r *http.Request) (session.Session, error) {
	se, err := s.opt.Sessions.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		return se, err
	}
	if c := callerOf(r.Context()); c.role == config.AgentRole && se.AgentID != c.agent.ID {
		return session.Session{}, errorf(codeNotFound, "session not found")
	}
	return se, nil
}

func (s *Server) getSession(w http.ResponseWriter, r *http.Request) error {
	se, err := s.ownSession(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, se)
	return nil
}

func (s *Server) moveSession(to session.State) handler {
	return func(w http.ResponseWriter, r *http.Request) error {
		if _, err := s.ownSession(r); err != nil {
			return err
		}
		c := callerOf(r.Context())
		se, err := s.opt.Sessions.Transition(r.Context(), r.PathValue("id"), to, c.name)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, se)
		return nil
	}
}

// --- kill switch ---

func (s *Server) engageKill(w http.ResponseWriter, r *http.Request) error {
	body, err := s.readBody(w, r)
	if err != nil {
		return err
	}
	var req struct {
		Scope  killswitch.Scope `json:"scope"`
		Target string           `json:"target"`
		Reason string           `json:"reason"`
	}
	if err := decodeStrict(body, &req); err != nil {
		return err
	}
	c := callerOf(r.Context())
	sw, err := s.opt.Kill.Engage(r.Context(), killswitch.Switch{Scope: req.Scope, Target: req.Target, Reason: req.Reason, By: c.name})
	if err != nil {
		return err
	}
	if _, err := s.opt.Audit.Append(r.Context(), "kill", map[string]any{"event": "engage", "switch": sw}); err != nil {
		return &apiError{code: codeUnavailable, msg: "the kill switch is engaged but could not be audited", cause: err}
	}
	writeJSON(w, http.StatusCreated, sw)
	return nil
}

func (s *Server) listKills(w http.ResponseWriter, r *http.Request) error {
	all := r.URL.Query().Get("all") == "true"
	l, err := s.opt.Kill.List(r.Context(), all)
	if err != nil {
		return err
	}
	if l == nil {
		l = []killswitch.Switch{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"switches": l})
	return nil
}

func (s *Server) releaseKill(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	c := callerOf(r.Context())
	if err := s.opt.Kill.Release(r.Context(), id, c.name); err != nil {
		return err
	}
	if _, err := s.opt.Audit.Append(r.Context(), "kill", map[string]any{"event": "release", "id": id, "by": c.name}); err != nil {
		return &apiError{code: codeUnavailable, msg: "the kill switch is released but the release could not be audited", cause: err}
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": id, "released": true})
	return nil
}

// --- audit ---

func queryInt(r *http.Request, name string, def int64) (int64, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, errorf(codeBadRequest, fmt.Sprintf("%s: want an integer, got %q", name, v))
	}
	return n, nil
}

func (s *Server) auditEntries(w http.ResponseWriter, r *http.Request) error {
	after, err := queryInt(r, "after", -1)
	if err != nil {
		return err
	}
	limit, err := queryInt(r, "limit", 100)
	if err != nil {
		return err
	}
	if limit < 1 || limit > 1000 {
		return errorf(codeBadRequest, "limit: must be between 1 and 1000")
	}
	if after < -1 {
		return errorf(codeBadRequest, "after: must be -1 or an index")
	}
	es, err := s.opt.Audit.Entries(r.Context(), after, int(limit))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"entries": es, "size": s.opt.Audit.Size()})
	return nil
}

func (s *Server) auditCheckpoint(w http.ResponseWriter, r *http.Request) error {
	note, size, err := s.opt.Audit.Checkpoint(r.Context())
	if err != nil {
		return &apiError{code: codeUnavailable, msg: "no checkpoint available", cause: err}
	}
	writeJSON(w, http.StatusOK, map[string]any{"size": size, "checkpoint": string(note)})
	return nil
}

func b64s(hs [][]byte) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = base64.StdEncoding.EncodeToString(h)
	}
	return out
}

func (s *Server) auditProof(w http.ResponseWriter, r *http.Request) error {
	idx, err := strconv.ParseUint(r.PathValue("index"), 10, 64)
	if err != nil {
		return errorf(codeBadRequest, "index: want a non-negative integer")
	}
	if idx >= s.opt.Audit.Size() {
		return errorf(codeNotFound, fmt.Sprintf("index %d is beyond the log's %d entries", idx, s.opt.Audit.Size()))
	}
	p, err := s.opt.Audit.Prove(r.Context(), idx)
	if err != nil {
		return &apiError{code: codeUnavailable, msg: "no proof available", cause: err}
	}
	writeJSON(w, http.StatusOK, p)
	return nil
}

func (s *Server) auditConsistency(w http.ResponseWriter, r *http.Request) error {
	from, err := queryInt(r, "from", -1)
	if err != nil {
		return err
	}
	to, err := queryInt(r, "to", -1)
	if err != nil {
		return err
	}
	if from < 1 || to < from {
		return errorf(codeBadRequest, "from and to: want 1 <= from <= to")
	}
	proof, err := s.opt.Audit.ConsistencyProof(r.Context(), uint64(from), uint64(to))
	if err != nil {
		return errorf(codeBadRequest, err.Error())
	}
	writeJSON(w, http.StatusOK, map[string]any{"from": from, "to": to, "proof": b64s(proof)})
	return nil
}

// --- policies ---

type policyInfo struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	Rules       int    `json:"rules"`
	RateLimits  int    `json:"rate_limits"`
	Default     string `json:"default"`
}

func (s *Server) listPolicies(w http.ResponseWriter, r *http.Request) error {
	set := s.opt.Engine.Policy()
	var docs []policyInfo
	for _, d := range set.Documents() {
		docs = append(docs, policyInfo{Name: d.Name, Description: d.Description, Rules: len(d.Rules), RateLimits: len(d.RateLimits), Default: string(d.Default)})
	}
	writeJSON(w, http.StatusOK, map[string]any{"digest": set.Digest(), "documents": docs})
	return nil
}

// Reload re-reads the policy source; a set with errors is refused and the
// one in force stays. Used by the API and by SIGHUP.
func (s *Server) Reload(ctx context.Context) (string, error) {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	if s.opt.LoadPolicy == nil {
		return "", errorf(codeConflict, "this server has no policy source to reload")
	}
	set, err := s.opt.LoadPolicy()
	if err != nil {
		return "", errorf(codeUnprocessable, "policy refused, the previous set stays in force:\n"+err.Error())
	}
	if err := s.opt.Engine.Load(ctx, set); err != nil {
		return "", &apiError{code: codeUnavailable, msg: "policy could not be loaded: " + err.Error(), cause: err}
	}
	return set.Digest(), nil
}

func (s *Server) reloadPolicies(w http.ResponseWriter, r *http.Request) error {
	digest, err := s.Reload(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"digest": digest, "reloaded": true})
	return nil
}

// --- budgets ---

func (s *Server) budgets() (*budget.Budgets, error) {
	if s.opt.Budgets == nil {
		return nil, errorf(codeConflict, "budgets are not enabled on this server")
	}
	return s.opt.Budgets, nil
}

func (s *Server) putBudget(replace bool) handler {
	return func(w http.ResponseWriter, r *http.Request) error {
		b, err := s.budgets()
		if err != nil {
			return err
		}
		body, err := s.readBody(w, r)
		if err != nil {
			return err
		}
		c, err := budget.DecodeConfig(body)
		if err != nil {
			return errorf(codeBadRequest, err.Error())
		}
		if replace {
			if c.ID == "" {
				c.ID = r.PathValue("id")
			}
			if c.ID != r.PathValue("id") {
				return errorf(codeBadRequest, "id: the body's id differs from the path's")
			}
		}
		if !replace {
			if _, err := b.Get(r.Context(), c.ID); err == nil {
				return errorf(codeConflict, fmt.Sprintf("budget %s exists; PUT /v1/budgets/%s replaces it", c.ID, c.ID))
			}
		}
		if err := b.Put(r.Context(), c); err != nil {
			var ce *budget.ConfigError
			if errors.As(err, &ce) {
				return errorf(codeBadRequest, ce.Error())
			}
			return err
		}
		got, err := b.Get(r.Context(), c.ID)
		if err != nil {
			return err
		}
		status := http.StatusCreated
		if replace {
			status = http.StatusOK
		}
		writeJSON(w, status, got)
		return nil
	}
}

func (s *Server) listBudgets(w http.ResponseWriter, r *http.Request) error {
	b, err := s.budgets()
	if err != nil {
		return err
	}
	l, err := b.List(r.Context())
	if err != nil {
		return err
	}
	if l == nil {
		l = []budget.Config{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"budgets": l})
	return nil
}

func (s *Server) getBudget(w http.ResponseWriter, r *http.Request) error {
	b, err := s.budgets()
	if err != nil {
		return err
	}
	c, err := b.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, c)
	return nil
}

func (s *Server) deleteBudget(w http.ResponseWriter, r *http.Request) error {
	b, err := s.budgets()
	if err != nil {
		return err
	}
	if err := b.Delete(r.Context(), r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) usage(w http.ResponseWriter, r *http.Request) error {
	b, err := s.budgets()
	if err != nil {
		return err
	}
	q := r.URL.Query()
	for k := range q {
		if !slices.Contains([]string{"org", "team", "user", "agent", "session"}, k) {
			return errorf(codeBadRequest, fmt.Sprintf("%s: unknown filter (want org, team, user, agent or session)", k))
		}
	}
	u, err := b.Usage(r.Context(), budget.Scope{Org: q.Get("org"), Team: q.Get("team"), User: q.Get("user"), Agent: q.Get("agent"), Session: q.Get("session")})
	if err != nil {
		return err
	}
	if u == nil {
		u = []budget.Usage{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"usage": u})
	return nil
}
