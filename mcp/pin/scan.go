package pin

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/jcs"
)

// Finding is what a content detector reports about a text. It carries the
// fields of detect.Finding that the gateway uses, so that this package
// depends on the detectors only through the Detector interface.
type Finding struct {
	Kind     string          `json:"kind"`
	Rule     string          `json:"rule"`
	Severity action.Severity `json:"severity"`
	Detail   string          `json:"detail,omitempty"`
	Start    int             `json:"start,omitempty"`
	End      int             `json:"end,omitempty"`
}

func (f Finding) String() string {
	s := f.Rule
	if f.Severity != "" {
		s += " [" + string(f.Severity) + "]"
	}
	if f.Detail != "" {
		s += ": " + f.Detail
	}
	return s
}

// Detector finds hidden instructions in tool metadata and sensitive data
// in tool results. It is implemented over the detect package; the gateway
// consumes only this.
type Detector interface {
	// ToolPoisoning inspects one tool's description and input schema for
	// instructions aimed at the model.
	ToolPoisoning(name, description string, inputSchema any) []Finding
	// Shadowing inspects tool names across servers for a tool that
	// impersonates another server's.
	Shadowing(servers map[string][]string) []Finding
	// Sensitive finds secrets and personal data in a tool result.
	Sensitive(text string) []Finding
	// Redact masks what findings of Sensitive point at.
	Redact(text string, findings []Finding) string
}

// ToolFinding is a finding about one tool of one server.
type ToolFinding struct {
	Server string `json:"server"`
	Tool   string `json:"tool"`
	Finding
}

func (f ToolFinding) String() string {
	return fmt.Sprintf("%s/%s: %s", f.Server, f.Tool, f.Finding.String())
}

// Scan looks for poisoning in the tools of server and for tools that shadow
// a tool of another server. others maps every other known server to its
// tool names. Findings are sorted by tool.
func Scan(server string, tools []ToolDef, others map[string][]string, det Detector) []ToolFinding {
	if det == nil {
		return nil
	}
	var out []ToolFinding
	for _, t := range tools {
		for _, f := range det.ToolPoisoning(t.Name, t.Description, schemaValue(t.InputSchema)) {
			out = append(out, ToolFinding{server, t.Name, f})
		}
	}
	if len(others) > 0 {
		// One tool at a time against every other server, so that a finding
		// names the tool of this server it concerns, whatever the detector
		// puts in its detail.
		for _, t := range tools {
			m := make(map[string][]string, len(others)+1)
			for s, names := range others {
				if s != server {
					m[s] = names
				}
			}
			if len(m) == 0 {
				break
			}
			m[server] = []string{t.Name}
			for _, f := range det.Shadowing(m) {
				out = append(out, ToolFinding{server, t.Name, f})
			}
		}
	}
	slices.SortStableFunc(out, func(a, b ToolFinding) int { return strings.Compare(a.Tool, b.Tool) })
	return out
}

// Blocking reports whether a finding is serious enough to quarantine a tool
// and fail `agentgov mcp scan`: high or critical.
func (f Finding) Blocking() bool { return f.Severity.Rank() >= action.SeverityHigh.Rank() }

func jsonEqual(a, b json.RawMessage) bool {
	if len(a) == 0 || len(b) == 0 {
		return len(a) == len(b)
	}
	ca, errA := jcs.Transform(a)
	cb, errB := jcs.Transform(b)
	if errA != nil || errB != nil {
		return bytes.Equal(a, b)
	}
	return bytes.Equal(ca, cb)
}
