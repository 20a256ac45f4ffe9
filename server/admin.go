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
	"time"

	"github.com/agentgov/agentgov/approval"
	"github.com/agentgov/agentgov/budget"
	"github.com/agentgov/agentgov/config"
	"github.com/agentgov/agentgov/errcode"
	"github.com/agentgov/agentgov/govern"
	"github.com/agentgov/agentgov/killswitch"
	"github.com/agentgov/agentgov/policy"
	"github.com/agentgov/agentgov/session"
	"github.com/agentgov/agentgov/store"
)

// changeError answers a change of state that could not be audited, and so
// was not made, with 503: the caller may retry once the log is back.
func changeError(err error) error {
	if errors.Is(err, govern.ErrNotAudited) {
		return errcode.Wrap(errcode.Unavailable, govern.ErrNotAudited.Error(), err)
	}
	return err
}

// --- approvals ---

func (s *Server) listApprovals(w http.ResponseWriter, r *http.Request) error {
	st := approval.Status(r.URL.Query().Get("status"))
	if st != "" && !st.Valid() {
		return errorf(errcode.BadRequest, fmt.Sprintf("status: unknown status %q", st))
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
	c := callerOf(r.Context())
	// An agent waits on the tickets its own actions opened; nothing about
	// another agent's tickets, not even that they exist, reaches it.
	if c.role == config.AgentRole && t.AgentID != c.agent.ID || c.role != config.AgentRole && !mayApprove(c, t) {
		return errorf(errcode.NotFound, "approval ticket not found")
	}
	writeJSON(w, http.StatusOK, t)
	return nil
}

func (s *Server) decideApproval(approve bool) handler {
	return func(w http.ResponseWriter, r *http.Request) error {
		var req struct {
			Note string `json:"note"`
		}
		if err := s.readOptional(w, r, &req); err != nil {
			return err
		}
		c := callerOf(r.Context())
		id := r.PathValue("id")
		t, err := s.opt.Engine.DecideApproval(r.Context(), govern.ApprovalDecision{
			Ticket: id, Approve: approve, By: c.name, Note: req.Note, Via: "api",
			May: func(t approval.Ticket) error {
				if !mayApprove(c, t) {
					return errorf(errcode.Forbidden, fmt.Sprintf("%s is not among the approvers of %s (%s)", c.name, id, strings.Join(t.Approvers, ", ")))
				}
				return nil
			},
		})
		if err != nil {
			return changeError(err)
		}
		writeJSON(w, http.StatusOK, t)
		return nil
	}
}

// --- sessions ---

// actorOf is who asks for a session change: an admin is an operator, whose
// pause only an operator lifts.
func actorOf(c *caller) session.Actor {
	return session.Actor{Name: c.name, Operator: c.role == config.Admin}
}

// sessionError maps what the session package refuses to the API's codes.
func sessionError(err error) error {
	if errors.Is(err, session.ErrForbidden) {
		return errcode.Wrap(errcode.Forbidden, err.Error(), err)
	}
	return changeError(err)
}

func (s *Server) createSession(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		ID    string `json:"id"`
		Agent string `json:"agent"`
	}
	if err := s.readOptional(w, r, &req); err != nil {
		return err
	}
	c := callerOf(r.Context())
	agent := c.agent.ID
	if c.role == config.Admin {
		if req.Agent == "" {
			return errorf(errcode.BadRequest, "agent: an admin creating a session must name its agent")
		}
		agent = req.Agent
	} else if req.Agent != "" && req.Agent != agent {
		return errorf(errcode.Forbidden, "agent: a session is created for the token's own agent")
	}
	se, err := s.opt.Engine.CreateSession(r.Context(), agent, req.ID, actorOf(c))
	if err != nil {
		return sessionError(err)
	}
	writeJSON(w, http.StatusCreated, se)
	return nil
}

// sessionOf finds the session a request names. Session ids are per agent:
// an agent names its own sessions, and another agent's id is not found (nor
// confirmed to exist). An admin names the agent with ?agent=, or may leave
// it out when exactly one agent has a session of that id.
func (s *Server) sessionOf(r *http.Request) (session.Session, error) {
	ctx, id := r.Context(), r.PathValue("id")
	c := callerOf(ctx)
	agent := r.URL.Query().Get("agent")
	if c.role == config.AgentRole {
		if agent != "" && agent != c.agent.ID {
			return session.Session{}, errorf(errcode.Forbidden, fmt.Sprintf("agent: this token acts as %q and names only its own sessions", c.agent.ID))
		}
		return s.opt.Sessions.Get(ctx, c.agent.ID, id)
	}
	if agent != "" {
		return s.opt.Sessions.Get(ctx, agent, id)
	}
	list, err := s.opt.Sessions.Find(ctx, id)
	if err != nil {
		return session.Session{}, err
	}
	switch len(list) {
	case 0:
		return session.Session{}, errorf(errcode.NotFound, "no agent has a session "+id)
	case 1:
		return list[0], nil
	}
	return session.Session{}, errorf(errcode.Conflict, fmt.Sprintf("%d agents (%s) have a session %s: name one with ?agent=", len(list), agentsOf(list), id))
}

