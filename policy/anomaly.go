package policy

import (
	"reflect"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/ext"
)

// Anomaly is what policies see as `anomaly`: what the anomaly detector
// found for the action's agent against its own history. The zero value
// (detection off, or an agent still warming up) finds nothing. A struct
// rather than a map, as Session is, so that anomaly.new_tool type-checks
// as a bool and anomaly.new_tools is a load error.
type Anomaly struct {
	// RateZ is the z-score of the agent's calls in the current interval
	// against its baseline.
	RateZ float64 `cel:"rate_z"`
	// NewTool says the agent has never been allowed to use the tool.
	NewTool bool `cel:"new_tool"`
	// Entropy is the Shannon entropy, in bits, of the tools of its latest
	// calls; EntropyOutOfBand says it left the agent's band.
	Entropy          float64 `cel:"entropy"`
	EntropyOutOfBand bool    `cel:"entropy_out_of_band"`
	// Warm says the agent's history spans the detector's warm-up.
	Warm bool `cel:"warm"`
}

func anomalyOptions() []cel.EnvOption {
	return []cel.EnvOption{
		ext.NativeTypes(reflect.TypeFor[Anomaly](), ext.ParseStructTags(true)),
		cel.Variable("anomaly", cel.ObjectType("policy.Anomaly")),
	}
}
