package chaos

import (
	"fmt"
	"regexp"
	"time"

	"go.yaml.in/yaml/v3"
)

// The faults an experiment can inject.
const (
	// Latency waits latency_ms before the call is forwarded, as a slow
	// upstream would make the caller wait.
	Latency = "latency"
	// Error answers the call with an error without forwarding it, as an
	// upstream that failed would.
	Error = "error"
	// Drop does not forward the call and gives it no answer of the
	// upstream's, as an upstream that closed the connection would.
	Drop = "drop"
)

// Faults lists the faults, in the order the documentation gives them.
var Faults = []string{Latency, Error, Drop}

// Experiment is one entry of chaos: in agentgov.yaml.
type Experiment struct {
	// ID names the experiment in the audit log, in /metrics and in the
	// API; absent, it is chaos-N for the N-th entry (from 1).
	ID    string `yaml:"id" json:"id"`
	Match Match  `yaml:"match" json:"match"`
	// Fault is latency, error or drop.
	Fault string `yaml:"fault" json:"fault"`
	// Probability is the chance, above 0 and at most 1, that a matching
	// call gets the fault. Required: 1 is every matching call.
	Probability float64 `yaml:"probability" json:"probability"`
	// LatencyMS is the wait of a latency fault (required there); for an
	// error or a drop, an optional wait before the failure, as a failure
	// that comes after a timeout.
	LatencyMS int64 `yaml:"latency_ms" json:"latency_ms,omitempty"`
	// Error is what an error fault answers (only there); the defaults say
	// that the experiment injected it.
	Error *ErrorSpec `yaml:"error" json:"error,omitempty"`
	// From and Until bound when the experiment injects anything (RFC
	// 3339; either may be absent): from From on, up to but not at Until.
	From  *Time `yaml:"from" json:"from,omitempty"`
	Until *Time `yaml:"until" json:"until,omitempty"`
	// Enabled switches the experiment at start (absent: on). The API
	// switches it while the server runs.
	Enabled *bool `yaml:"enabled" json:"-"`
}

// Match selects the calls an experiment applies to. Every listed field
// must match. Tools are "name" or "server/name" globs as in policies;
// servers are MCP server names; models are model names. A call is a tool
// call or a model call, so models do not go with tools or servers.
type Match struct {
	Tools   []string `yaml:"tools" json:"tools,omitempty"`
	Servers []string `yaml:"servers" json:"servers,omitempty"`
	Models  []string `yaml:"models" json:"models,omitempty"`
}

// ErrorSpec is the error an error fault answers with. It may be written as
// a mapping {message, code} or as the message alone.
type ErrorSpec struct {
	// Message is the upstream's error text as the caller sees it.
	Message string `yaml:"message" json:"message,omitempty"`
	// Code is the HTTP status of the model proxy's answer: 429 or 500 to
	// 599 (default 500). The MCP gateway names it in the tool's error
	// text.
	Code int `yaml:"code" json:"code,omitempty"`
}

// UnmarshalYAML reads the message alone, or the mapping with no key but
// message and code.
func (e *ErrorSpec) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		e.Message = n.Value
		return nil
	case yaml.MappingNode:
	default:
		return fmt.Errorf("line %d: want an error message, or {message, code}", n.Line)
	}
	// A node decoded on its own does not refuse unknown keys: check them
	// here, as the rest of the file is checked.
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		switch k.Value {
		case "message":
			if err := v.Decode(&e.Message); err != nil {
				return err
			}
		case "code":
			if err := v.Decode(&e.Code); err != nil {
				return err
			}
		default:
			return fmt.Errorf("line %d: field %s is not a known key of the error of a chaos experiment (message, code)", k.Line, k.Value)
		}
	}
	return nil
}

// Time is an RFC 3339 time in the configuration.
type Time struct{ time.Time }

// UnmarshalYAML reads an RFC 3339 time, quoted or not.
func (t *Time) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: want an RFC 3339 time such as 2026-12-03T09:00:00Z", n.Line)
	}
	v, err := time.Parse(time.RFC3339, n.Value)
	if err != nil {
		return fmt.Errorf("line %d: want an RFC 3339 time such as 2026-12-03T09:00:00Z, got %q", n.Line, n.Value)
	}
	t.Time = v
	return nil
}

