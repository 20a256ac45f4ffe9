// Package report computes compliance evidence from the audit log (DESIGN
// §14): the OWASP Top 10 for Agentic Applications (ASI01..ASI10), the
// record-keeping of EU AI Act Article 12, and SOC 2 system monitoring
// (CC7). A report is computed over the entries a signed checkpoint covers,
// and carries that checkpoint, so that anyone with the log's public key can
// check that the numbers are about the log as it was signed. It also
// names the controls in force: the policy set's rules by their risks, and
// the built-in controls the configuration enables.
package report

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/audit"
	"github.com/agentgov/agentgov/evidence"
	"github.com/agentgov/agentgov/policy"
)

// Builtin are the controls agentgov has beyond policy rules, as the
// configuration has them.
type Builtin struct {
	// KillSwitch: the scoped kill switch (always there in a server).
	KillSwitch bool
	// DriftPins: MCP upstreams are configured, behind tool pins.
	DriftPins bool
	// Identity: credentials beyond static tokens are configured.
	Identity bool
}

// Log is one audit log a report counts: a data directory's, or one
// replica's in a shared store.
type Log struct {
	// Replica names the log in a shared store; empty for a data directory.
	Replica  string
	Store    audit.Store
	Verifier note.Verifier
	// PublicKey is the verifier key's text, printed in the report.
	PublicKey string
}

// Input is what a report is computed from.
type Input struct {
	// Logs are counted together; each at its own latest checkpoint.
	Logs []Log
	// Set is the policy set whose rules are the controls; Source names it.
	Set     *policy.Set
	Source  string
	Builtin Builtin
	// Since limits the decisions counted (zero: all).
	Since time.Time
	Now   time.Time
}

// Evidence is what every report carries about the log it was computed from.
type Evidence struct {
	GeneratedAt time.Time  `json:"generated_at"`
	Since       *time.Time `json:"since,omitempty"`
	// Checkpoint is the signed checkpoint (note text) the report was
	// computed at: only entries below its size are counted. With several
	// replicas' logs, these are the first one's, and Replicas has each.
	Checkpoint string       `json:"checkpoint"`
	Size       uint64       `json:"size"`
	PublicKey  string       `json:"public_key"`
	Replicas   []LogSummary `json:"replicas,omitempty"`
	// Policies are the digests of the policy sets that decided the
	// counted decisions, and the set whose rules are the controls.
	Policies PolicyEvidence `json:"policies"`
	Totals   Totals         `json:"totals"`
	// ReviewOverdue are the documents of the set whose review is due.
	ReviewOverdue []Review `json:"review_overdue"`
}

// PolicyEvidence names policy sets by digest.
type PolicyEvidence struct {
	// Controls is the set the controls are read from.
	Controls       string   `json:"controls"`
	ControlsBundle string   `json:"controls_bundle,omitempty"`
	Source         string   `json:"source"`
	InLog          []string `json:"in_log"`
	Bundles        []string `json:"bundles,omitempty"`
	// Matches says that the control set is the one the log last loaded.
	Matches bool `json:"matches_log"`
}

// Totals count what the log holds in the period.
type Totals struct {
	Decisions       int            `json:"decisions"`
	Allow           int            `json:"allow"`
	Deny            int            `json:"deny"`
	RequireApproval int            `json:"require_approval"`
	Flagged         int            `json:"flagged"`
	BySeverity      map[string]int `json:"by_severity"`
	Entries         map[string]int `json:"entries"`
	First           *time.Time     `json:"first,omitempty"`
	Last            *time.Time     `json:"last,omitempty"`
	Outcomes        map[string]int `json:"outcomes"`
	Approvals       map[string]int `json:"approvals"`
	Kills           map[string]int `json:"kills"`
	PolicyLoads     map[string]int `json:"policy_loads"`
	ShadowDiffs     int            `json:"shadow_differences"`
	Canary          map[string]int `json:"canary"`
}

