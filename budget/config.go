package budget

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/errcode"
)

// Scope says whose spending a budget counts. Every field it sets must equal
// the action's for the budget to apply; an empty field matches anything, so
// {org: acme} covers every team, user, agent and session of acme. Session
// ids are per agent, so a scope that names a session names its agent too.
type Scope struct {
	Org     string `json:"org,omitempty"`
	Team    string `json:"team,omitempty"`
	User    string `json:"user,omitempty"`
	Agent   string `json:"agent,omitempty"`
	Session string `json:"session,omitempty"`
}

// ScopeOf is the full identity of an action, the most specific scope that
// applies to it.
func ScopeOf(a *action.Action) Scope {
	return Scope{Org: a.Principal.Org, Team: a.Principal.Team, User: a.Principal.User, Agent: a.Agent.ID, Session: a.Session}
}

// Covers reports whether a budget with scope s applies to an actor whose full
// identity is id.
func (s Scope) Covers(id Scope) bool {
	return (s.Org == "" || s.Org == id.Org) &&
		(s.Team == "" || s.Team == id.Team) &&
		(s.User == "" || s.User == id.User) &&
		(s.Agent == "" || s.Agent == id.Agent) &&
		(s.Session == "" || s.Session == id.Session)
}

// IsZero reports whether s sets no field: a global budget.
func (s Scope) IsZero() bool { return s == Scope{} }

func (s Scope) String() string {
	var parts []string
	for _, f := range []struct{ k, v string }{{"org", s.Org}, {"team", s.Team}, {"user", s.User}, {"agent", s.Agent}, {"session", s.Session}} {
		if f.v != "" {
			parts = append(parts, f.k+"="+f.v)
		}
	}
	if parts == nil {
		return "global"
	}
	return strings.Join(parts, ",")
}

// Amounts is a quantity of everything a budget counts. It serves as limits,
// spent and reserved alike. Cost is in micro-dollars; in JSON it is written
// as dollars ("cost_usd": 0.004 is 4000 micros) and read exactly, without
// float rounding.
type Amounts struct {
	CostMicros   int64
	Tokens       int64
	InputTokens  int64
	OutputTokens int64
	Calls        int64
}

type amountsJSON struct {
	CostUSD      json.Number `json:"cost_usd"`
	Tokens       int64       `json:"tokens"`
	InputTokens  int64       `json:"input_tokens"`
	OutputTokens int64       `json:"output_tokens"`
	Calls        int64       `json:"calls"`
}

// MarshalJSON writes cost_usd as an exact decimal number of dollars.
func (m Amounts) MarshalJSON() ([]byte, error) {
	return json.Marshal(amountsJSON{
		CostUSD: json.Number(formatMicros(m.CostMicros)), Tokens: m.Tokens,
		InputTokens: m.InputTokens, OutputTokens: m.OutputTokens, Calls: m.Calls,
	})
}

// UnmarshalJSON reads Amounts strictly: unknown keys, fractional counts and
// costs finer than a micro-dollar are errors naming the key.
func (m *Amounts) UnmarshalJSON(data []byte) error {
	var raw map[string]json.RawMessage
	if err := strictUnmarshal(data, &raw); err != nil {
		return err
	}
	var out Amounts
	for k, v := range raw {
		var n json.Number
		if len(v) == 0 || (v[0] != '-' && (v[0] < '0' || v[0] > '9')) {
			return &ConfigError{Field: k, Problem: "must be a number"}
		}
		if err := strictUnmarshal(v, &n); err != nil {
			return &ConfigError{Field: k, Problem: "must be a number"}
		}
		var err error
		switch k {
		case "cost_usd":
			out.CostMicros, err = parseMicros(n.String(), false)
			if err != nil {
				return &ConfigError{Field: k, Problem: fmt.Sprintf("%s: %v", n, err)}
			}
			continue
		case "tokens":
			out.Tokens, err = n.Int64()
		case "input_tokens":
			out.InputTokens, err = n.Int64()
		case "output_tokens":
			out.OutputTokens, err = n.Int64()
		case "calls":
			out.Calls, err = n.Int64()
		default:
			return &ConfigError{Field: k, Problem: "unknown field (want cost_usd, tokens, input_tokens, output_tokens or calls)"}
		}
		if err != nil {
			return &ConfigError{Field: k, Problem: fmt.Sprintf("%s is not a whole number in range", n)}
		}
	}
	*m = out
	return nil
}

// dims lists the dimensions with their names and units, for checks and messages.
func (m Amounts) dims() [5]dim {
	return [5]dim{
		{"cost", m.CostMicros},
		{"tokens", m.Tokens},
		{"input tokens", m.InputTokens},
		{"output tokens", m.OutputTokens},
		{"calls", m.Calls},
	}
}

type dim struct {
	name string
	v    int64
}

func (m Amounts) add(o Amounts) Amounts {
	return Amounts{
		CostMicros:   addSat(m.CostMicros, o.CostMicros),
		Tokens:       addSat(m.Tokens, o.Tokens),
		InputTokens:  addSat(m.InputTokens, o.InputTokens),
		OutputTokens: addSat(m.OutputTokens, o.OutputTokens),
		Calls:        addSat(m.Calls, o.Calls),
	}
}