func agentsOf(list []session.Session) string {
	names := make([]string, len(list))
	for i, se := range list {
		names[i] = se.AgentID
	}
	return strings.Join(names, ", ")
}

func (s *Server) getSession(w http.ResponseWriter, r *http.Request) error {
	se, err := s.sessionOf(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, se)
	return nil
}

func (s *Server) moveSession(to session.State) handler {
	return func(w http.ResponseWriter, r *http.Request) error {
		se, err := s.sessionOf(r)
		if err != nil {
			return err
		}
		se, err = s.opt.Engine.MoveSession(r.Context(), se.AgentID, se.ID, to, actorOf(callerOf(r.Context())))
		if err != nil {
			return sessionError(err)
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
		Agent  string           `json:"agent"`
		Reason string           `json:"reason"`
	}
	if err := decodeStrict(body, &req); err != nil {
		return err
	}
	if req.Scope == killswitch.Session && req.Agent == "" && req.Target != "" && s.opt.Sessions != nil {
		// Session ids are per agent: one that only one agent uses names
		// its session; otherwise the admin must say whose.
		list, err := s.opt.Sessions.Find(r.Context(), req.Target)
		if err != nil {
			return err
		}
		if len(list) != 1 {
			return errorf(errcode.BadRequest, fmt.Sprintf("agent: scope session needs the agent whose session it is (session ids are per agent; %d agents have a session %q)", len(list), req.Target))
		}
		req.Agent = list[0].AgentID
	}
	c := callerOf(r.Context())
	sw, err := s.opt.Engine.EngageKill(r.Context(), killswitch.Switch{Scope: req.Scope, Target: req.Target, Agent: req.Agent, Reason: req.Reason, By: c.name})
	if err != nil {
		return changeError(err)
	}
	writeJSON(w, http.StatusCreated, sw)
	return nil
}

func (s *Server) listKills(w http.ResponseWriter, r *http.Request) error {
	var all bool
	switch v := r.URL.Query().Get("all"); v {
	case "", "false":
	case "true":
		all = true
	default:
		return errorf(errcode.BadRequest, fmt.Sprintf("all: want true or false, got %q", v))
	}
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
	sw, err := s.opt.Engine.ReleaseKill(r.Context(), id, c.name)
	if err != nil {
		return changeError(err)
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": id, "released": true, "switch": sw})
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
		return 0, errorf(errcode.BadRequest, fmt.Sprintf("%s: want an integer, got %q", name, v))
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
		return errorf(errcode.BadRequest, "limit: must be between 1 and 1000")
	}
	if after < -1 {
		return errorf(errcode.BadRequest, "after: must be -1 or an index")
	}
	es, err := s.opt.Audit.Entries(r.Context(), after, int(limit))
	if err != nil {
		return err
	}
	// The size is read after the entries, but an entry committed in a batch
	// can be readable a moment before the log counts it: the size never says
	// less than the entries show.
	size := s.opt.Audit.Size()
	if n := len(es); n > 0 && es[n-1].Index+1 > size {
		size = es[n-1].Index + 1
	}
	writeJSON(w, http.StatusOK, map[string]any{"entries": es, "size": size})
	return nil
}

func (s *Server) auditCheckpoint(w http.ResponseWriter, r *http.Request) error {
	note, size, err := s.opt.Audit.Checkpoint(r.Context())
	if err != nil {
		return errcode.Wrap(errcode.Unavailable, "no checkpoint available", err)
	}
	out := map[string]any{"size": size, "checkpoint": string(note)}
	if s.opt.VerifierKey != "" {
		out["verifier_key"] = s.opt.VerifierKey
	}
	writeJSON(w, http.StatusOK, out)
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
		return errorf(errcode.BadRequest, "index: want a non-negative integer")
	}
	if idx >= s.opt.Audit.Size() {
		return errorf(errcode.NotFound, fmt.Sprintf("index %d is beyond the log's %d entries", idx, s.opt.Audit.Size()))
	}
	p, err := s.opt.Audit.Prove(r.Context(), idx)
	if err != nil {
		return errcode.Wrap(errcode.Unavailable, "no proof available", err)
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
		return errorf(errcode.BadRequest, "from and to: want 1 <= from <= to")
	}
	proof, err := s.opt.Audit.ConsistencyProof(r.Context(), uint64(from), uint64(to))
	if err != nil {
		return errorf(errcode.BadRequest, err.Error())
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
		return "", errorf(errcode.Conflict, "this server has no policy source to reload")
	}
	set, err := s.opt.LoadPolicy()
	if err != nil {
		s.log.Warn("policy reload refused; the previous set stays in force", "digest", s.opt.Engine.Policy().Digest(), "err", err)
		if aerr := s.opt.Engine.RefuseLoad(ctx, "reload", err); aerr != nil {
			s.log.Error("the refused policy reload could not be recorded", "err", aerr)
		}
		return "", errorf(errcode.Unprocessable, "policy refused, the previous set stays in force:\n"+err.Error())
	}
	// The shadow set is read with the live one and both are refused
	// together: a reload either brings both sources in or changes nothing.
	var shadow *policy.Set
	if s.opt.LoadShadow != nil {
		if shadow, err = s.opt.LoadShadow(); err != nil {
			s.log.Warn("shadow policy reload refused; the sets in force stay", "err", err)
			if aerr := s.opt.Engine.RefuseLoad(ctx, "reload policies_shadow", err); aerr != nil {
				s.log.Error("the refused policy reload could not be recorded", "err", aerr)
			}
			return "", errorf(errcode.Unprocessable, "shadow policy (policies_shadow) refused, the live and shadow sets in force stay:\n"+err.Error())
		}
	}
	if err := s.opt.Engine.Load(ctx, set); err != nil {
		s.log.Error("policy reload failed; the previous set stays in force", "digest", s.opt.Engine.Policy().Digest(), "err", err)
		return "", errcode.Wrap(errcode.Unavailable, "policy could not be loaded: "+err.Error(), err)
	}
	if shadow != nil {
		if err := s.opt.Engine.LoadShadow(ctx, shadow, "reload"); err != nil {
			return "", errcode.Wrap(errcode.Unavailable, "the policy set "+set.Digest()+" is in force, but the shadow set could not be loaded (the previous shadow stays): reload again", err)
		}
	}
	if s.opt.Peers != nil {
		if err := s.opt.Peers.Announce(ctx, store.Policy); err != nil {
			return "", errcode.Wrap(errcode.Unavailable, "the policy set "+set.Digest()+
				" is in force on this replica, but the other replicas could not be told to reload: reload again", err)
		}
	}
	return set.Digest(), nil
}