// LogSummary is one replica's log as a report counted it.
type LogSummary struct {
	Replica    string `json:"replica"`
	Checkpoint string `json:"checkpoint"`
	Size       uint64 `json:"size"`
	PublicKey  string `json:"public_key"`
}

// scan is one pass over the log: the totals, and the decisions counted
// per rule.
type scan struct {
	ev            Evidence
	decisions     []evidence.Decision
	seen, bundles map[string]bool
}

// ErrNoCheckpoint refuses a report over a log no checkpoint covers yet.
var ErrNoCheckpoint = errors.New("the log has no signed checkpoint yet: a report must be computed at one (a running server signs one within audit.checkpoint_interval)")

func collect(ctx context.Context, in Input) (*scan, error) {
	if len(in.Logs) == 0 {
		return nil, errors.New("report: no audit log to read")
	}
	s := &scan{ev: Evidence{GeneratedAt: in.Now.UTC(), ReviewOverdue: Overdue(in.Set, in.Now)}}
	if !in.Since.IsZero() {
		t := in.Since.UTC()
		s.ev.Since = &t
	}
	s.ev.Policies = PolicyEvidence{Controls: in.Set.Digest(), ControlsBundle: in.Set.Bundle(), Source: in.Source, InLog: []string{}}
	t := &s.ev.Totals
	t.BySeverity, t.Entries, t.Outcomes, t.Approvals, t.Kills, t.PolicyLoads, t.Canary =
		map[string]int{}, map[string]int{}, map[string]int{}, map[string]int{}, map[string]int{}, map[string]int{}, map[string]int{}
	s.seen, s.bundles = map[string]bool{}, map[string]bool{}
	matches := true
	for i, l := range in.Logs {
		cp, last, err := s.log(ctx, in, l)
		if err != nil {
			if l.Replica != "" {
				return nil, fmt.Errorf("replica %s: %w", l.Replica, err)
			}
			return nil, err
		}
		if i == 0 {
			s.ev.Checkpoint, s.ev.Size, s.ev.PublicKey = string(cp.Note), cp.Size, l.PublicKey
		}
		if len(in.Logs) > 1 {
			s.ev.Replicas = append(s.ev.Replicas, LogSummary{Replica: l.Replica, Checkpoint: string(cp.Note), Size: cp.Size, PublicKey: l.PublicKey})
		}
		matches = matches && last == in.Set.Digest()
	}
	s.ev.Policies.Matches = matches
	return s, nil
}

