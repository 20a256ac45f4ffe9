package anomaly

import (
	"fmt"
	"slices"
	"time"
)

// Kind is one of the anomalies the detector finds.
type Kind uint8

// The kinds, as bits of a Kinds set.
const (
	RateZ   Kind = 1 << iota // the call rate is far above the agent's own baseline
	NewTool                  // a tool the agent has never been allowed to use
	Entropy                  // the mix of tools the agent calls left its usual band
)

// AllKinds lists every kind, in the order they are reported.
var AllKinds = []Kind{RateZ, NewTool, Entropy}

// String is the kind's name in configuration, CEL, audit entries, alerts
// and metrics: rate_z, new_tool, entropy.
func (k Kind) String() string {
	switch k {
	case RateZ:
		return "rate_z"
	case NewTool:
		return "new_tool"
	case Entropy:
		return "entropy"
	}
	return "unknown"
}

// KindNamed is the kind of a name; ok is false for any other name.
func KindNamed(name string) (Kind, bool) {
	for _, k := range AllKinds {
		if k.String() == name {
			return k, true
		}
	}
	return 0, false
}

// Kinds is a set of kinds.
type Kinds uint8

// Has reports whether k is in the set.
func (s Kinds) Has(k Kind) bool { return s&Kinds(k) != 0 }

// Names lists the set's kinds by name, in AllKinds order.
func (s Kinds) Names() []string {
	var out []string
	for _, k := range AllKinds {
		if s.Has(k) {
			out = append(out, k.String())
		}
	}
	return out
}

// The automatic responses to an anomaly.
const (
	// ActFlag records an "anomaly" audit entry, raises an alert of kind
	// anomaly and marks the decision flagged.
	ActFlag = "flag"
	// ActApproval turns an allowed action into require_approval, with a
	// reason naming the anomaly.
	ActApproval = "approval"
	// ActIsolate engages the kill switch on the agent and denies the
	// action.
	ActIsolate = "isolate"
)

// Actions lists every response.
var Actions = []string{ActFlag, ActApproval, ActIsolate}

// Response is one entry of anomaly.responses: what to do when an anomaly
// of a kind is found.
type Response struct {
	When   string `yaml:"when"`
	Action string `yaml:"action"`
}

// Config is the anomaly: section of agentgov.yaml. Detection is on unless
// Disabled; with no responses its only effects are the CEL variable
// `anomaly`, the metrics and the trust events.
type Config struct {
	// Disabled turns detection off: `anomaly` reads as zeros and no
	// response fires.
	Disabled bool `yaml:"disabled"`
	// Interval is the length of the intervals calls are counted in.
	Interval time.Duration `yaml:"interval"`
	// WarmupIntervals is how many intervals an agent's history spans
	// before its anomalies are reported: until then the rate z-score
	// reads 0, no tool is new and the entropy is never out of band.
	WarmupIntervals int `yaml:"warmup_intervals"`
	// BaselineIntervals is the memory of the rate baseline: its mean and
	// variance weigh the intervals equally up to this many, then
	// exponentially, so that an agent's baseline follows slow changes of
	// its work.
	BaselineIntervals int `yaml:"baseline_intervals"`
	// RateZ is the z-score of the calls counted in the current interval,
	// against the agent's baseline, at which the rate is anomalous.
	RateZ float64 `yaml:"rate_z"`
	// EntropyWindow is how many of the agent's latest tool calls the
	// entropy is computed over.
	EntropyWindow int `yaml:"entropy_window"`
	// EntropyBand is how many standard deviations from the agent's mean
	// entropy its band spans on each side.
	EntropyBand float64 `yaml:"entropy_band"`
	// MaxAgents bounds the agents remembered; the least recently seen is
	// forgotten first (and warms up again when it comes back).
	MaxAgents int `yaml:"max_agents"`
	// MaxToolsPerAgent bounds the distinct tools remembered per agent;
	// past it, the least recently used tool outside the entropy window
	// is forgotten (and counts as new again).
	MaxToolsPerAgent int `yaml:"max_tools_per_agent"`
	// Responses say what to do when an anomaly is found.
	Responses []Response `yaml:"responses"`
}

// Defaults of the anomaly: keys.
const (
	DefaultInterval          = time.Minute
	DefaultWarmupIntervals   = 30
	DefaultBaselineIntervals = 1440
	DefaultRateZ             = 4.0
	DefaultEntropyWindow     = 50
	DefaultEntropyBand       = 3.0
	DefaultMaxAgents         = 4096
	DefaultMaxToolsPerAgent  = 128
)

