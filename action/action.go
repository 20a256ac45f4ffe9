// Package action defines what an agent asks to do (Action) and what agentgov
// answered (Decision). These are the contract types of the whole product: the
// policy engine evaluates them, the server speaks them as JSON, the audit log
// stores them. They depend on nothing else in the module.
package action

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// Point is the intervention point at which an action is decided.
type Point string

const (
	AgentStartup  Point = "agent_startup"
	Input         Point = "input"
	PreModelCall  Point = "pre_model_call"
	PostModelCall Point = "post_model_call"
	PreToolCall   Point = "pre_tool_call"
	PostToolCall  Point = "post_tool_call"
	Output        Point = "output"
	AgentShutdown Point = "agent_shutdown"
)

// Points lists every intervention point, in pipeline order.
var Points = []Point{AgentStartup, Input, PreModelCall, PostModelCall, PreToolCall, PostToolCall, Output, AgentShutdown}

// Index returns the position of p in Points, or -1 for an unknown point. The
// policy index uses it to keep one rule table per point in an array.
func (p Point) Index() int {
	switch p {
	case AgentStartup:
		return 0
	case Input:
		return 1
	case PreModelCall:
		return 2
	case PostModelCall:
		return 3
	case PreToolCall:
		return 4
	case PostToolCall:
		return 5
	case Output:
		return 6
	case AgentShutdown:
		return 7
	}
	return -1
}

// Valid reports whether p is a known intervention point.
func (p Point) Valid() bool { return p.Index() >= 0 }

// Agent is who acts. Over HTTP every field comes from the caller's credential.
type Agent struct {
	ID     string            `json:"id"`
	Type   string            `json:"type,omitempty"`
	Labels map[string]string `json:"labels,omitempty"`
}

// Principal is the human or organisation on whose behalf the agent acts.
type Principal struct {
	User string `json:"user,omitempty"`
	Team string `json:"team,omitempty"`
	Org  string `json:"org,omitempty"`
}

// Tool names the tool being called. Server is the MCP server (or tool
// namespace) it belongs to, empty for tools that have none.
type Tool struct {
	Server      string         `json:"server,omitempty"`
	Name        string         `json:"name,omitempty"`
	Annotations map[string]any `json:"annotations,omitempty"`
}

// Resource is a data object the action touches.
type Resource struct {
	Type       string `json:"type,omitempty"`
	ID         string `json:"id,omitempty"`
	Permission string `json:"permission,omitempty"`
}

// Estimate is what the caller expects the action to consume. Budgets reserve it.
type Estimate struct {
	Tokens  int64   `json:"tokens,omitempty"`
	CostUSD float64 `json:"cost_usd,omitempty"`
}

// Action is one thing an agent wants to do.
type Action struct {
	Agent       Agent          `json:"agent,omitzero"`
	Principal   Principal      `json:"principal,omitzero"`
	Session     string         `json:"session,omitempty"`
	Point       Point          `json:"point,omitempty"`
	Tool        Tool           `json:"tool,omitzero"`
	Args        map[string]any `json:"args,omitempty"`
	Resource    Resource       `json:"resource,omitzero"`
	Destination string         `json:"destination,omitempty"`
	Model       string         `json:"model,omitempty"`
	Content     string         `json:"content,omitempty"`
	Estimate    Estimate       `json:"estimate,omitzero"`
	ApprovalID  string         `json:"approval_id,omitempty"`
}

// PointOrDefault returns the action's point, or pre_tool_call when none is set,
// as DESIGN §2 specifies.
func (a *Action) PointOrDefault() Point {
	if a.Point == "" {
		return PreToolCall
	}
	return a.Point
}

