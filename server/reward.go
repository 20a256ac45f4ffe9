package server

import (
	"net/http"

	"github.com/agentgov/agentgov/config"
	"github.com/agentgov/agentgov/evidence"
)

// sessionReward answers GET /v1/sessions/{id}/reward: a training signal
// for the episode, from its audited decisions (DESIGN §14). The session
// must exist (?agent= names it when several agents have one of that id).
// It reads the log from the start: the cost grows with the log, which is
// acceptable for an endpoint called once per episode.
func (s *Server) sessionReward(w http.ResponseWriter, r *http.Request) error {
	se, err := s.sessionOf(r)
	if err != nil {
		return err
	}
	p := s.opt.Config.Reward.Penalties
	pen := evidence.Penalties{Low: config.DefaultPenaltyLow, Medium: config.DefaultPenaltyMedium, High: config.DefaultPenaltyHigh, Critical: config.DefaultPenaltyCritical}
	for _, f := range []struct {
		dst *float64
		src *float64
	}{{&pen.Low, p.Low}, {&pen.Medium, p.Medium}, {&pen.High, p.High}, {&pen.Critical, p.Critical}} {
		if f.src != nil {
			*f.dst = *f.src
		}
	}
	rw, err := evidence.SessionReward(r.Context(), s.opt.Audit.Entries, se.AgentID, se.ID, pen)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, rw)
	return nil
}
