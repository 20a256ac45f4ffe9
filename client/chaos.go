package client

import (
	"context"
	"net/http"
	"time"
)

// ChaosExperiment is a chaos experiment as GET /v1/chaos shows it.
type ChaosExperiment struct {
	ID    string `json:"id"`
	Match struct {
		Tools   []string `json:"tools,omitempty"`
		Servers []string `json:"servers,omitempty"`
		Models  []string `json:"models,omitempty"`
	} `json:"match"`
	Fault       string  `json:"fault"`
	Probability float64 `json:"probability"`
	LatencyMS   int64   `json:"latency_ms,omitempty"`
	Error       *struct {
		Message string `json:"message,omitempty"`
		Code    int    `json:"code,omitempty"`
	} `json:"error,omitempty"`
	From  *time.Time `json:"from,omitempty"`
	Until *time.Time `json:"until,omitempty"`
	// Enabled is the switch; Active says it injects now (enabled and in
	// its window).
	Enabled bool `json:"enabled"`
	Active  bool `json:"active"`
	// Injected counts its faults since the server started.
	Injected int64 `json:"injected"`
}

// ChaosExperiments lists the server's chaos experiments (admin).
func (c *Client) ChaosExperiments(ctx context.Context) ([]ChaosExperiment, error) {
	var out struct {
		Experiments []ChaosExperiment `json:"experiments"`
	}
	err := c.do(ctx, request{method: http.MethodGet, path: "/v1/chaos", out: &out})
	return out.Experiments, err
}

// SwitchChaos turns a chaos experiment on or off on the server that
// answers (admin), with a reason for the audit log.
func (c *Client) SwitchChaos(ctx context.Context, id string, on bool, reason string) (ChaosExperiment, error) {
	seg, err := segment("chaos experiment id", id)
	if err != nil {
		return ChaosExperiment{}, err
	}
	verb := "/disable"
	if on {
		verb = "/enable"
	}
	var out ChaosExperiment
	err = c.do(ctx, request{method: http.MethodPost, path: "/v1/chaos/" + seg + verb, body: map[string]string{"reason": reason}, out: &out})
	return out, err
}
