package sre

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func rulesFor(t *testing.T, slos ...SLO) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := Rules(sloConfig(slos...), &b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// The rules have Sloth's shape: per SLO an error ratio for every alert
// window and for the SLO's own, from the counters /metrics exports; the
// objective and budget; a page alert over 1h&5m or 6h&30m at 14.4x and 6x
// the budget, a ticket over 3d&6h at 1x.
func TestRulesHaveSlothsShape(t *testing.T) {
	out := rulesFor(t, successSLO("tools", 0.99), SLO{ID: "fast", SLI: SLILatency, Target: 0.95, LatencyMS: 200, Window: Duration(7 * 24 * time.Hour)})
	var f ruleFile
	if err := yaml.Unmarshal(out, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Groups) != 6 {
		t.Fatalf("%d groups", len(f.Groups))
	}
	records := map[string]rule{}
	var alerts []rule
	for _, g := range f.Groups[:3] {
		for _, r := range g.Rules {
			if r.Alert != "" {
				alerts = append(alerts, r)
			} else {
				records[r.Record] = r
			}
		}
	}
	for _, w := range []string{"5m", "30m", "1h", "6h", "3d", "30d"} {
		r, ok := records["slo:sli_error:ratio_rate"+w]
		if !ok {
			t.Fatalf("no error ratio over %s", w)
		}
		if !strings.Contains(r.Expr, `agentgov_slo_events_total{slo="tools", result="bad"}[`+w+`]`) ||
			r.Labels["sloth_window"] != w || r.Labels["sloth_id"] != "agentgov-tools" {
			t.Errorf("%s: %+v", w, r)
		}
	}
	if records["slo:error_budget:ratio"].Expr != "vector(1-0.99)" || records["slo:objective:ratio"].Expr != "vector(0.99)" {
		t.Errorf("meta: %+v", records)
	}
	if len(alerts) != 2 || alerts[0].Labels["severity"] != "page" || alerts[1].Labels["severity"] != "ticket" {
		t.Fatalf("alerts %+v", alerts)
	}
	page := alerts[0].Expr
	for _, want := range []string{"ratio_rate5m", "ratio_rate1h", "(14.4 * 0.01)", "ratio_rate30m", "ratio_rate6h", "(6 * 0.01)"} {
		if !strings.Contains(page, want) {
			t.Errorf("page alert lacks %q:\n%s", want, page)
		}
	}
	if !strings.Contains(alerts[1].Expr, "ratio_rate3d") || !strings.Contains(alerts[1].Expr, "(1 * 0.01)") {
		t.Errorf("ticket alert:\n%s", alerts[1].Expr)
	}
	if !bytes.Contains(out, []byte("slo:sli_error:ratio_rate7d")) {
		t.Error("no ratio over the second SLO's 7d window")
	}
	if err := Rules(Config{}, &bytes.Buffer{}); err == nil {
		t.Error("rules for no SLOs")
	}
}

// promtool, Prometheus's own checker, accepts the rules.
func TestPromtoolAcceptsTheRules(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (Debian: apt-get install prometheus): the rules are not checked by Prometheus")
	}
	path := filepath.Join(t.TempDir(), "slo.rules.yaml")
	if err := os.WriteFile(path, rulesFor(t, successSLO("tools", 0.999),
		SLO{ID: "clean", SLI: SLIPolicyViolation, Target: 0.95, Window: Duration(28 * 24 * time.Hour)},
		SLO{ID: "fast", SLI: SLILatency, Target: 0.9, LatencyMS: 250}), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(promtool, "check", "rules", path).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "SUCCESS") {
		t.Fatalf("promtool said:\n%s", out)
	}
}
