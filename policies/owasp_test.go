package policies_test

import (
	"regexp"
	"testing"

	"github.com/agentgov/agentgov/policies"
)

// Every rule of the built-in pack names the OWASP Agentic Top 10 risks it
// addresses (metadata.owasp, and metadata.related for the ones it helps
// with), so that `agentgov report owasp` can say which controls are in
// force for each risk.
func TestEveryBuiltinRuleMapsToItsRisks(t *testing.T) {
	set, err := policies.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	risk := regexp.MustCompile(`^ASI(0[1-9]|10)$`)
	ids := regexp.MustCompile(`[,\s]+`)
	n := 0
	for _, d := range set.Documents() {
		for _, r := range d.Rules {
			n++
			o := r.Metadata["owasp"]
			if o == "" {
				t.Errorf("%s: rule %s has no metadata.owasp", d.Name, r.ID)
				continue
			}
			for _, key := range []string{"owasp", "related"} {
				if r.Metadata[key] == "" {
					continue
				}
				for _, id := range ids.Split(r.Metadata[key], -1) {
					if !risk.MatchString(id) {
						t.Errorf("%s: rule %s: metadata.%s %q is not a risk ASI01..ASI10", d.Name, r.ID, key, id)
					}
				}
			}
		}
	}
	if n < 20 {
		t.Fatalf("only %d rules in the pack", n)
	}
}