func (m Amounts) neg() Amounts {
	return Amounts{-m.CostMicros, -m.Tokens, -m.InputTokens, -m.OutputTokens, -m.Calls}
}

// IsZero reports whether every amount is zero.
func (m Amounts) IsZero() bool { return m == Amounts{} }

// Thresholds are fractions of the limits, in [0, 1]; 0 means none. Each is
// compared with the fullest dimension (spent plus reserved plus the action's
// estimate, over its limit).
type Thresholds struct {
	// Soft raises one alert per period.
	Soft float64 `json:"soft"`
	// Throttle makes every further action need approval, or rate-limits it,
	// as Config.Throttle says.
	Throttle float64 `json:"throttle"`
	// Hard denies an action that would take any dimension past this fraction.
	Hard float64 `json:"hard"`
	// Kill asks the engine to engage the kill switch on the budget's scope.
	Kill float64 `json:"kill"`
}

// Throttle modes.
const (
	ThrottleApproval   = "require_approval"
	throttleRatePrefix = "rate:"
)

// Config is one budget.
type Config struct {
	ID    string `json:"id"`
	Scope Scope  `json:"scope"`
	// Period is "session", "daily", "weekly" (weeks start on Monday),
	// "monthly", "none", or a duration such as "5h" or "7d" for a rolling
	// window.
	Period string `json:"period"`
	// Timezone places calendar periods; an IANA name, "UTC" by default.
	Timezone   string     `json:"timezone,omitempty"`
	Limits     Amounts    `json:"limits"`
	Thresholds Thresholds `json:"thresholds"`
	// Throttle is what the throttle threshold does: "require_approval" (the
	// default), or "rate:N/DURATION" to allow at most N calls per DURATION
	// under this budget and deny the rest.
	Throttle string `json:"throttle,omitempty"`
}

// UnmarshalJSON reads a Config strictly, naming the field of any problem
// ("scope.project: unknown field").
func (c *Config) UnmarshalJSON(data []byte) error {
	var raw struct {
		ID         string          `json:"id"`
		Scope      json.RawMessage `json:"scope"`
		Period     string          `json:"period"`
		Timezone   string          `json:"timezone"`
		Limits     json.RawMessage `json:"limits"`
		Thresholds json.RawMessage `json:"thresholds"`
		Throttle   string          `json:"throttle"`
	}
	if err := strictUnmarshal(data, &raw); err != nil {
		return err
	}
	out := Config{ID: raw.ID, Period: raw.Period, Timezone: raw.Timezone, Throttle: raw.Throttle}
	if err := sub("scope", raw.Scope, &out.Scope); err != nil {
		return err
	}
	if err := sub("limits", raw.Limits, &out.Limits); err != nil {
		return err
	}
	if err := sub("thresholds", raw.Thresholds, &out.Thresholds); err != nil {
		return err
	}
	*c = out
	return nil
}

// DecodeConfig reads one Config from JSON, fills defaults and validates it.
// The id may be left out, for a caller that takes it from elsewhere (a URL
// path); Put refuses a config without one.
func DecodeConfig(data []byte) (Config, error) {
	var c Config
	if err := c.UnmarshalJSON(data); err != nil {
		return Config{}, err
	}
	c = c.withDefaults()
	check := c
	if check.ID == "" {
		check.ID = "unnamed"
	}
	if _, err := compile(check); err != nil {
		return Config{}, err
	}
	if err := checkScope(c.Scope); err != nil {
		return Config{}, err
	}
	return c, nil
}

// checkScope refuses a new budget on a session that does not name its
// agent: session ids are per agent, and such a budget would count every
// agent's session of that id together. (One stored before they were still
// loads, and counts so.)
func checkScope(s Scope) error {
	if s.Session != "" && s.Agent == "" {
		return &ConfigError{Field: "scope.agent", Problem: "required with scope.session: session ids are per agent"}
	}
	return nil
}

func sub(field string, raw json.RawMessage, v any) error {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	if err := strictUnmarshal(raw, v); err != nil {
		var ce *ConfigError
		if errors.As(err, &ce) {
			f := field
			if ce.Field != "" { // the value itself, not a field of it, has the wrong type
				f += "." + ce.Field
			}
			return &ConfigError{Field: f, Problem: ce.Problem}
		}
		return &ConfigError{Field: field, Problem: err.Error()}
	}
	return nil
}

// strictUnmarshal decodes exactly one JSON value, refusing unknown fields and
// trailing data, and turns decoder errors into ConfigErrors naming the field.
func strictUnmarshal(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		var se *json.SyntaxError
		switch {
		case errors.As(err, &te):
			return &ConfigError{Field: te.Field, Problem: fmt.Sprintf("cannot be a JSON %s (want %s)", te.Value, errcode.JSONKind(te.Type))}
		case errors.As(err, &se):
			return errors.New(errcode.DescribeJSON(err))
		}
		var ce *ConfigError
		if errors.As(err, &ce) {
			return ce
		}
		if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			return &ConfigError{Field: strings.Trim(f, `"`), Problem: "unknown field"}
		}
		return errors.New(errcode.DescribeJSON(err))
	}
	if dec.More() {
		return errors.New("malformed JSON: unexpected data after the value")
	}
	return nil
}

