package report

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
)

// Risks are the OWASP Top 10 for Agentic Applications, by id.
var Risks = []struct{ ID, Title string }{
	{"ASI01", "Agent Goal Hijack"},
	{"ASI02", "Tool Misuse and Exploitation"},
	{"ASI03", "Identity and Privilege Abuse"},
	{"ASI04", "Agentic Supply Chain Vulnerabilities"},
	{"ASI05", "Unexpected Code Execution"},
	{"ASI06", "Memory and Context Poisoning"},
	{"ASI07", "Insecure Inter-Agent Communication"},
	{"ASI08", "Cascading Failures"},
	{"ASI09", "Human-Agent Trust Exploitation"},
	{"ASI10", "Rogue Agents"},
}

// Built-in control names, as reports and threat models use them.
const (
	ControlKillSwitch = "kill_switch"
	ControlApprovals  = "approvals"
	ControlProvenance = "provenance"
	ControlIdentity   = "identity"
	ControlDriftPins  = "drift_pins"
)

// Counts are a risk's decisions: each counted once per risk, under the
// risks its deciding rules map to.
type Counts struct {
	Deny            int `json:"deny"`
	RequireApproval int `json:"require_approval"`
	Flagged         int `json:"flagged"`
}

// Risk is one risk of the OWASP report.
type Risk struct {
	Title string `json:"title"`
	// Controls are the rules (by id) whose metadata.owasp names the risk,
	// and the built-in controls that address it, in force.
	Controls  []string `json:"controls"`
	Decisions Counts   `json:"decisions"`
	// Gap is true exactly when no control is in force.
	Gap bool `json:"gap"`
}

// OWASP is the OWASP Agentic Top 10 report: the ten risks, each a key of
// the JSON object beside the evidence.
type OWASP struct {
	Framework string
	Risks     map[string]*Risk
	Evidence
}

// MarshalJSON writes ASI01..ASI10 as keys of the top-level object, beside
// the evidence's keys.
func (o *OWASP) MarshalJSON() ([]byte, error) {
	ev, err := json.Marshal(o.Evidence)
	if err != nil {
		return nil, err
	}
	m := map[string]json.RawMessage{}
	if err := json.Unmarshal(ev, &m); err != nil {
		return nil, err
	}
	m["framework"], _ = json.Marshal(o.Framework)
	for id, r := range o.Risks {
		m[id], _ = json.Marshal(r)
	}
	return json.Marshal(m)
}

// builtinRisks are the risks each built-in control addresses.
var builtinRisks = map[string][]string{
	ControlKillSwitch: {"ASI10"},
	ControlApprovals:  {"ASI09"},
	ControlProvenance: {"ASI01", "ASI06"},
	ControlIdentity:   {"ASI03"},
	ControlDriftPins:  {"ASI04"},
}

// BuiltinInForce lists the built-in controls in force for a policy set and
// configuration, by name.
func BuiltinInForce(in Input) []string {
	var out []string
	if in.Builtin.KillSwitch {
		out = append(out, ControlKillSwitch)
	}
	if asksApproval(in.Set) {
		out = append(out, ControlApprovals)
	}
	if hasProvenanceRule(in.Set) {
		out = append(out, ControlProvenance)
	}
	if in.Builtin.Identity {
		out = append(out, ControlIdentity)
	}
	if in.Builtin.DriftPins {
		out = append(out, ControlDriftPins)
	}
	return out
}

// ComputeOWASP computes the OWASP Agentic Top 10 report.
func ComputeOWASP(ctx context.Context, in Input) (*OWASP, error) {
	s, err := collect(ctx, in)
	if err != nil {
		return nil, err
	}
	o := &OWASP{Framework: "owasp-agentic-top-10", Risks: map[string]*Risk{}, Evidence: s.ev}
	for _, r := range Risks {
		o.Risks[r.ID] = &Risk{Title: r.Title, Controls: []string{}}
	}
	rr := ruleRisks(in.Set)
	ids := make([]string, 0, len(rr))
	for id := range rr {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		for _, k := range rr[id] {
			o.Risks[k].Controls = append(o.Risks[k].Controls, id)
		}
	}
	for _, c := range BuiltinInForce(in) {
		for _, k := range builtinRisks[c] {
			o.Risks[k].Controls = append(o.Risks[k].Controls, c)
		}
	}
	for _, d := range s.decisions {
		var risks []string
		for _, rule := range d.Decision.Rules {
			for _, k := range rr[rule] {
				if !slices.Contains(risks, k) {
					risks = append(risks, k)
				}
			}
		}
		for _, k := range risks {
			c := &o.Risks[k].Decisions
			switch d.Decision.Effect {
			case "deny":
				c.Deny++
			case "require_approval":
				c.RequireApproval++
			}
			if d.Decision.Flagged {
				c.Flagged++
			}
		}
	}
	for _, r := range o.Risks {
		r.Gap = len(r.Controls) == 0
	}
	return o, nil
}

// Gaps lists the risks no control addresses.
func (o *OWASP) Gaps() []string {
	var out []string
	for _, r := range Risks {
		if o.Risks[r.ID].Gap {
			out = append(out, r.ID)
		}
	}
	return out
}

func (o *OWASP) String() string { return fmt.Sprintf("owasp report at size %d", o.Size) }

// Controls beyond those of the OWASP mapping that threat models may name.
const (
	ControlRateLimits = "rate_limits"
	ControlAuditLog   = "audit_log"
)

// BuiltinControls maps every built-in control name to whether it is in
// force for the policy set and configuration of in.
func BuiltinControls(in Input) map[string]bool {
	out := map[string]bool{
		ControlKillSwitch: false, ControlApprovals: false, ControlProvenance: false,
		ControlIdentity: false, ControlDriftPins: false,
		ControlRateLimits: len(in.Set.RateLimits()) > 0,
		// Every decision is recorded; a server cannot run without its log.
		ControlAuditLog: true,
	}
	for _, c := range BuiltinInForce(in) {
		out[c] = true
	}
	return out
}
