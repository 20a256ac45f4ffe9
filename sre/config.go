package sre

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Duration is a Go duration ("5m", "1h30m") that may also be written in
// days ("30d"), as SLO windows are.
type Duration time.Duration

// ParseDuration reads a Go duration or a whole number of days.
func ParseDuration(s string) (Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days < 0 {
			return 0, fmt.Errorf("want a Go duration or a whole number of days such as 30d, got %q", s)
		}
		return Duration(time.Duration(days) * 24 * time.Hour), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("want a Go duration or a whole number of days such as 30d, got %q", s)
	}
	return Duration(d), nil
}

// UnmarshalYAML reads "30d", "6h" or "5m".
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: want a duration such as 5m or 30d", n.Line)
	}
	v, err := ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %v", n.Line, err)
	}
	*d = v
	return nil
}

// String writes whole days as "30d", whole hours as "6h", whole minutes
// as "5m", anything else as Go does.
func (d Duration) String() string {
	t := time.Duration(d)
	switch {
	case t <= 0:
		return t.String()
	case t%(24*time.Hour) == 0:
		return strconv.Itoa(int(t/(24*time.Hour))) + "d"
	case t%time.Hour == 0:
		return strconv.Itoa(int(t/time.Hour)) + "h"
	case t%time.Minute == 0:
		return strconv.Itoa(int(t/time.Minute)) + "m"
	}
	return t.String()
}

// The SLIs an SLO can be set on.
const (
	// SLISuccess counts outcomes: ok is good, error is bad.
	SLISuccess = "success"
	// SLILatency counts outcomes: good when latency_ms is at most the
	// SLO's latency_ms.
	SLILatency = "latency"
	// SLIPolicyViolation counts decisions: a deny is bad, anything else
	// good.
	SLIPolicyViolation = "policy_violation"
)

// Match selects the actions an SLO or a breaker watches. Every listed
// field must match; an absent field matches everything. Globs as in
// policy documents; tools are "name" or "server/name".
type Match struct {
	Agents  []string `yaml:"agents" json:"agents,omitempty"`
	Tools   []string `yaml:"tools" json:"tools,omitempty"`
	Servers []string `yaml:"servers" json:"servers,omitempty"`
	Models  []string `yaml:"models" json:"models,omitempty"`
}

// SLO is one service level objective, as configured under slos:.
type SLO struct {
	ID     string  `yaml:"id"`
	SLI    string  `yaml:"sli"`
	Target float64 `yaml:"target"`
	// Window is the period the error budget is counted over (default 30d).
	Window Duration `yaml:"window"`
	// LatencyMS is the threshold of a latency SLI.
	LatencyMS float64 `yaml:"latency_ms"`
	Match     Match   `yaml:"match"`
}

// Breaker is one circuit breaker rule, as configured under breakers:. It
// makes one circuit per matched tool ("tool:server/name"), server
// ("server:NAME") or model ("model:NAME"), whichever its match names
// (tools first).
type Breaker struct {
	ID    string `yaml:"id"`
	Match Match  `yaml:"match"`
	// Window is how far back failures are counted (default 1m).
	Window Duration `yaml:"window"`
	// MinCalls is how many outcomes the window must hold before the
	// ratio can open the circuit (default 10).
	MinCalls int `yaml:"min_calls"`
	// FailureRatio opens the circuit when reached (default 0.5).
	FailureRatio float64 `yaml:"failure_ratio"`
	// OpenFor is how long an open circuit refuses every call before it
	// lets probes through (default 30s).
	OpenFor Duration `yaml:"open_for"`
	// HalfOpenProbes is how many calls a half-open circuit lets through;
	// all of them must succeed for it to close (default 1).
	HalfOpenProbes int `yaml:"half_open_probes"`
}

// Defaults of a breaker and an SLO.
const (
	DefaultSLOWindow      = Duration(30 * 24 * time.Hour)
	DefaultBreakerWindow  = Duration(time.Minute)
	DefaultMinCalls       = 10
	DefaultFailureRatio   = 0.5
	DefaultOpenFor        = Duration(30 * time.Second)
	DefaultHalfOpenProbes = 1
	// MaxSLOs and MaxBreakers bound the configuration: every decision is
	// matched against each.
	MaxSLOs     = 64
	MaxBreakers = 32
	// MaxSLOWindow bounds an SLO's window: its counts are kept per hour.
	MaxSLOWindow = Duration(90 * 24 * time.Hour)
)

// Config is the reliability part of agentgov.yaml.
type Config struct {
	SLOs     []SLO
	Breakers []Breaker
}

// KeyError names the configuration key at fault, relative to the
// configuration's top ("slos[0].target").
type KeyError struct {
	Key string
	Msg string
}

func (e *KeyError) Error() string { return e.Key + ": " + e.Msg }

