package policy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/agentgov/agentgov/action"
)

// Error is one problem in a policy file, located so that an editor can jump
// to it.
type Error struct {
	File string
	Line int
	Msg  string
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return e.File + ": " + e.Msg
}

// ErrorList is every problem found in a load; a set with any is refused whole.
type ErrorList []*Error

func (l ErrorList) Error() string {
	s := make([]string, len(l))
	for i, e := range l {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

// Unwrap lets errors.As find the individual errors.
func (l ErrorList) Unwrap() []error {
	out := make([]error, len(l))
	for i, e := range l {
		out[i] = e
	}
	return out
}

// Parse decodes and validates one policy document. Unknown keys, wrong types
// and invalid values are errors carrying file:line. CEL conditions are
// checked later, by Compile, because they need the whole environment.
func Parse(file string, data []byte) (*Document, error) {
	d, errs := parse(file, data)
	if len(errs) > 0 {
		return nil, errs
	}
	return d, nil
}

// parse decodes and validates as far as it can. The document it returns
// (nil only when the YAML cannot be read at all) may still have its
// conditions checked, so that one run reports every problem of a file.
func parse(file string, data []byte) (*Document, ErrorList) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, ErrorList{yamlError(file, err)}
	}
	if root.Kind == 0 || len(root.Content) == 0 {
		return nil, ErrorList{{File: file, Line: 1, Msg: "empty document"}}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var doc Document
	var errs ErrorList
	if err := dec.Decode(&doc); err != nil {
		// Unknown keys and wrong types leave the rest decoded: go on.
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			return nil, ErrorList{yamlError(file, err)}
		}
		errs = append(errs, yamlErrors(file, te)...)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err != io.EOF {
		errs = append(errs, &Error{File: file, Line: extra.Line, Msg: "a policy file holds one document; found a second one (---)"})
	}
	doc.File = file
	v := validator{file: file, root: root.Content[0]}
	v.document(&doc)
	doc.nameLine = v.line("name")
	return &doc, append(errs, v.errs...)
}

var yamlLine = regexp.MustCompile(`^line (\d+): (.*)$`)
var unknownField = regexp.MustCompile(`^field (\S+) not found in type \S+$`)

func yamlErrors(file string, te *yaml.TypeError) ErrorList {
	var out ErrorList
	for _, msg := range te.Errors {
		e := &Error{File: file, Msg: msg}
		if m := yamlLine.FindStringSubmatch(msg); m != nil {
			e.Line, _ = strconv.Atoi(m[1])
			e.Msg = m[2]
			if u := unknownField.FindStringSubmatch(e.Msg); u != nil {
				e.Msg = fmt.Sprintf("unknown key %q", u[1])
			}
		}
		out = append(out, e)
	}
	return out
}

func yamlError(file string, err error) *Error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &Error{File: file, Line: line, Msg: m[2]}
	}
	return &Error{File: file, Msg: msg}
}

// validator checks field values and finds the line of each problem in the
// YAML tree.
type validator struct {
	file string
	root *yaml.Node
	errs ErrorList
}

// line returns the line of the node at path (keys and sequence indexes),
// or of the deepest node on the way when the path does not go all the way.
func (v *validator) line(path ...any) int {
	_, line := v.walk(path)
	return line
}

// node returns the node at path, or nil.
func (v *validator) node(path ...any) *yaml.Node {
	n, _ := v.walk(path)
	return n
}

// walk follows path from the root; for a mapping key the line is the key's.
func (v *validator) walk(path []any) (*yaml.Node, int) {
	n := v.root
	line := n.Line
	for _, p := range path {
		var next *yaml.Node
		switch k := p.(type) {
		case string:
			if n.Kind == yaml.MappingNode {
				for i := 0; i+1 < len(n.Content); i += 2 {
					if n.Content[i].Value == k {
						next, line = n.Content[i+1], n.Content[i].Line
						break
					}
				}
			}
		case int:
			if n.Kind == yaml.SequenceNode && k < len(n.Content) {
				next = n.Content[k]
				line = next.Line
			}
		}
		if next == nil {
			return nil, line
		}
		n = next
	}
	return n, line
}

func (v *validator) errorf(path []any, format string, args ...any) {
	v.errs = append(v.errs, &Error{File: v.file, Line: v.line(path...), Msg: fmt.Sprintf(format, args...)})
}

func keys(parts ...any) []any { return parts }

