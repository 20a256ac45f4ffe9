package anomaly

import (
	"fmt"

	"github.com/agentgov/agentgov/action"
)

// Reason says in a sentence what the reading found of kind k for the call
// c, with its numbers: the reason of a decision, the message of an alert.
func (r *Reading) Reason(k Kind, c action.Call) string {
	switch k {
	case RateZ:
		return fmt.Sprintf("anomaly rate_z: %d calls by %s in the current interval, z-score %.1f against its baseline of %.1f ± %.1f (threshold %g)",
			r.Count, c.Agent, r.RateZ, r.Mean, r.Std, r.Threshold)
	case NewTool:
		return fmt.Sprintf("anomaly new_tool: %s has never been allowed to use tool %s", c.Agent, toolName(c))
	case Entropy:
		return fmt.Sprintf("anomaly entropy: the tools of %s's latest calls have an entropy of %.2f bits, outside its band of %.2f to %.2f bits",
			c.Agent, r.Entropy, r.Low, r.High)
	}
	return "anomaly"
}

func toolName(c action.Call) string {
	if c.Server != "" {
		return c.Server + "/" + c.Tool
	}
	return c.Tool
}