// log verifies one log, finds the checkpoint to count at, and counts the
// entries it covers. It returns the digest of the last policy set loaded.
func (s *scan) log(ctx context.Context, in Input, l Log) (audit.Checkpoint, string, error) {
	rep, err := audit.Verify(ctx, l.Store, l.Verifier, audit.VerifyOptions{})
	if err != nil {
		return audit.Checkpoint{}, "", err
	}
	cp, head, ok, err := evidence.LatestHead(ctx, l.Store, l.Verifier)
	if err != nil {
		return cp, "", fmt.Errorf("report: %w", err)
	}
	if !ok {
		return cp, "", ErrNoCheckpoint
	}
	if !rep.OK() && uint64(rep.FirstBad) < cp.Size {
		return cp, "", fmt.Errorf("report: the log does not verify at index %d (%s): a report over it would prove nothing", rep.FirstBad, rep.Reason)
	}
	// The entries are counted in the pass that hashes them against the
	// checkpoint's root, not trusted from the verification above: the
	// store may change between two reads, and the numbers must be about
	// exactly the entries the printed checkpoint signs.
	t := &s.ev.Totals
	lastLoad := ""
	err = evidence.WalkSigned(ctx, l.Store, head, func(e audit.Entry) error {
		var rec map[string]any
		if e.Kind == "policy_load" {
			// A refused load changed nothing; a shadow set's load changed
			// what is compared, not what decides.
			if err := json.Unmarshal(e.Record, &rec); err == nil && rec["event"] != "refused" && rec["event"] != "shadow" {
				lastLoad, _ = rec["digest"].(string)
			}
		}
		if !in.Since.IsZero() && e.Time.Before(in.Since) {
			return nil
		}
		t.Entries[e.Kind]++
		if et := e.Time.UTC(); t.First == nil || et.Before(*t.First) {
			t.First = &et
		}
		if et := e.Time.UTC(); t.Last == nil || et.After(*t.Last) {
			t.Last = &et
		}
		if e.Kind != "decision" {
			if rec == nil {
				if err := json.Unmarshal(e.Record, &rec); err != nil {
					return fmt.Errorf("audit entry %d: %w", e.Index, err)
				}
			}
			other(t, e.Kind, rec)
			return nil
		}
		d, err := evidence.ParseDecision(e)
		if err != nil {
			return err
		}
		s.decisions = append(s.decisions, d)
		t.Decisions++
		switch d.Decision.Effect {
		case action.Allow:
			t.Allow++
		case action.Deny:
			t.Deny++
		case action.RequireApproval:
			t.RequireApproval++
		}
		if d.Decision.Flagged {
			t.Flagged++
		}
		if d.Decision.Severity != "" {
			t.BySeverity[string(d.Decision.Severity)]++
		}
		if d.Policy != "" && !s.seen[d.Policy] {
			s.seen[d.Policy] = true
			s.ev.Policies.InLog = append(s.ev.Policies.InLog, d.Policy)
		}
		if d.Bundle != "" && !s.bundles[d.Bundle] {
			s.bundles[d.Bundle] = true
			s.ev.Policies.Bundles = append(s.ev.Policies.Bundles, d.Bundle)
		}
		return nil
	})
	if err != nil {
		return cp, "", fmt.Errorf("report: %w", err)
	}
	return cp, lastLoad, nil
}

// other counts the entries that are not decisions by what they record.
func other(t *Totals, kind string, rec map[string]any) {
	ev, _ := rec["event"].(string)
	switch kind {
	case "outcome":
		if o, ok := rec["outcome"].(map[string]any); ok {
			st, _ := o["status"].(string)
			t.Outcomes[st]++
		}
	case "approval":
		t.Approvals[ev]++
	case "kill":
		t.Kills[ev]++
	case "policy_load":
		if ev == "" {
			ev = "reload"
		}
		t.PolicyLoads[ev]++
	case "shadow.diff":
		t.ShadowDiffs++
	case "canary":
		t.Canary[ev]++
	}
}

var riskIDs = regexp.MustCompile(`ASI(0[1-9]|10)`)

// risksOf reads a rule's metadata.owasp: one or more risk ids.
func risksOf(r policy.Rule) []string {
	return riskIDs.FindAllString(r.Metadata["owasp"], -1)
}

// ruleRisks maps each rule id of the set to its risks.
func ruleRisks(set *policy.Set) map[string][]string {
	out := map[string][]string{}
	for _, d := range set.Documents() {
		for _, r := range d.Rules {
			for _, k := range risksOf(r) {
				if !slices.Contains(out[r.ID], k) {
					out[r.ID] = append(out[r.ID], k)
				}
			}
		}
	}
	for _, v := range out {
		sort.Strings(v)
	}
	return out
}

// hasProvenanceRule says whether some rule asks where a value came from.
func hasProvenanceRule(set *policy.Set) bool {
	for _, d := range set.Documents() {
		for _, r := range d.Rules {
			if strings.Contains(r.When, "untrusted(") || strings.Contains(r.When, "sources(") || strings.Contains(r.When, "session.tainted") {
				return true
			}
		}
	}
	return false
}

// asksApproval says whether some rule can require a human's approval.
func asksApproval(set *policy.Set) bool {
	for _, d := range set.Documents() {
		if d.Default == action.RequireApproval {
			return true
		}
		for _, r := range d.Rules {
			if r.Effect == action.RequireApproval {
				return true
			}
		}
	}
	return false
}