// Validate checks the fields a decision depends on. It names the first field
// that is wrong, so that a caller can fix its request.
func (a *Action) Validate() error {
	if a.Point != "" && !a.Point.Valid() {
		return &FieldError{Field: "point", Problem: fmt.Sprintf("unknown point %q (want one of %s)", a.Point, pointList())}
	}
	if a.Estimate.Tokens < 0 {
		return &FieldError{Field: "estimate.tokens", Problem: "must not be negative"}
	}
	if a.Estimate.CostUSD < 0 {
		return &FieldError{Field: "estimate.cost_usd", Problem: "must not be negative"}
	}
	switch a.Resource.Permission {
	case "", "read", "write", "delete", "admin", "execute":
	default:
		return &FieldError{Field: "resource.permission", Problem: fmt.Sprintf("unknown permission %q (want read, write, delete, admin or execute)", a.Resource.Permission)}
	}
	return nil
}

func pointList() string {
	s := make([]string, len(Points))
	for i, p := range Points {
		s[i] = string(p)
	}
	return strings.Join(s, ", ")
}

// FieldError says which field of an Action is wrong and why.
type FieldError struct {
	Field   string
	Problem string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Problem }

// MaxNesting bounds how deeply args may nest. Deeper input is rejected rather
// than evaluated, so a hostile body cannot make canonicalisation or CEL
// evaluation recurse without bound.
const MaxNesting = 32

// Decode reads exactly one Action from JSON. Unknown fields, wrong types,
// trailing data and over-deep args are errors naming the field. Numbers in args
// keep their value: integers stay int64, others become float64.
func Decode(data []byte) (Action, error) {
	var a Action
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	if err := dec.Decode(&a); err != nil {
		return Action{}, describeJSONError(err)
	}
	if dec.More() {
		return Action{}, fmt.Errorf("unexpected data after the action object")
	}
	var err error
	if a.Args, err = normalizeMap(a.Args, "args", 1); err != nil {
		return Action{}, err
	}
	if a.Tool.Annotations, err = normalizeMap(a.Tool.Annotations, "tool.annotations", 1); err != nil {
		return Action{}, err
	}
	if err := a.Validate(); err != nil {
		return Action{}, err
	}
	return a, nil
}

func describeJSONError(err error) error {
	switch e := err.(type) {
	case *json.UnmarshalTypeError:
		return &FieldError{Field: e.Field, Problem: fmt.Sprintf("cannot be a JSON %s (want %s)", e.Value, e.Type)}
	case *json.SyntaxError:
		return fmt.Errorf("malformed JSON at byte %d: %v", e.Offset, e)
	}
	msg := err.Error()
	if f, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		return &FieldError{Field: strings.Trim(f, `"`), Problem: "unknown field"}
	}
	return fmt.Errorf("malformed JSON: %v", err)
}

// NormalizeValue converts json.Number leaves to int64 (when integral) or
// float64, and checks nesting depth. Everything that compares numbers (CEL,
// canonical JSON) then sees one representation per value.
func NormalizeValue(v any, path string, depth int) (any, error) {
	if depth > MaxNesting {
		return nil, &FieldError{Field: path, Problem: fmt.Sprintf("nested deeper than %d levels", MaxNesting)}
	}
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i, nil
		}
		f, err := x.Float64()
		if err != nil {
			return nil, &FieldError{Field: path, Problem: fmt.Sprintf("number %s is out of range", x)}
		}
		return f, nil
	case map[string]any:
		return normalizeMap(x, path, depth)
	case []any:
		for i, e := range x {
			n, err := NormalizeValue(e, fmt.Sprintf("%s[%d]", path, i), depth+1)
			if err != nil {
				return nil, err
			}
			x[i] = n
		}
		return x, nil
	}
	return v, nil
}

func normalizeMap(m map[string]any, path string, depth int) (map[string]any, error) {
	if depth > MaxNesting {
		return nil, &FieldError{Field: path, Problem: fmt.Sprintf("nested deeper than %d levels", MaxNesting)}
	}
	for k, v := range m {
		n, err := NormalizeValue(v, path+"."+k, depth+1)
		if err != nil {
			return nil, err
		}
		m[k] = n
	}
	return m, nil
}