// Refresh reloads the policy set from its source because another replica
// reloaded its own, and tells no one. A set identical to the one in force
// is not loaded again. On error the set in force stays.
func (s *Server) Refresh(ctx context.Context) error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	if s.opt.LoadPolicy == nil {
		return nil
	}
	set, err := s.opt.LoadPolicy()
	if err != nil {
		return fmt.Errorf("reload policy as another replica did: %w", err)
	}
	if set.Digest() != s.opt.Engine.Policy().Digest() {
		if err := s.opt.Engine.Load(ctx, set); err != nil {
			return fmt.Errorf("reload policy as another replica did: %w", err)
		}
		s.log.Info("policy reloaded as another replica did", "digest", set.Digest())
	}
	if s.opt.LoadShadow == nil {
		return nil
	}
	shadow, err := s.opt.LoadShadow()
	if err != nil {
		return fmt.Errorf("reload the shadow policy as another replica did: %w", err)
	}
	if cur := s.opt.Engine.ShadowPolicy(); cur != nil && shadow.Digest() == cur.Digest() {
		return nil
	}
	if err := s.opt.Engine.LoadShadow(ctx, shadow, "refresh"); err != nil {
		return fmt.Errorf("reload the shadow policy as another replica did: %w", err)
	}
	s.log.Info("shadow policy reloaded as another replica did", "digest", shadow.Digest())
	return nil
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
		return nil, errorf(errcode.Conflict, "budgets are not enabled on this server")
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
			return errorf(errcode.BadRequest, err.Error())
		}
		if err := oneValue(body); err != nil {
			return err
		}
		if replace {
			if c.ID == "" {
				c.ID = r.PathValue("id")
			}
			if c.ID != r.PathValue("id") {
				return errorf(errcode.BadRequest, "id: the body's id differs from the path's")
			}
		}
		if !replace {
			if _, err := b.Get(r.Context(), c.ID); err == nil {
				return errorf(errcode.Conflict, fmt.Sprintf("budget %s exists; PUT /v1/budgets/%s replaces it", c.ID, c.ID))
			}
		}
		if err := s.opt.Engine.PutBudget(r.Context(), c, callerOf(r.Context()).name); err != nil {
			var ce *budget.ConfigError
			if errors.As(err, &ce) {
				return errorf(errcode.BadRequest, ce.Error())
			}
			return changeError(err)
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
	if _, err := s.budgets(); err != nil {
		return err
	}
	if err := s.opt.Engine.DeleteBudget(r.Context(), r.PathValue("id"), callerOf(r.Context()).name); err != nil {
		return changeError(err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// usageFilters are the query parameters of GET /v1/usage.
var usageFilters = []string{"org", "team", "user", "agent", "session", "model", "period", "date", "from", "to", "group_by", "limit"}

func (s *Server) usage(w http.ResponseWriter, r *http.Request) error {
	b, err := s.budgets()
	if err != nil {
		return err
	}
	q := r.URL.Query()
	for k, vs := range q {
		if !slices.Contains(usageFilters, k) {
			return errorf(errcode.BadRequest, fmt.Sprintf("%s: unknown parameter (want %s)", k, strings.Join(usageFilters, ", ")))
		}
		if len(vs) > 1 {
			return errorf(errcode.BadRequest, k+": given more than once")
		}
	}
	filter := budget.Scope{Org: q.Get("org"), Team: q.Get("team"), User: q.Get("user"), Agent: q.Get("agent"), Session: q.Get("session")}
	// A budget counts every model: the model filter narrows the spend only.
	u, err := b.Usage(r.Context(), filter)
	if err != nil {
		return err
	}
	if u == nil {
		u = []budget.Usage{}
	}
	out := map[string]any{"usage": u}
	// Spend is not kept per session: asked for one session, only the
	// budgets answer.
	if filter.Session == "" {
		sp, err := s.spend(r, b)
		if err != nil {
			return err
		}
		out["spend"] = sp
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// spendAnswer is the spend part of GET /v1/usage.
type spendAnswer struct {
	Period  string            `json:"period"`
	From    string            `json:"from,omitempty"`
	To      string            `json:"to,omitempty"`
	Filter  budget.Party      `json:"filter"`
	GroupBy []string          `json:"group_by,omitempty"`
	Total   budget.Amounts    `json:"total"`
	Groups  []budget.SpendRow `json:"groups,omitzero"`
}

// spend answers what was spent in the period the request names: period
// day, month (the default) or all, of the UTC date given (default today),
// or from and to (dates, to excluded).
func (s *Server) spend(r *http.Request, b *budget.Budgets) (spendAnswer, error) {
	q := r.URL.Query()
	a := spendAnswer{Period: q.Get("period"), Filter: budget.Party{
		Agent: q.Get("agent"), User: q.Get("user"), Team: q.Get("team"), Org: q.Get("org"), Model: q.Get("model"),
	}}
	switch {
	case q.Has("from") || q.Has("to"):
		if a.Period != "" || q.Has("date") {
			return a, errorf(errcode.BadRequest, "from and to: give them, or period and date, not both")
		}
		a.Period, a.From, a.To = "range", q.Get("from"), q.Get("to")
	default:
		day := s.clock().UTC()
		if d := q.Get("date"); d != "" {
			t, err := time.Parse(time.DateOnly, d)
			if err != nil {
				return a, errorf(errcode.BadRequest, fmt.Sprintf("date: want a date such as 2026-07-01, got %q", d))
			}
			day = t
		}
		switch a.Period {
		case "", "month":
			a.Period = "month"
			start := time.Date(day.Year(), day.Month(), 1, 0, 0, 0, 0, time.UTC)
			a.From, a.To = start.Format(time.DateOnly), start.AddDate(0, 1, 0).Format(time.DateOnly)
		case "day":
			start := time.Date(day.Year(), day.Month(), day.Day(), 0, 0, 0, 0, time.UTC)
			a.From, a.To = start.Format(time.DateOnly), start.AddDate(0, 0, 1).Format(time.DateOnly)
		case "all":
			if q.Has("date") {
				return a, errorf(errcode.BadRequest, "date: period all takes no date")
			}
		default:
			return a, errorf(errcode.BadRequest, fmt.Sprintf("period: want day, month or all, got %q", a.Period))
		}
	}
	limit := 0
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return a, errorf(errcode.BadRequest, fmt.Sprintf("limit: want a positive integer, got %q", v))
		}
		limit = n
	}
	if g := q.Get("group_by"); g != "" {
		a.GroupBy = strings.Split(g, ",")
	}
	sq := budget.SpendQuery{Filter: a.Filter, From: a.From, To: a.To, Limit: limit}
	total, err := b.Spend(r.Context(), sq)
	if err != nil {
		return a, err
	}
	if len(total) == 1 {
		a.Total = total[0].Spent
	}
	if len(a.GroupBy) > 0 {
		sq.By = a.GroupBy
		if a.Groups, err = b.Spend(r.Context(), sq); err != nil {
			return a, err
		}
		if a.Groups == nil {
			a.Groups = []budget.SpendRow{}
		}
	}
	return a, nil
}
