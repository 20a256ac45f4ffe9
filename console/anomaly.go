package console

import (
	"context"
	"fmt"

	"github.com/agentgov/agentgov/anomaly"
	"github.com/agentgov/agentgov/client"
)

// anomalyView is what the anomaly detector remembers of an agent, as the
// agents page shows it.
type anomalyView struct {
	// Off is true when the server runs no anomaly detection.
	Off bool
	// Known is false when the detector has no baseline for the agent.
	Known bool
	anomaly.Baseline
	Error string
}

// Band is the agent's entropy band in words.
func (v anomalyView) Band() string {
	if v.EntropySamples < 5 {
		return fmt.Sprintf("no band yet (%d of 5 windows)", v.EntropySamples)
	}
	return fmt.Sprintf("band %.2f–%.2f", v.Low, v.High)
}

// OutOfBand says the latest entropy is outside the band.
func (v anomalyView) OutOfBand() bool {
	return v.Warm && v.EntropySamples >= 5 && (v.Entropy < v.Low || v.Entropy > v.High)
}

// anomalyOf asks the API for one agent's baseline.
func anomalyOf(cx context.Context, api *client.Client, id string) anomalyView {
	b, err := api.Anomaly(cx, id)
	switch {
	case err == nil:
		return anomalyView{Known: true, Baseline: b}
	case client.IsCode(err, client.CodeConflict):
		return anomalyView{Off: true} // detection is not enabled
	case client.IsCode(err, client.CodeNotFound):
		return anomalyView{} // the agent has no baseline

	}
	return anomalyView{Error: apiError(err)}
}
