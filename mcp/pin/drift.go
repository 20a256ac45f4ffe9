package pin

import (
	"fmt"
	"slices"
	"strings"

	"github.com/agentgov/agentgov/action"
)

// Level grades a drift: how much a change of a tool's definition could
// change what an agent does with it.
type Level string

const (
	// Critical changes break callers or carry new instructions to the model:
	// a removed tool or parameter, a changed type, a new required
	// parameter, a description that gained instruction-like text.
	Critical Level = "critical"
	// Warning changes need a look: a new tool, a changed description.
	Warning Level = "warning"
	// Info changes are everything else (titles, annotations, new optional
	// parameters, output schemas).
	Info Level = "info"
)

func (l Level) rank() int {
	switch l {
	case Critical:
		return 2
	case Warning:
		return 1
	}
	return 0
}

// Change is one difference between a pinned tool and the live one.
type Change struct {
	Server string `json:"server"`
	Tool   string `json:"tool"`
	Level  Level  `json:"level"`
	What   string `json:"what"`
}

func (c Change) String() string {
	return fmt.Sprintf("%s %s/%s: %s", c.Level, c.Server, c.Tool, c.What)
}

// Worst returns the highest level among changes, "" when there are none.
func Worst(changes []Change) Level {
	var w Level
	for _, c := range changes {
		if w == "" || c.Level.rank() > w.rank() {
			w = c.Level
		}
	}
	return w
}

// Diff compares the live tools of server with its pins. det, when not nil,
// tells whether a changed description gained instruction-like text. The
// result is sorted by tool, then by decreasing level.
func Diff(server string, pinned map[string]ToolDef, live []ToolDef, det Detector) []Change {
	var out []Change
	seen := map[string]bool{}
	for _, t := range live {
		seen[t.Name] = true
		old, ok := pinned[t.Name]
		if !ok {
			out = append(out, Change{server, t.Name, Warning, "new tool, not pinned"})
			continue
		}
		out = append(out, diffTool(server, old, t, det)...)
	}
	for name := range pinned {
		if !seen[name] {
			out = append(out, Change{server, name, Critical, "tool removed"})
		}
	}
	slices.SortStableFunc(out, func(a, b Change) int {
		if c := strings.Compare(a.Tool, b.Tool); c != 0 {
			return c
		}
		return b.Level.rank() - a.Level.rank()
	})
	return out
}

// DiffTool compares one pinned definition with its live counterpart.
func diffTool(server string, old, cur ToolDef, det Detector) []Change {
	var out []Change
	add := func(l Level, format string, args ...any) {
		out = append(out, Change{server, cur.Name, l, fmt.Sprintf(format, args...)})
	}
	diffSchema(parseSchema(old.InputSchema), parseSchema(cur.InputSchema), "", func(l Level, what string) { add(l, "%s", what) })
	if old.Description != cur.Description {
		gained := gainedInstructions(old, cur, det)
		if len(gained) > 0 {
			add(Critical, "description gained instruction-like text (%s)", strings.Join(gained, "; "))
		} else {
			add(Warning, "description changed")
		}
	}
	if old.Title != cur.Title {
		add(Info, "title changed from %q to %q", old.Title, cur.Title)
	}
	if !jsonEqual(old.OutputSchema, cur.OutputSchema) {
		add(Info, "output schema changed")
	}
	if !jsonEqual(old.Annotations, cur.Annotations) {
		add(Info, "annotations changed from %s to %s", orNone(old.Annotations), orNone(cur.Annotations))
	}
	if len(out) == 0 {
		// Equal in every compared field, yet the fingerprints differ:
		// something inside a schema moved (a parameter description, an
		// enum, a default).
		if !jsonEqual(old.InputSchema, cur.InputSchema) {
			add(Info, "input schema changed")
		}
	}
	return out
}

func diffSchema(old, cur *schema, path string, report func(Level, string)) {
	if old == nil || cur == nil {
		return
	}
	param := func(name string) string {
		if path == "" {
			return name
		}
		return path + "." + name
	}
	names := make([]string, 0, len(old.Properties)+len(cur.Properties))
	for n := range old.Properties {
		names = append(names, n)
	}
	for n := range cur.Properties {
		if _, ok := old.Properties[n]; !ok {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	for _, n := range names {
		o, inOld := old.Properties[n]
		c, inCur := cur.Properties[n]
		switch {
		case inOld && !inCur:
			report(Critical, fmt.Sprintf("parameter %s removed", param(n)))
		case !inOld && inCur:
			if slices.Contains(cur.Required, n) {
				report(Critical, fmt.Sprintf("new required parameter %s (%s)", param(n), c.typeString()))
			} else {
				report(Info, fmt.Sprintf("new optional parameter %s (%s)", param(n), c.typeString()))
			}
		default:
			if o.typeString() != c.typeString() {
				report(Critical, fmt.Sprintf("parameter %s changed type from %s to %s", param(n), o.typeString(), c.typeString()))
			}
			diffSchema(o, c, param(n), report)
			if o.Items != nil || c.Items != nil {
				if o.Items.typeString() != c.Items.typeString() {
					report(Critical, fmt.Sprintf("items of parameter %s changed type from %s to %s", param(n), o.Items.typeString(), c.Items.typeString()))
				}
				diffSchema(o.Items, c.Items, param(n)+"[]", report)
			}
		}
	}
	for _, n := range cur.Required {
		if _, existed := old.Properties[n]; existed && !slices.Contains(old.Required, n) {
			report(Critical, fmt.Sprintf("parameter %s became required", param(n)))
		}
	}
	if path == "" && old.typeString() != cur.typeString() {
		report(Critical, fmt.Sprintf("input changed type from %s to %s", old.typeString(), cur.typeString()))
	}
}

// gainedInstructions lists the poisoning findings of the live description
// that the pinned one did not have.
func gainedInstructions(old, cur ToolDef, det Detector) []string {
	if det == nil {
		return nil
	}
	had := map[string]bool{}
	for _, f := range det.ToolPoisoning(old.Name, old.Description, nil) {
		had[f.Rule] = true
	}
	var out []string
	for _, f := range det.ToolPoisoning(cur.Name, cur.Description, nil) {
		if !had[f.Rule] && f.Severity.Rank() >= action.SeverityMedium.Rank() {
			out = append(out, f.String())
		}
	}
	return out
}

func orNone(b []byte) string {
	if len(b) == 0 {
		return "none"
	}
	return string(b)
}