var ruleID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:-]*$`)

func (v *validator) document(d *Document) {
	if d.Version != Version {
		if d.Version == "" {
			v.errorf(nil, "missing version (want %q)", Version)
		} else {
			v.errorf(keys("version"), "unsupported version %q (want %q)", d.Version, Version)
		}
	}
	if strings.TrimSpace(d.Name) == "" {
		v.errorf(nil, "missing name")
	}
	v.review(d.Review)
	if d.Default == "" {
		d.Default = action.Deny
	} else if !d.Default.Valid() {
		v.errorf(keys("default"), "unknown default %q (want allow, audit, require_approval or deny)", d.Default)
	}
	for _, f := range []struct {
		key  string
		vals []string
		glob bool
	}{
		{"agent_types", d.Scope.AgentTypes, false}, {"environments", d.Scope.Environments, false},
		{"agents", d.Scope.Agents, true}, {"users", d.Scope.Users, false},
		{"teams", d.Scope.Teams, false}, {"orgs", d.Scope.Orgs, false},
	} {
		v.patterns(keys("scope", f.key), f.vals, f.glob)
	}
	v.provenance(d)
	ids := map[string]bool{}
	for i := range d.Rules {
		r := &d.Rules[i]
		at := keys("rules", i)
		switch {
		case r.ID == "":
			v.errorf(at, "rule %d: missing id", i+1)
		case !ruleID.MatchString(r.ID):
			v.errorf(append(at, "id"), "rule id %q: use letters, digits and - _ . :", r.ID)
		case ids[r.ID]:
			v.errorf(append(at, "id"), "duplicate rule id %q", r.ID)
		}
		ids[r.ID] = true
		if r.Effect == "" {
			v.errorf(at, "rule %s: missing effect", r.ID)
		} else if !r.Effect.Valid() {
			v.errorf(append(at, "effect"), "rule %s: unknown effect %q (want allow, audit, require_approval or deny)", r.ID, r.Effect)
		}
		if r.Severity.Rank() < 0 {
			v.errorf(append(at, "severity"), "rule %s: unknown severity %q (want low, medium, high or critical)", r.ID, r.Severity)
		}
		v.match(append(at, "match"), &r.Match)
		if n := v.node("rules", i, "when"); n != nil {
			r.whenLine = n.Line
			if n.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
				r.whenLine++
			}
		}
		if r.Approval != nil {
			if r.Effect != action.RequireApproval {
				v.errorf(append(at, "approval"), "rule %s: approval settings need effect require_approval", r.ID)
			}
			switch r.Approval.OnTimeout {
			case "":
				r.Approval.OnTimeout = action.Deny
			case action.Deny, action.Allow:
			default:
				v.errorf(append(at, "approval", "on_timeout"), "rule %s: on_timeout must be deny or allow, not %q", r.ID, r.Approval.OnTimeout)
			}
			if r.Approval.Timeout < 0 {
				v.errorf(append(at, "approval", "timeout"), "rule %s: timeout must not be negative", r.ID)
			}
		}
		for j, o := range r.Obligations {
			if o.Type != "redact" {
				v.errorf(append(at, "obligations", j), "rule %s: unknown obligation %q (want redact)", r.ID, o.Type)
			}
			for _, f := range o.Fields {
				if !strings.HasPrefix(f, "args.") && f != "content" {
					v.errorf(append(at, "obligations", j), "rule %s: redact field %q must be content or start with args.", r.ID, f)
				}
			}
		}
	}
	for i := range d.RateLimits {
		rl := &d.RateLimits[i]
		at := keys("rate_limits", i)
		if rl.ID == "" {
			v.errorf(at, "rate limit %d: missing id", i+1)
		} else if ids[rl.ID] {
			v.errorf(append(at, "id"), "duplicate id %q (rules and rate limits share ids)", rl.ID)
		}
		ids[rl.ID] = true
		if rl.Limit <= 0 {
			v.errorf(append(at, "limit"), "rate limit %s: limit must be a positive number", rl.ID)
		}
		if rl.Per <= 0 {
			v.errorf(append(at, "per"), "rate limit %s: per must be a positive duration such as 1m or 1h", rl.ID)
		}
		if rl.Key == "" {
			rl.Key = "agent"
		} else if !slices.Contains(rateLimitKeys, rl.Key) {
			v.errorf(append(at, "key"), "rate limit %s: unknown key %q (want one of %s)", rl.ID, rl.Key, strings.Join(rateLimitKeys, ", "))
		}
		switch rl.Window {
		case "":
			rl.Window = "sliding"
		case "fixed", "sliding":
		default:
			v.errorf(append(at, "window"), "rate limit %s: window must be fixed or sliding, not %q", rl.ID, rl.Window)
		}
		v.match(append(at, "match"), &rl.Match)
	}
	for sev, acts := range d.Responses {
		if sev.Rank() <= 0 {
			v.errorf(keys("responses"), "responses: unknown severity %q (want low, medium, high or critical)", sev)
		}
		for _, a := range acts {
			if !slices.Contains(responseActions, a) {
				v.errorf(keys("responses", string(sev)), "responses %s: unknown response %q (want notify or isolate)", sev, a)
			}
		}
	}
}

func (v *validator) match(at []any, m *Match) {
	for j, pt := range m.Points {
		if !pt.Valid() {
			v.errorf(append(at, "points", j), "unknown point %q", pt)
		}
	}
	v.patterns(append(at, "tools"), m.Tools, true)
	for j, t := range m.Tools {
		if strings.Count(t, "/") > 1 {
			v.errorf(append(at, "tools", j), "tool pattern %q: use name or server/name", t)
		}
	}
	v.patterns(append(at, "agents"), m.Agents, true)
	v.patterns(append(at, "agent_types"), m.AgentTypes, false)
	v.patterns(append(at, "destinations"), m.Destinations, true)
	v.patterns(append(at, "models"), m.Models, true)
}

func (v *validator) patterns(at []any, vals []string, glob bool) {
	for j, s := range vals {
		if strings.TrimSpace(s) == "" {
			v.errorf(append(at, j), "empty pattern")
		} else if !glob && strings.ContainsAny(s, "*?") {
			v.errorf(append(at, j), "%q: globs are not allowed here", s)
		}
	}
}