var idPattern = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$`)

// Fill sets the defaults of every key left empty.
func (c *Config) Fill() {
	for i := range c.SLOs {
		if c.SLOs[i].Window == 0 {
			c.SLOs[i].Window = DefaultSLOWindow
		}
	}
	for i := range c.Breakers {
		b := &c.Breakers[i]
		if b.Window == 0 {
			b.Window = DefaultBreakerWindow
		}
		if b.MinCalls == 0 {
			b.MinCalls = DefaultMinCalls
		}
		if b.FailureRatio == 0 {
			b.FailureRatio = DefaultFailureRatio
		}
		if b.OpenFor == 0 {
			b.OpenFor = DefaultOpenFor
		}
		if b.HalfOpenProbes == 0 {
			b.HalfOpenProbes = DefaultHalfOpenProbes
		}
	}
}

// Validate checks every value; the error is a *KeyError.
func (c *Config) Validate() error {
	bad := func(key, format string, args ...any) error {
		return &KeyError{Key: key, Msg: fmt.Sprintf(format, args...)}
	}
	if len(c.SLOs) > MaxSLOs {
		return bad("slos", "at most %d SLOs, got %d", MaxSLOs, len(c.SLOs))
	}
	if len(c.Breakers) > MaxBreakers {
		return bad("breakers", "at most %d breakers, got %d", MaxBreakers, len(c.Breakers))
	}
	ids := map[string]bool{}
	for i, s := range c.SLOs {
		key := fmt.Sprintf("slos[%d]", i)
		if !idPattern.MatchString(s.ID) {
			return bad(key+".id", "want 1 to 64 letters, digits, '.', '_' or '-', got %q", s.ID)
		}
		if ids[s.ID] {
			return bad(key+".id", "duplicate SLO id %q", s.ID)
		}
		ids[s.ID] = true
		switch s.SLI {
		case SLISuccess, SLIPolicyViolation:
			if s.LatencyMS != 0 {
				return bad(key+".latency_ms", "only a latency SLI has a threshold")
			}
		case SLILatency:
			if s.LatencyMS <= 0 {
				return bad(key+".latency_ms", "a latency SLI needs a threshold above 0")
			}
		default:
			return bad(key+".sli", "want success, latency or policy_violation, got %q", s.SLI)
		}
		if !(s.Target > 0 && s.Target < 1) {
			return bad(key+".target", "want a fraction between 0 and 1 exclusive (0.99 for 99%%), got %v", s.Target)
		}
		if s.Window < Duration(time.Hour) || s.Window > MaxSLOWindow {
			return bad(key+".window", "want a window from 1h to %v, got %v", MaxSLOWindow, s.Window)
		}
		if err := checkGlobs(key+".match", s.Match); err != nil {
			return err
		}
	}
	ids = map[string]bool{}
	for i, b := range c.Breakers {
		key := fmt.Sprintf("breakers[%d]", i)
		if !idPattern.MatchString(b.ID) {
			return bad(key+".id", "want 1 to 64 letters, digits, '.', '_' or '-', got %q", b.ID)
		}
		if ids[b.ID] {
			return bad(key+".id", "duplicate breaker id %q", b.ID)
		}
		ids[b.ID] = true
		if len(b.Match.Tools)+len(b.Match.Servers)+len(b.Match.Models) == 0 {
			return bad(key+".match", "name the tools, servers or models the breaker guards")
		}
		if len(b.Match.Agents) > 0 {
			return bad(key+".match.agents", "a circuit guards an upstream for every agent; match tools, servers or models")
		}
		if err := checkGlobs(key+".match", b.Match); err != nil {
			return err
		}
		if b.Window < Duration(time.Second) || b.Window > Duration(time.Hour) {
			return bad(key+".window", "want a window from 1s to 1h, got %v", b.Window)
		}
		if b.MinCalls < 1 || b.MinCalls > 100000 {
			return bad(key+".min_calls", "want 1 to 100000 calls, got %d", b.MinCalls)
		}
		if !(b.FailureRatio > 0 && b.FailureRatio <= 1) {
			return bad(key+".failure_ratio", "want a fraction above 0 and at most 1, got %v", b.FailureRatio)
		}
		if b.OpenFor < Duration(time.Second) || b.OpenFor > Duration(24*time.Hour) {
			return bad(key+".open_for", "want a pause from 1s to 24h, got %v", b.OpenFor)
		}
		if b.HalfOpenProbes < 1 || b.HalfOpenProbes > 1000 {
			return bad(key+".half_open_probes", "want 1 to 1000 probes, got %d", b.HalfOpenProbes)
		}
	}
	return nil
}

func checkGlobs(key string, m Match) error {
	for name, list := range map[string][]string{"agents": m.Agents, "tools": m.Tools, "servers": m.Servers, "models": m.Models} {
		for j, g := range list {
			if g == "" {
				return &KeyError{Key: fmt.Sprintf("%s.%s[%d]", key, name, j), Msg: "empty pattern"}
			}
		}
	}
	return nil
}
