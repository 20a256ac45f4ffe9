// Package policy turns policy documents (YAML, DESIGN §3) into an immutable,
// indexed Set and evaluates actions against it. The line runs one way:
// Parse/Load decode and validate documents, Compile type-checks their CEL
// conditions and builds the rule index, Evaluate decides. Nothing here keeps
// state between evaluations; rate limits, budgets and the rest of the pipeline
// live in package govern.
package policy

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/agentgov/agentgov/action"
)

// Version is the only document version this package reads.
const Version = "agentgov/v1"

// Document is one policy file as written.
type Document struct {
	Version     string                       `yaml:"version" json:"version"`
	Name        string                       `yaml:"name" json:"name"`
	Description string                       `yaml:"description,omitempty" json:"description,omitempty"`
	Scope       Scope                        `yaml:"scope,omitempty" json:"scope,omitzero"`
	Default     action.Effect                `yaml:"default,omitempty" json:"default,omitempty"`
	Rules       []Rule                       `yaml:"rules,omitempty" json:"rules,omitempty"`
	RateLimits  []RateLimit                  `yaml:"rate_limits,omitempty" json:"rate_limits,omitempty"`
	Responses   map[action.Severity][]string `yaml:"responses,omitempty" json:"responses,omitempty"`
	Review      *Review                      `yaml:"review,omitempty" json:"review,omitempty"`
	Metadata    map[string]string            `yaml:"metadata,omitempty" json:"metadata,omitempty"`
	// Provenance declares the tools whose results are trusted (DESIGN §8).
	Provenance *ProvenanceSpec `yaml:"provenance,omitempty" json:"provenance,omitempty"`

	// File is where the document was read from, for error messages.
	File string `yaml:"-" json:"-"`

	nameLine int // line of name in File
}

// Scope says which actions a document governs. Every listed field must
// match; an omitted field matches everything.
type Scope struct {
	AgentTypes   []string `yaml:"agent_types,omitempty" json:"agent_types,omitempty"`
	Environments []string `yaml:"environments,omitempty" json:"environments,omitempty"`
	Agents       []string `yaml:"agents,omitempty" json:"agents,omitempty"`
	Users        []string `yaml:"users,omitempty" json:"users,omitempty"`
	Teams        []string `yaml:"teams,omitempty" json:"teams,omitempty"`
	Orgs         []string `yaml:"orgs,omitempty" json:"orgs,omitempty"`
}

// Match is the cheap, indexed part of a rule. Every listed field must match.
type Match struct {
	Points       []action.Point `yaml:"points,omitempty" json:"points,omitempty"`
	Tools        []string       `yaml:"tools,omitempty" json:"tools,omitempty"`
	Agents       []string       `yaml:"agents,omitempty" json:"agents,omitempty"`
	AgentTypes   []string       `yaml:"agent_types,omitempty" json:"agent_types,omitempty"`
	Destinations []string       `yaml:"destinations,omitempty" json:"destinations,omitempty"`
	Models       []string       `yaml:"models,omitempty" json:"models,omitempty"`
}

// Rule is one rule of a document.
type Rule struct {
	ID          string              `yaml:"id" json:"id"`
	Description string              `yaml:"description,omitempty" json:"description,omitempty"`
	Match       Match               `yaml:"match,omitempty" json:"match,omitzero"`
	When        string              `yaml:"when,omitempty" json:"when,omitempty"`
	Effect      action.Effect       `yaml:"effect" json:"effect"`
	Severity    action.Severity     `yaml:"severity,omitempty" json:"severity,omitempty"`
	Reason      string              `yaml:"reason,omitempty" json:"reason,omitempty"`
	Approval    *ApprovalSpec       `yaml:"approval,omitempty" json:"approval,omitempty"`
	Obligations []action.Obligation `yaml:"obligations,omitempty" json:"obligations,omitempty"`
	// Metadata carries classification such as the OWASP Agentic Top 10 id
	// (owasp: ASI02); it is reported, never evaluated.
	Metadata map[string]string `yaml:"metadata,omitempty" json:"metadata,omitempty"`

	whenLine int // line of the first line of When in its file
}