// ErrInvalid is matched (errors.Is) by every ConfigError.
var ErrInvalid = errors.New("invalid budget")

// ConfigError names the field of a budget config that is wrong, and why.
type ConfigError struct {
	Field   string
	Problem string
}

func (e *ConfigError) Error() string { return e.Field + ": " + e.Problem }

// Is makes errors.Is(err, ErrInvalid) hold.
func (e *ConfigError) Is(target error) bool { return target == ErrInvalid }

var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// withDefaults fills what a config may leave out: the UTC time zone, a hard
// threshold of 1 when no threshold is given at all (a budget with limits and
// no thresholds would otherwise only count), and require_approval as the
// throttle mode.
func (c Config) withDefaults() Config {
	if c.Timezone == "" {
		c.Timezone = "UTC"
	}
	if c.Thresholds == (Thresholds{}) {
		c.Thresholds.Hard = 1
	}
	if c.Throttle == "" && c.Thresholds.Throttle > 0 {
		c.Throttle = ThrottleApproval
	}
	return c
}

// compiled is a validated config, prepared for the decision path.
type compiled struct {
	cfg    Config
	period period
	// Thresholds in parts per million; 0 is none.
	soft, throttle, hard, kill int64
	// rateN calls per rateWidth once throttled; rateN == 0 means require_approval.
	rateN     int64
	rateWidth time.Duration
}

// compile validates c (already defaulted) and prepares it. Its errors are
// ConfigErrors naming the field.
func compile(c Config) (*compiled, error) {
	if !idPattern.MatchString(c.ID) {
		return nil, &ConfigError{Field: "id", Problem: fmt.Sprintf("%q is not 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit", c.ID)}
	}
	p, err := parsePeriod(c.Period, c.Timezone)
	if err != nil {
		return nil, err
	}
	out := &compiled{cfg: c, period: p}
	for _, d := range []struct {
		name string
		v    int64
	}{{"cost_usd", c.Limits.CostMicros}, {"tokens", c.Limits.Tokens}, {"input_tokens", c.Limits.InputTokens}, {"output_tokens", c.Limits.OutputTokens}, {"calls", c.Limits.Calls}} {
		if d.v < 0 {
			return nil, &ConfigError{Field: "limits." + d.name, Problem: "must not be negative (0 means no limit)"}
		}
	}
	prevName, prev := "", 0.0
	for _, t := range []struct {
		name string
		v    float64
		dst  *int64
	}{{"soft", c.Thresholds.Soft, &out.soft}, {"throttle", c.Thresholds.Throttle, &out.throttle}, {"hard", c.Thresholds.Hard, &out.hard}, {"kill", c.Thresholds.Kill, &out.kill}} {
		field := "thresholds." + t.name
		switch {
		case math.IsNaN(t.v) || t.v < 0:
			return nil, &ConfigError{Field: field, Problem: "must be a fraction between 0 and 1 (0 means none)"}
		case t.v > 1:
			return nil, &ConfigError{Field: field, Problem: fmt.Sprintf("%v is above 1 (thresholds are fractions of the limit)", t.v)}
		case t.v == 0:
			continue
		case t.v < prev:
			return nil, &ConfigError{Field: field, Problem: fmt.Sprintf("%v is below thresholds.%s %v (want soft ≤ throttle ≤ hard ≤ kill)", t.v, prevName, prev)}
		}
		*t.dst = ppm(t.v)
		prevName, prev = t.name, t.v
	}
	switch {
	case c.Throttle == "" || c.Throttle == ThrottleApproval:
	case strings.HasPrefix(c.Throttle, throttleRatePrefix):
		n, per, ok := strings.Cut(strings.TrimPrefix(c.Throttle, throttleRatePrefix), "/")
		calls, err := strconv.ParseInt(n, 10, 64)
		if !ok || err != nil || calls <= 0 {
			return nil, &ConfigError{Field: "throttle", Problem: fmt.Sprintf("%q: want rate:N/DURATION with N a positive whole number, such as rate:10/1m", c.Throttle)}
		}
		d, err := time.ParseDuration(per)
		if err != nil || d < time.Second || d%time.Second != 0 {
			return nil, &ConfigError{Field: "throttle", Problem: fmt.Sprintf("%q: the duration must be whole seconds, at least 1s, such as rate:10/1m", c.Throttle)}
		}
		out.rateN, out.rateWidth = calls, d
	default:
		return nil, &ConfigError{Field: "throttle", Problem: fmt.Sprintf("unknown mode %q (want require_approval or rate:N/DURATION)", c.Throttle)}
	}
	return out, nil
}
