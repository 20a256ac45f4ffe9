// Package threatmodel reads a threat model written as data (assets,
// components, threats with their STRIDE category, likelihood, impact and
// mitigations) and weighs it against the controls really in force: a
// mitigation lowers a threat's residual risk only when its control (a
// built-in control or a rule of the policy set) is enforced. Threats that
// no enforced control covers are flagged.
package threatmodel

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Model is a threat model file.
type Model struct {
	Name       string      `yaml:"name" json:"name"`
	Assets     []Asset     `yaml:"assets" json:"assets"`
	Components []Component `yaml:"components" json:"components"`
	Threats    []Threat    `yaml:"threats" json:"threats"`
}

// Asset is something worth protecting.
type Asset struct {
	Name        string `yaml:"name" json:"name"`
	Sensitivity string `yaml:"sensitivity" json:"sensitivity"`
	Location    string `yaml:"location" json:"location"`
}

// Component is a part of the system a threat targets.
type Component struct {
	Name       string   `yaml:"name" json:"name"`
	Type       string   `yaml:"type" json:"type"`
	Interfaces []string `yaml:"interfaces" json:"interfaces"`
}

// Threat is one threat.
type Threat struct {
	Name        string       `yaml:"name" json:"name"`
	Description string       `yaml:"description,omitempty" json:"description,omitempty"`
	Category    string       `yaml:"category" json:"category"`
	Target      string       `yaml:"target" json:"target"`
	Likelihood  string       `yaml:"likelihood" json:"likelihood"`
	Impact      string       `yaml:"impact" json:"impact"`
	Mitigations []Mitigation `yaml:"mitigations" json:"mitigations"`
}

// Mitigation names a control and how well it mitigates the threat.
type Mitigation struct {
	Control       string `yaml:"control" json:"control"`
	Effectiveness string `yaml:"effectiveness" json:"effectiveness"`
}

// Categories are the STRIDE words.
var Categories = []string{"spoofing", "tampering", "repudiation", "information_disclosure", "denial_of_service", "elevation_of_privilege"}

// levels score low, medium and high.
var levels = map[string]int{"low": 1, "medium": 2, "high": 3}

// reduction is the share of risk a mitigation in force removes, by its
// effectiveness.
var reduction = map[string]float64{"low": 0.2, "medium": 0.5, "high": 0.75}

// Load reads and validates a threat model file.
func Load(path string) (*Model, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("threat model: %w", err)
	}
	return Parse(path, data)
}

// Parse decodes a threat model strictly: an unknown key is an error.
func Parse(file string, data []byte) (*Model, error) {
	var m Model
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&m); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: %s", file, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	if err := m.validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return &m, nil
}

func (m *Model) validate() error {
	if len(m.Threats) == 0 {
		return errors.New("threats: none listed")
	}
	components := map[string]bool{}
	for i, c := range m.Components {
		if c.Name == "" {
			return fmt.Errorf("components[%d].name: missing", i)
		}
		components[c.Name] = true
	}
	names := map[string]bool{}
	for i, t := range m.Threats {
		at := fmt.Sprintf("threats[%d]", i)
		if t.Name == "" {
			return fmt.Errorf("%s.name: missing", at)
		}
		if names[t.Name] {
			return fmt.Errorf("%s.name: %q is listed twice", at, t.Name)
		}
		names[t.Name] = true
		at = fmt.Sprintf("threats[%d] (%s)", i, t.Name)
		if !slices.Contains(Categories, t.Category) {
			return fmt.Errorf("%s.category: unknown %q (want a STRIDE word: %s)", at, t.Category, strings.Join(Categories, ", "))
		}
		if _, ok := levels[t.Likelihood]; !ok {
			return fmt.Errorf("%s.likelihood: unknown %q (want low, medium or high)", at, t.Likelihood)
		}
		if _, ok := levels[t.Impact]; !ok {
			return fmt.Errorf("%s.impact: unknown %q (want low, medium or high)", at, t.Impact)
		}
		if t.Target != "" && len(components) > 0 && !components[t.Target] {
			return fmt.Errorf("%s.target: %q is not a component of the model", at, t.Target)
		}
		for j, mi := range t.Mitigations {
			if mi.Control == "" {
				return fmt.Errorf("%s.mitigations[%d].control: missing", at, j)
			}
			if _, ok := reduction[mi.Effectiveness]; !ok {
				return fmt.Errorf("%s.mitigations[%d].effectiveness: unknown %q (want low, medium or high)", at, j, mi.Effectiveness)
			}
		}
	}
	return nil
}

// Controls says which controls exist and which are in force: the built-in
// controls by name, and the rules of the policy set by id (a rule in the
// set is enforced).
type Controls struct {
	// Builtin maps every built-in control name to whether it is in force.
	Builtin map[string]bool
	// Rules are the rule ids of the policy set.
	Rules map[string]bool
}

