package server

import (
	"fmt"
	"net/http"
	"time"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/config"
	"github.com/agentgov/agentgov/errcode"
)

// trustRoutes adds the trust and ring endpoints (DESIGN §9).
func (s *Server) trustRoutes(m *http.ServeMux) {
	m.Handle("GET /v1/agents/{id}/trust", s.route(everyone, s.agentTrust))
	m.Handle("GET /v1/agents/{id}/anomaly", s.route(everyone, s.agentAnomaly))
	m.Handle("POST /v1/agents/{id}/elevate", s.route(agents, s.elevate))
}

// agentOf is the agent id of the path, which an agent token may name only
// as its own: another agent's answers 404, so that nothing about other
// agents leaks.
func agentOf(r *http.Request) (string, error) {
	id := r.PathValue("id")
	if id == "" || len(id) > 256 {
		return "", errorf(errcode.BadRequest, "agent id: want 1 to 256 bytes")
	}
	if c := callerOf(r.Context()); c.role == config.AgentRole && c.agent.ID != id {
		return "", errorf(errcode.NotFound, "no agent "+id)
	}
	return id, nil
}

func (s *Server) agentTrust(w http.ResponseWriter, r *http.Request) error {
	if s.opt.Trust == nil {
		return errorf(errcode.NotFound, "this server keeps no trust scores")
	}
	id, err := agentOf(r)
	if err != nil {
		return err
	}
	limit, err := queryInt(r, "limit", 50)
	if err != nil {
		return err
	}
	if limit < 1 || limit > 200 {
		return errorf(errcode.BadRequest, "limit: want 1 to 200 events")
	}
	rep, err := s.opt.Trust.Report(r.Context(), id, int(limit))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, rep)
	return nil
}

// elevateRequest is the body of POST /v1/agents/{id}/elevate.
type elevateRequest struct {
	Ring   *int   `json:"ring"`
	TTL    string `json:"ttl"`
	Reason string `json:"reason"`
}

func (s *Server) elevate(w http.ResponseWriter, r *http.Request) error {
	id, err := agentOf(r)
	if err != nil {
		return err
	}
	body, err := s.readBody(w, r)
	if err != nil {
		return err
	}
	var req elevateRequest
	if err := decodeStrict(body, &req); err != nil {
		return err
	}
	if req.Ring == nil {
		return errorf(errcode.BadRequest, "ring: required (0 to 3)")
	}
	ttl, err := time.ParseDuration(req.TTL)
	if err != nil {
		return errorf(errcode.BadRequest, fmt.Sprintf("ttl: want a duration such as 30m, got %q", req.TTL))
	}
	c := callerOf(r.Context())
	agent, principal := action.Agent{ID: id}, action.Principal{}
	if c.role == config.AgentRole {
		agent, principal = c.agent, c.principal
	}
	t, err := s.opt.Engine.RequestElevation(r.Context(), agent, principal, *req.Ring, ttl, req.Reason)
	if err != nil {
		return changeError(err)
	}
	writeJSON(w, http.StatusAccepted, map[string]any{
		"agent": id, "ring": *req.Ring, "ttl": ttl.String(), "approval": t.Ref(s.clock()),
	})
	return nil
}
