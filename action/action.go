// Package action defines what an agent asks to do (Action) and what agentgov
// answered (Decision). These are the contract types of the whole product: the
// policy engine evaluates them, the server speaks them as JSON, the audit log
// stores them. They depend on nothing else in the module but its table of error codes.
package action

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/agentgov/agentgov/errcode"
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
	// PreAgentMessage is a message one agent sends another (A2A), decided
	// before it leaves; PostAgentMessage the reply, before it reaches the
	// sender.
	PreAgentMessage  Point = "pre_agent_message"
	PostAgentMessage Point = "post_agent_message"
	Output           Point = "output"
	AgentShutdown    Point = "agent_shutdown"
)

// Points lists every intervention point, in pipeline order.
var Points = []Point{AgentStartup, Input, PreModelCall, PostModelCall, PreToolCall, PostToolCall, PreAgentMessage, PostAgentMessage, Output, AgentShutdown}

// NumPoints is len(Points), for arrays indexed by Point.Index.
const NumPoints = 10

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
	case PreAgentMessage:
		return 6
	case PostAgentMessage:
		return 7
	case Output:
		return 8
	case AgentShutdown:
		return 9
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
	// Delegation is the chain of delegations the agent acts under,
	// outermost first; empty for an agent acting on its own credential.
	Delegation []Delegation `json:"delegation,omitempty"`
	// Credential is what the caller proved who it is with. The server sets
	// it; it is recorded with every decision, and policies do not read it.
	Credential *Credential `json:"credential,omitempty"`
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

// Target is the agent a message is sent to (points pre_agent_message and
// post_agent_message): its name in the configuration, the trust tier the
// operator gives it there, and its labels.
type Target struct {
	ID     string            `json:"id,omitempty"`
	Trust  string            `json:"trust,omitempty"`
	Labels map[string]string `json:"labels,omitempty"`
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
	Target      Target         `json:"target,omitzero"`
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
// that is wrong, so that a caller can fix its request. Beyond well-formed
// fields, an action must name its agent and carry what its point is decided
// on (see Decidable): an action with nothing to decide on is refused, never
// allowed by a permissive default.
func (a *Action) Validate() error {
	if a.Agent.ID == "" {
		return &FieldError{Field: "agent.id", Problem: "required: every action is decided for an agent"}
	}
	if err := a.validateFields(); err != nil {
		return err
	}
	return a.Decidable()
}

// validateFields checks that each field present is well formed.
func (a *Action) validateFields() error {
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

// Decidable checks that the action carries the field its point is about: a
// tool at the tool points, a model at the model points, the text at input
// and output. Without it no rule could tell this action from any other, so
// a document's default would decide it blind. Agent startup and shutdown
// are about the agent alone.
func (a *Action) Decidable() error {
	var field, what string
	switch p := a.PointOrDefault(); p {
	case PreToolCall, PostToolCall:
		if a.Tool.Name != "" {
			return nil
		}
		field, what = "tool.name", "the tool called"
	case PreModelCall, PostModelCall:
		if a.Model != "" {
			return nil
		}
		field, what = "model", "the model called"
	case Input, Output:
		if a.Content != "" {
			return nil
		}
		field, what = "content", "the text"
	case PreAgentMessage, PostAgentMessage:
		if a.Target.ID != "" {
			return nil
		}
		field, what = "target.id", "the agent messaged"
	default:
		return nil
	}
	return &FieldError{Field: field, Problem: fmt.Sprintf("required at point %s: an action there is decided on %s, and without it there is nothing to decide on", a.PointOrDefault(), what)}
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
// trailing data and over-deep args are errors naming the field. Numbers in
// args keep their value: integers stay int64, others become float64. What
// Validate adds (an agent, and what the point is decided on) is left to the
// caller: over HTTP the agent comes from the credential, and a policy test
// may evaluate a fragment of an action.
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
	if err := a.validateFields(); err != nil {
		return Action{}, err
	}
	return a, nil
}

// DecodeStored reads an action as agentgov itself wrote it (a ticket's
// copy, a decision record): fields it does not know are skipped, and numbers
// in args and annotations keep their value as Decode keeps them. A plain
// json.Unmarshal would turn every number into a float64 and an account
// number above 2^53 into its neighbour.
func DecodeStored(data []byte) (Action, error) {
	var a Action
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&a); err != nil {
		return Action{}, err
	}
	var err error
	if a.Args, err = normalizeMap(a.Args, "args", 1); err != nil {
		return Action{}, err
	}
	if a.Tool.Annotations, err = normalizeMap(a.Tool.Annotations, "tool.annotations", 1); err != nil {
		return Action{}, err
	}
	return a, nil
}

func describeJSONError(err error) error {
	switch e := err.(type) {
	case *json.UnmarshalTypeError:
		// In JSON's words: the Go type (action.Tool) means nothing to a
		// caller in another language.
		f := e.Field
		if f == "" {
			f = "action"
		}
		return &FieldError{Field: f, Problem: fmt.Sprintf("cannot be a JSON %s (want %s)", e.Value, errcode.JSONKind(e.Type))}
	}
	msg := err.Error()
	if f, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		return &FieldError{Field: strings.Trim(f, `"`), Problem: "unknown field"}
	}
	return errors.New(errcode.DescribeJSON(err))
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