// Bounds of the configuration.
const (
	// MaxExperiments bounds chaos:; every call the gateway or the proxy
	// forwards is matched against each.
	MaxExperiments = 64
	// MaxLatency bounds latency_ms: a longer wait only holds connections.
	MaxLatency = 10 * time.Minute
	// DefaultErrorCode is the proxy's status for an error fault.
	DefaultErrorCode = 500
)

// KeyError names the configuration key at fault, relative to the
// configuration's top ("chaos[0].probability").
type KeyError struct {
	Key string
	Msg string
}

func (e *KeyError) Error() string { return e.Key + ": " + e.Msg }

var idPattern = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$`)

// Fill names the experiments without an id chaos-N, N their place from 1,
// and sets the defaults of error faults.
func Fill(exps []Experiment) {
	for i := range exps {
		e := &exps[i]
		if e.ID == "" {
			e.ID = fmt.Sprintf("chaos-%d", i+1)
		}
		if e.Fault == Error {
			if e.Error == nil {
				e.Error = &ErrorSpec{}
			}
			if e.Error.Code == 0 {
				e.Error.Code = DefaultErrorCode
			}
			if e.Error.Message == "" {
				e.Error.Message = fmt.Sprintf("chaos experiment %s injected this error", e.ID)
			}
		}
	}
}

// Validate checks filled experiments; the error is a *KeyError.
func Validate(exps []Experiment) error {
	bad := func(key, format string, args ...any) error {
		return &KeyError{Key: key, Msg: fmt.Sprintf(format, args...)}
	}
	if len(exps) > MaxExperiments {
		return bad("chaos", "at most %d experiments, got %d", MaxExperiments, len(exps))
	}
	ids := map[string]bool{}
	for i, e := range exps {
		key := fmt.Sprintf("chaos[%d]", i)
		if !idPattern.MatchString(e.ID) {
			return bad(key+".id", "want 1 to 64 letters, digits, '.', '_' or '-', got %q", e.ID)
		}
		if ids[e.ID] {
			return bad(key+".id", "duplicate chaos experiment id %q", e.ID)
		}
		ids[e.ID] = true
		m := e.Match
		if len(m.Tools)+len(m.Servers)+len(m.Models) == 0 {
			return bad(key+".match", "name the tools, servers or models the experiment applies to (\"*\" for all)")
		}
		if len(m.Models) > 0 && len(m.Tools)+len(m.Servers) > 0 {
			return bad(key+".match", "a call is a tool call or a model call: match models, or tools and servers, not both")
		}
		for name, list := range map[string][]string{"tools": m.Tools, "servers": m.Servers, "models": m.Models} {
			for j, g := range list {
				if g == "" {
					return bad(fmt.Sprintf("%s.match.%s[%d]", key, name, j), "empty pattern")
				}
			}
		}
		switch e.Fault {
		case Latency:
			if e.LatencyMS <= 0 {
				return bad(key+".latency_ms", "a latency fault needs latency_ms above 0")
			}
		case Error, Drop:
		case "":
			return bad(key+".fault", "missing: want latency, error or drop")
		default:
			return bad(key+".fault", "want latency, error or drop, got %q", e.Fault)
		}
		if e.LatencyMS < 0 || time.Duration(e.LatencyMS)*time.Millisecond > MaxLatency {
			return bad(key+".latency_ms", "want 0 to %d milliseconds, got %d", MaxLatency.Milliseconds(), e.LatencyMS)
		}
		if !(e.Probability > 0 && e.Probability <= 1) {
			return bad(key+".probability", "want a chance above 0 and at most 1 (1: every matching call), got %v", e.Probability)
		}
		if e.Error != nil {
			if e.Fault != Error {
				return bad(key+".error", "only an error fault answers with an error")
			}
			if c := e.Error.Code; c != 429 && (c < 500 || c > 599) {
				return bad(key+".error.code", "want 429 or a status from 500 to 599, as a failing provider answers, got %d", c)
			}
			if len(e.Error.Message) > 4096 {
				return bad(key+".error.message", "at most 4096 bytes")
			}
		}
		if e.From != nil && e.Until != nil && !e.Until.After(e.From.Time) {
			return bad(key+".until", "%s is not after from (%s)", e.Until.Format(time.RFC3339), e.From.Format(time.RFC3339))
		}
	}
	return nil
}