// Fill sets the default of every key left out.
func (c *Config) Fill() {
	if c.Interval == 0 {
		c.Interval = DefaultInterval
	}
	if c.WarmupIntervals == 0 {
		c.WarmupIntervals = DefaultWarmupIntervals
	}
	if c.BaselineIntervals == 0 {
		c.BaselineIntervals = DefaultBaselineIntervals
	}
	if c.RateZ == 0 {
		c.RateZ = DefaultRateZ
	}
	if c.EntropyWindow == 0 {
		c.EntropyWindow = DefaultEntropyWindow
	}
	if c.EntropyBand == 0 {
		c.EntropyBand = DefaultEntropyBand
	}
	if c.MaxAgents == 0 {
		c.MaxAgents = DefaultMaxAgents
	}
	if c.MaxToolsPerAgent == 0 {
		c.MaxToolsPerAgent = DefaultMaxToolsPerAgent
	}
}

// KeyError names the key of the anomaly: section at fault.
type KeyError struct {
	Key string // relative to the section: "rate_z", "responses[1].action"
	Msg string
}

func (e *KeyError) Error() string { return e.Key + ": " + e.Msg }

func bad(key, format string, args ...any) error {
	return &KeyError{Key: key, Msg: fmt.Sprintf(format, args...)}
}

// Bounds of the keys: each keeps the detector's memory and work per call
// bounded, and refuses values that would make it useless (a warm-up too
// short to learn anything, a threshold every call passes).
const (
	minInterval   = time.Second
	maxInterval   = 24 * time.Hour
	maxWarmup     = 100_000
	maxBaseline   = 1_000_000
	minRateZ      = 1
	maxRateZ      = 1000
	minWindow     = 4
	maxWindow     = 4096
	minBand       = 0.5
	maxBand       = 100
	maxAgentsCap  = 1_000_000
	maxToolsCap   = 65_535 // tool slots are numbered in 16 bits
	maxResponses  = 9      // every kind with every action
	warmupMinimum = 1
)

// Validate checks a filled Config.
func (c *Config) Validate() error {
	if c.Interval < minInterval || c.Interval > maxInterval {
		return bad("interval", "want a duration from %v to %v, got %v", minInterval, maxInterval, c.Interval)
	}
	if c.WarmupIntervals < warmupMinimum || c.WarmupIntervals > maxWarmup {
		return bad("warmup_intervals", "want %d to %d intervals, got %d", warmupMinimum, maxWarmup, c.WarmupIntervals)
	}
	if c.BaselineIntervals < 2 || c.BaselineIntervals > maxBaseline {
		return bad("baseline_intervals", "want 2 to %d intervals, got %d", maxBaseline, c.BaselineIntervals)
	}
	if c.RateZ < minRateZ || c.RateZ > maxRateZ || c.RateZ != c.RateZ {
		return bad("rate_z", "want a z-score from %d to %d, got %v", minRateZ, maxRateZ, c.RateZ)
	}
	if c.EntropyWindow < minWindow || c.EntropyWindow > maxWindow {
		return bad("entropy_window", "want %d to %d calls, got %d", minWindow, maxWindow, c.EntropyWindow)
	}
	if c.EntropyBand < minBand || c.EntropyBand > maxBand || c.EntropyBand != c.EntropyBand {
		return bad("entropy_band", "want %v to %v standard deviations, got %v", minBand, maxBand, c.EntropyBand)
	}
	if c.MaxAgents < 1 || c.MaxAgents > maxAgentsCap {
		return bad("max_agents", "want 1 to %d agents, got %d", maxAgentsCap, c.MaxAgents)
	}
	if c.MaxToolsPerAgent <= c.EntropyWindow || c.MaxToolsPerAgent > maxToolsCap {
		return bad("max_tools_per_agent", "want more than entropy_window (%d) and at most %d tools, got %d: every tool in the window must stay remembered", c.EntropyWindow, maxToolsCap, c.MaxToolsPerAgent)
	}
	if c.Disabled && len(c.Responses) > 0 {
		return bad("responses", "detection is disabled: no response would ever fire")
	}
	if len(c.Responses) > maxResponses {
		return bad("responses", "at most %d responses (each kind with each action), got %d", maxResponses, len(c.Responses))
	}
	seen := map[Response]bool{}
	for i, r := range c.Responses {
		key := fmt.Sprintf("responses[%d]", i)
		if _, ok := KindNamed(r.When); !ok {
			return bad(key+".when", "want rate_z, new_tool or entropy, got %q", r.When)
		}
		if !slices.Contains(Actions, r.Action) {
			return bad(key+".action", "want flag, approval or isolate, got %q", r.Action)
		}
		if seen[r] {
			return bad(key, "%s: %s is given twice", r.When, r.Action)
		}
		seen[r] = true
	}
	return nil
}
