package server

import (
	"net/http"
	"time"

	"github.com/agentgov/agentgov/anomaly"
	"github.com/agentgov/agentgov/errcode"
)

// Baselines are what the anomaly detector remembers of each agent;
// *anomaly.Detector is one.
type Baselines interface {
	Baseline(agent string, now time.Time) (anomaly.Baseline, bool)
}

// agentAnomaly answers GET /v1/agents/{id}/anomaly: the agent's baseline,
// its current rate and entropy, as the detector sees them.
func (s *Server) agentAnomaly(w http.ResponseWriter, r *http.Request) error {
	if s.opt.Anomaly == nil {
		return errorf(errcode.Conflict, "anomaly detection is not enabled on this server")
	}
	id, err := agentOf(r)
	if err != nil {
		return err
	}
	b, ok := s.opt.Anomaly.Baseline(id, s.clock())
	if !ok {
		return errorf(errcode.NotFound, "no baseline for agent "+id+": it has not acted since this server started, or was forgotten to make room for others")
	}
	writeJSON(w, http.StatusOK, b)
	return nil
}
