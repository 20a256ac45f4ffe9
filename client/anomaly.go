package client

import (
	"context"
	"net/http"

	"github.com/agentgov/agentgov/anomaly"
)

// Anomaly reads what the server's anomaly detector remembers of an agent
// (GET /v1/agents/{id}/anomaly): its baseline, current rate and entropy.
func (c *Client) Anomaly(ctx context.Context, agentID string) (anomaly.Baseline, error) {
	id, err := segment("agent id", agentID)
	if err != nil {
		return anomaly.Baseline{}, err
	}
	var out anomaly.Baseline
	err = c.do(ctx, request{method: http.MethodGet, path: "/v1/agents/" + id + "/anomaly", out: &out})
	return out, err
}
