package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/agentgov/agentgov/errcode"
	"github.com/agentgov/agentgov/sre"
)

// Reliability is the state of the SLOs and circuit breakers;
// *sre.Monitor is one.
type Reliability interface {
	SLOs() []sre.Status
	Breakers() []sre.BreakerStatus
}

var _ Reliability = (*sre.Monitor)(nil)

func (s *Server) listSLOs(w http.ResponseWriter, r *http.Request) error {
	out := []sre.Status{}
	if s.opt.Reliability != nil {
		out = append(out, s.opt.Reliability.SLOs()...)
	}
	writeJSON(w, http.StatusOK, map[string]any{"slos": out})
	return nil
}

func (s *Server) listBreakers(w http.ResponseWriter, r *http.Request) error {
	out := []sre.BreakerStatus{}
	if s.opt.Reliability != nil {
		out = append(out, s.opt.Reliability.Breakers()...)
	}
	writeJSON(w, http.StatusOK, map[string]any{"breakers": out})
	return nil
}

// Incidents are the incidents of this server; *sre.Incidents is one.
type Incidents interface {
	List(status string) []sre.Incident
	Get(id string) (sre.Incident, error)
	Close(ctx context.Context, id, by, note string) (sre.Incident, error)
}

var _ Incidents = (*sre.Incidents)(nil)

func (s *Server) incidents() (Incidents, error) {
	if s.opt.Incidents == nil {
		return nil, errorf(errcode.NotFound, "this server keeps no incidents")
	}
	return s.opt.Incidents, nil
}

func (s *Server) listIncidents(w http.ResponseWriter, r *http.Request) error {
	status := r.URL.Query().Get("status")
	switch status {
	case "", "open", "closed":
	case "all":
		status = ""
	default:
		return errorf(errcode.BadRequest, fmt.Sprintf("status: want open, closed or all, got %q", status))
	}
	out := []sre.Incident{}
	if s.opt.Incidents != nil {
		out = s.opt.Incidents.List(status)
	}
	writeJSON(w, http.StatusOK, map[string]any{"incidents": out})
	return nil
}

func (s *Server) getIncident(w http.ResponseWriter, r *http.Request) error {
	incs, err := s.incidents()
	if err != nil {
		return err
	}
	inc, err := incs.Get(r.PathValue("id"))
	if err != nil {
		return incidentError(err)
	}
	writeJSON(w, http.StatusOK, inc)
	return nil
}

func (s *Server) closeIncident(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Note string `json:"note"`
	}
	if err := s.readOptional(w, r, &req); err != nil {
		return err
	}
	if len(req.Note) > 4096 {
		return errorf(errcode.BadRequest, "note: at most 4096 bytes")
	}
	incs, err := s.incidents()
	if err != nil {
		return err
	}
	inc, err := incs.Close(r.Context(), r.PathValue("id"), callerOf(r.Context()).name, req.Note)
	if err != nil {
		return incidentError(err)
	}
	writeJSON(w, http.StatusOK, inc)
	return nil
}

func incidentError(err error) error {
	switch {
	case errors.Is(err, sre.ErrNoIncident):
		return errorf(errcode.NotFound, err.Error())
	case errors.Is(err, sre.ErrIncidentClosed):
		return errorf(errcode.Conflict, err.Error())
	}
	return errcode.Wrap(errcode.Unavailable, "the closing could not be written to the audit log, so the incident stays open", err)
}
