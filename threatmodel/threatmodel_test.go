package threatmodel

import (
	"strings"
	"testing"
)

const model = `
name: t
components: [{name: agent, type: agent}]
threats:
  - {name: a, category: tampering, target: agent, likelihood: high, impact: high,
     mitigations: [{control: rule-1, effectiveness: high}, {control: provenance, effectiveness: medium}]}
  - {name: b, category: spoofing, target: agent, likelihood: medium, impact: high,
     mitigations: [{control: identity, effectiveness: high}]}
  - {name: c, category: denial_of_service, likelihood: low, impact: low}
`

var controls = Controls{Builtin: map[string]bool{"provenance": true, "identity": false}, Rules: map[string]bool{"rule-1": true}}

func TestResidualRiskCountsOnlyControlsInForce(t *testing.T) {
	m, err := Parse("m.yaml", []byte(model))
	if err != nil {
		t.Fatal(err)
	}
	r, err := Assess(m, controls)
	if err != nil {
		t.Fatal(err)
	}
	by := map[string]Assessed{}
	for _, a := range r.Threats {
		by[a.Name] = a
	}
	// a: 9, lowered by 75% then 50%: 1.125, rounded to 1.13.
	if a := by["a"]; a.Inherent != 9 || a.Residual != 1.13 || a.Flagged || len(a.InForce) != 2 {
		t.Fatalf("a: %+v", a)
	}
	// b: its only control is not in force: flagged, its risk unchanged.
	if b := by["b"]; b.Inherent != 6 || b.Residual != 6 || !b.Flagged || b.ResidualLevel != "high" {
		t.Fatalf("b: %+v", b)
	}
	// c: no mitigation at all is flagged too.
	if c := by["c"]; !c.Flagged || c.Residual != 1 {
		t.Fatalf("c: %+v", c)
	}
	if r.Threats[0].Name != "b" || r.Flagged != 2 {
		t.Fatalf("ranking: %v, flagged %d", r.Threats, r.Flagged)
	}
	if r.Stride[0].Category != "spoofing" || r.Stride[0].Flagged != 1 || len(r.Stride) != 6 {
		t.Fatalf("stride: %+v", r.Stride)
	}
}

func TestUnknownValuesAreRefusedNamingTheField(t *testing.T) {
	for _, c := range []struct{ edit, want string }{
		{"likelihood: high, impact: high,\n     mitigations: [{control: rule-1", ""},
		{"category: tampering, target: agent, likelihood: high", "category: tampering, target: agent, likelihood: certain"},
		{"category: spoofing", "category: phishing"},
		{"likelihood: low, impact: low", "likelihood: low, impact: catastrophic"},
		{"target: agent, likelihood: high", "target: robot, likelihood: high"},
		{"effectiveness: medium", "effectiveness: total"},
	} {
		if c.want == "" {
			continue
		}
		_, err := Parse("m.yaml", []byte(strings.Replace(model, c.edit, c.want, 1)))
		if err == nil {
			t.Errorf("%s: accepted", c.want)
			continue
		}
		field := map[string]string{
			"category: tampering, target: agent, likelihood: certain": "threats[0] (a).likelihood",
			"category: phishing":                    "threats[1] (b).category",
			"likelihood: low, impact: catastrophic": "threats[2] (c).impact",
			"target: robot, likelihood: high":       "threats[0] (a).target",
			"effectiveness: total":                  "threats[0] (a).mitigations[1].effectiveness",
		}[c.want]
		if !strings.Contains(err.Error(), field) {
			t.Errorf("%s: %v, want the field %s named", c.want, err, field)
		}
	}
	if _, err := Parse("m.yaml", []byte(model+"extra: 1\n")); err == nil {
		t.Error("an unknown key was accepted")
	}
	m, _ := Parse("m.yaml", []byte(strings.Replace(model, "control: rule-1", "control: rule-typo", 1)))
	if _, err := Assess(m, controls); err == nil || !strings.Contains(err.Error(), `threats[0] (a).mitigations[0].control: unknown control "rule-typo"`) {
		t.Fatalf("unknown control: %v", err)
	}
}
