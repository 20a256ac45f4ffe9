package server

import (
	"context"
	"errors"
	"net/http"

	"github.com/agentgov/agentgov/chaos"
	"github.com/agentgov/agentgov/errcode"
)

// Chaos is the chaos experiments of this process; *chaos.Injector is one.
// A switch takes effect on this replica only.
type Chaos interface {
	List() []chaos.Status
	Switch(ctx context.Context, id string, on bool, by, reason string) (chaos.Status, error)
}

var _ Chaos = (*chaos.Injector)(nil)

func (s *Server) chaosRoutes(m *http.ServeMux) {
	m.Handle("GET /v1/chaos", s.route(admins, s.listChaos))
	m.Handle("POST /v1/chaos/{id}/enable", s.route(admins, s.switchChaos(true)))
	m.Handle("POST /v1/chaos/{id}/disable", s.route(admins, s.switchChaos(false)))
}

func (s *Server) listChaos(w http.ResponseWriter, r *http.Request) error {
	out := []chaos.Status{}
	if s.opt.Chaos != nil {
		out = append(out, s.opt.Chaos.List()...)
	}
	writeJSON(w, http.StatusOK, map[string]any{"experiments": out})
	return nil
}

// switchChaos turns an experiment on or off, with the caller and the
// optional reason ({"reason": "..."}) in the audit log.
func (s *Server) switchChaos(on bool) handler {
	return func(w http.ResponseWriter, r *http.Request) error {
		var req struct {
			Reason string `json:"reason"`
		}
		if err := s.readOptional(w, r, &req); err != nil {
			return err
		}
		if len(req.Reason) > 4096 {
			return errorf(errcode.BadRequest, "reason: at most 4096 bytes")
		}
		id := r.PathValue("id")
		var inj Chaos = (*chaos.Injector)(nil)
		if s.opt.Chaos != nil {
			inj = s.opt.Chaos
		}
		st, err := inj.Switch(r.Context(), id, on, callerOf(r.Context()).name, req.Reason)
		switch {
		case errors.Is(err, chaos.ErrUnknown):
			return errorf(errcode.NotFound, err.Error())
		case err != nil:
			return errcode.Wrap(errcode.Unavailable, "the switch could not be written to the audit log, so the experiment is unchanged", err)
		}
		writeJSON(w, http.StatusOK, st)
		return nil
	}
}