func (c Controls) known(name string) bool {
	_, b := c.Builtin[name]
	return b || c.Rules[name]
}

func (c Controls) inForce(name string) bool { return c.Builtin[name] || c.Rules[name] }

// Assessed is a threat with its risks.
type Assessed struct {
	Threat
	// Inherent is likelihood × impact, 1 to 9.
	Inherent int `json:"inherent"`
	// Residual is the inherent risk lowered by the mitigations in force.
	Residual      float64  `json:"residual"`
	ResidualLevel string   `json:"residual_level"`
	InForce       []string `json:"in_force"`
	NotInForce    []string `json:"not_in_force"`
	// Flagged: no mitigation's control is in force.
	Flagged bool `json:"flagged"`
}

// Stride is one row of the STRIDE table.
type Stride struct {
	Category    string  `json:"category"`
	Threats     int     `json:"threats"`
	Flagged     int     `json:"flagged"`
	MaxResidual float64 `json:"max_residual"`
}

// Report is the assessment of a model.
type Report struct {
	Name    string     `json:"name"`
	Threats []Assessed `json:"threats"`
	Stride  []Stride   `json:"stride"`
	Flagged int        `json:"flagged"`
}

// Assess weighs every threat against the controls. A mitigation naming a
// control that exists nowhere (neither built in nor a rule of the set) is
// refused, naming the field: a typo must not read as a gap, nor as cover.
func Assess(m *Model, c Controls) (*Report, error) {
	r := &Report{Name: m.Name, Threats: []Assessed{}}
	for i, t := range m.Threats {
		a := Assessed{Threat: t, Inherent: levels[t.Likelihood] * levels[t.Impact], InForce: []string{}, NotInForce: []string{}}
		res := float64(a.Inherent)
		for j, mi := range t.Mitigations {
			if !c.known(mi.Control) {
				return nil, fmt.Errorf("threats[%d] (%s).mitigations[%d].control: unknown control %q (neither a built-in control nor a rule of the policy set)", i, t.Name, j, mi.Control)
			}
			if !c.inForce(mi.Control) {
				a.NotInForce = append(a.NotInForce, mi.Control)
				continue
			}
			a.InForce = append(a.InForce, mi.Control)
			res *= 1 - reduction[mi.Effectiveness]
		}
		a.Residual = float64(int(res*100+0.5)) / 100
		a.ResidualLevel = level(a.Residual)
		a.Flagged = len(a.InForce) == 0
		if a.Flagged {
			r.Flagged++
		}
		r.Threats = append(r.Threats, a)
	}
	sort.SliceStable(r.Threats, func(i, j int) bool {
		x, y := r.Threats[i], r.Threats[j]
		if x.Residual != y.Residual {
			return x.Residual > y.Residual
		}
		return x.Inherent > y.Inherent
	})
	for _, cat := range Categories {
		s := Stride{Category: cat}
		for _, a := range r.Threats {
			if a.Category != cat {
				continue
			}
			s.Threats++
			if a.Flagged {
				s.Flagged++
			}
			s.MaxResidual = max(s.MaxResidual, a.Residual)
		}
		r.Stride = append(r.Stride, s)
	}
	return r, nil
}

// level names a residual score: high from 6, medium from 3, else low.
func level(v float64) string {
	switch {
	case v >= 6:
		return "high"
	case v >= 3:
		return "medium"
	}
	return "low"
}

// WriteMarkdown writes the report as Markdown: the ranked threats, then
// the STRIDE table.
func (r *Report) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# Threat model: %s\n\n", r.Name)
	fmt.Fprintf(&b, "%d of %d threats flagged: no mitigation's control is in force.\n\n", r.Flagged, len(r.Threats))
	b.WriteString("| rank | threat | category | target | inherent | residual | in force | not in force | flagged |\n|---|---|---|---|---|---|---|---|---|\n")
	for i, a := range r.Threats {
		flag := ""
		if a.Flagged {
			flag = "**flagged**"
		}
		fmt.Fprintf(&b, "| %d | %s | %s | %s | %d | %.2f (%s) | %s | %s | %s |\n", i+1, a.Name, a.Category, a.Target, a.Inherent, a.Residual, a.ResidualLevel,
			strings.Join(a.InForce, ", "), strings.Join(a.NotInForce, ", "), flag)
	}
	b.WriteString("\n## STRIDE\n\n| category | threats | flagged | highest residual |\n|---|---|---|---|\n")
	for _, s := range r.Stride {
		fmt.Fprintf(&b, "| %s | %d | %d | %.2f |\n", s.Category, s.Threats, s.Flagged, s.MaxResidual)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
