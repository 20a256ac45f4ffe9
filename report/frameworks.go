package report

import (
	"context"
	"encoding/json"
)

// Requirement is one requirement of a framework, with what the log shows
// of it and whether that is evidence of a control that operates.
type Requirement struct {
	ID       string         `json:"id"`
	Title    string         `json:"title"`
	Evidence map[string]any `json:"evidence"`
	Met      bool           `json:"met"`
	// Basis says what Met is judged on.
	Basis string `json:"basis"`
}

// Framework is a report as a list of requirements (EU AI Act Art. 12,
// SOC 2 CC7).
type Framework struct {
	Framework    string        `json:"framework"`
	Requirements []Requirement `json:"requirements"`
	Evidence
}

// MarshalJSON flattens the evidence into the top-level object.
func (f *Framework) MarshalJSON() ([]byte, error) {
	ev, err := json.Marshal(f.Evidence)
	if err != nil {
		return nil, err
	}
	m := map[string]json.RawMessage{}
	if err := json.Unmarshal(ev, &m); err != nil {
		return nil, err
	}
	m["framework"], _ = json.Marshal(f.Framework)
	m["requirements"], _ = json.Marshal(f.Requirements)
	return json.Marshal(m)
}

// ComputeEUAIAct reports on the record-keeping of EU AI Act Article 12:
// events recorded automatically over the system's lifetime, enabling the
// identification of risk situations and substantial modifications,
// post-market monitoring and the monitoring of operation.
func ComputeEUAIAct(ctx context.Context, in Input) (*Framework, error) {
	s, err := collect(ctx, in)
	if err != nil {
		return nil, err
	}
	t := s.ev.Totals
	f := &Framework{Framework: "eu-ai-act-article-12", Evidence: s.ev}
	f.Requirements = []Requirement{
		{ID: "Art. 12(1)", Title: "Automatic recording of events (logs) over the lifetime of the system",
			Evidence: map[string]any{"entries": t.Entries, "size": s.ev.Size, "first": t.First, "last": t.Last, "signed_checkpoint": true, "log_verified": true},
			Met:      s.ev.Size > 0, Basis: "every decision, outcome, approval, kill switch and policy change is an entry of a tamper-evident log, verified up to a signed checkpoint"},
		{ID: "Art. 12(2)(a)", Title: "Identifying situations that may result in a risk, or in a substantial modification",
			Evidence: map[string]any{"deny": t.Deny, "require_approval": t.RequireApproval, "flagged": t.Flagged, "by_severity": t.BySeverity,
				"policy_loads": t.PolicyLoads, "policy_sets": s.ev.Policies.InLog, "shadow_differences": t.ShadowDiffs, "canary": t.Canary},
			Met: t.Decisions > 0, Basis: "decisions are recorded with their rules, severity and the policy digest that decided them; policy changes with their digests"},
		{ID: "Art. 12(2)(b)", Title: "Facilitating post-market monitoring (Art. 72)",
			Evidence: map[string]any{"decisions": t.Decisions, "outcomes": t.Outcomes, "first": t.First, "last": t.Last},
			Met:      t.Decisions > 0, Basis: "the decisions and outcomes of the period are in the log, in order, with their times"},
		{ID: "Art. 12(2)(c)", Title: "Monitoring the operation of the system (Art. 26(5))",
			Evidence: map[string]any{"kill_switch": in.Builtin.KillSwitch, "kills": t.Kills, "approvals": t.Approvals, "policy_loads": t.PolicyLoads,
				"identity": in.Builtin.Identity, "credentials_refused": t.Entries["credential_refused"]},
			Met: t.Decisions > 0 && in.Builtin.KillSwitch, Basis: "operators see every decision and can stop an agent, a session or the system (kill switch), each step recorded"},
	}
	return f, nil
}

// ComputeSOC2 reports on SOC 2 common criteria CC7 (system operations).
func ComputeSOC2(ctx context.Context, in Input) (*Framework, error) {
	s, err := collect(ctx, in)
	if err != nil {
		return nil, err
	}
	t := s.ev.Totals
	f := &Framework{Framework: "soc2-cc7", Evidence: s.ev}
	f.Requirements = []Requirement{
		{ID: "CC7.1", Title: "Detection of configuration changes and vulnerabilities",
			Evidence: map[string]any{"policy_loads": t.PolicyLoads, "policy_sets": s.ev.Policies.InLog, "bundles": s.ev.Policies.Bundles, "drift_pins": in.Builtin.DriftPins},
			Met:      t.PolicyLoads["start"]+t.PolicyLoads["reload"] > 0, Basis: "every policy load and refused load is recorded with its digest"},
		{ID: "CC7.2", Title: "Monitoring of system components for anomalies",
			Evidence: map[string]any{"decisions": t.Decisions, "deny": t.Deny, "flagged": t.Flagged, "by_severity": t.BySeverity, "shadow_differences": t.ShadowDiffs,
				"identity": in.Builtin.Identity, "credentials_refused": t.Entries["credential_refused"]},
			Met: t.Decisions > 0, Basis: "every agent action is decided and recorded before it happens"},
		{ID: "CC7.3", Title: "Evaluation of security events",
			Evidence: map[string]any{"approvals_in_force": asksApproval(in.Set), "approvals": t.Approvals, "require_approval": t.RequireApproval},
			Met:      asksApproval(in.Set), Basis: "rules route consequential actions to a person, whose answer is recorded"},
		{ID: "CC7.4", Title: "Response to security incidents",
			Evidence: map[string]any{"kill_switch": in.Builtin.KillSwitch, "kills": t.Kills, "canary": t.Canary},
			Met:      in.Builtin.KillSwitch, Basis: "kill switches stop agents, sessions or the system at once; canaries roll back by themselves"},
		{ID: "CC7.5", Title: "Recovery from incidents",
			Evidence: map[string]any{"kill_releases": t.Kills["release"], "canary_rollbacks": t.Canary["rollback"]},
			Met:      in.Builtin.KillSwitch, Basis: "a kill switch is released, and a canary rolled back to the live set, as recorded steps"},
	}
	return f, nil
}