// ApprovalSpec says who may approve a require_approval rule and what happens
// when nobody answers in time.
type ApprovalSpec struct {
	Approvers []string      `yaml:"approvers,omitempty" json:"approvers,omitempty"`
	Timeout   Duration      `yaml:"timeout,omitempty" json:"timeout,omitempty"`
	OnTimeout action.Effect `yaml:"on_timeout,omitempty" json:"on_timeout,omitempty"`
}

// RateLimit caps how often matching actions may happen per key.
type RateLimit struct {
	ID     string   `yaml:"id" json:"id"`
	Match  Match    `yaml:"match,omitempty" json:"match,omitzero"`
	Limit  int64    `yaml:"limit" json:"limit"`
	Per    Duration `yaml:"per" json:"per"`
	Key    string   `yaml:"key,omitempty" json:"key,omitempty"`
	Window string   `yaml:"window,omitempty" json:"window,omitempty"` // fixed | sliding (default)
}

// Review is kept as metadata and shown in reports.
type Review struct {
	Frequency string   `yaml:"frequency,omitempty" json:"frequency,omitempty"`
	Approvers []string `yaml:"approvers,omitempty" json:"approvers,omitempty"`
	// Reviewed is the date (YYYY-MM-DD) of the last review; with
	// Frequency it says when the next is due (review.go).
	Reviewed string `yaml:"reviewed,omitempty" json:"reviewed,omitempty"`
}

// Rate-limit keys, DESIGN §3.
var rateLimitKeys = []string{"agent", "session", "principal.user", "principal.team", "principal.org", "tool"}

// Automatic responses a document may ask for on a deny of some severity.
var responseActions = []string{"notify", "isolate"}

// Duration is a time.Duration written as "30m", "1h" or "7d" in YAML.
type Duration time.Duration

// UnmarshalText parses a Go duration, with "d" for days allowed as well.
func (d *Duration) UnmarshalText(b []byte) error {
	s := string(b)
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 {
			return fmt.Errorf("invalid duration %q", s)
		}
		*d = Duration(time.Duration(n) * 24 * time.Hour)
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("invalid duration %q (want e.g. 30s, 15m, 1h, 7d)", s)
	}
	*d = Duration(v)
	return nil
}

// MarshalText writes the duration in Go's notation.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// clone returns a deep copy of d. A compiled Set keeps its own copies, so
// that a caller editing a Document afterwards changes nothing it decides.
func (d *Document) clone() *Document {
	c := *d
	c.Scope = Scope{
		AgentTypes: slices.Clone(d.Scope.AgentTypes), Environments: slices.Clone(d.Scope.Environments),
		Agents: slices.Clone(d.Scope.Agents), Users: slices.Clone(d.Scope.Users),
		Teams: slices.Clone(d.Scope.Teams), Orgs: slices.Clone(d.Scope.Orgs),
	}
	c.Rules = slices.Clone(d.Rules)
	for i := range c.Rules {
		r := &c.Rules[i]
		r.Match = r.Match.clone()
		r.Approval = r.Approval.clone()
		r.Obligations = slices.Clone(r.Obligations)
		for j := range r.Obligations {
			r.Obligations[j].Fields = slices.Clone(r.Obligations[j].Fields)
		}
		r.Metadata = maps.Clone(r.Metadata)
	}
	c.RateLimits = slices.Clone(d.RateLimits)
	for i := range c.RateLimits {
		c.RateLimits[i].Match = c.RateLimits[i].Match.clone()
	}
	if d.Responses != nil {
		c.Responses = make(map[action.Severity][]string, len(d.Responses))
		for k, v := range d.Responses {
			c.Responses[k] = slices.Clone(v)
		}
	}
	if d.Review != nil {
		r := *d.Review
		r.Approvers = slices.Clone(r.Approvers)
		c.Review = &r
	}
	c.Metadata = maps.Clone(d.Metadata)
	c.Provenance = d.Provenance.clone()
	return &c
}

func (m Match) clone() Match {
	return Match{
		Points: slices.Clone(m.Points), Tools: slices.Clone(m.Tools), Agents: slices.Clone(m.Agents),
		AgentTypes: slices.Clone(m.AgentTypes), Destinations: slices.Clone(m.Destinations), Models: slices.Clone(m.Models),
	}
}

func (a *ApprovalSpec) clone() *ApprovalSpec {
	if a == nil {
		return nil
	}
	c := *a
	c.Approvers = slices.Clone(a.Approvers)
	return &c
}
