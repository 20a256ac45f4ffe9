package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
)

// startDeliveryServer starts `agentgov serve` on testPolicy with agents a1
// and a2 and the extra configuration lines, the candidate policy in
// DIR/candidate.
func startDeliveryServer(t *testing.T, extra func(candidate string) string) *instance {
	t.Helper()
	dir := t.TempDir()
	pol, cand := filepath.Join(dir, "policies"), filepath.Join(dir, "candidate")
	os.MkdirAll(pol, 0o755)
	os.MkdirAll(cand, 0o755)
	os.WriteFile(filepath.Join(pol, "test.yaml"), []byte(testPolicy), 0o644)
	os.WriteFile(filepath.Join(cand, "test.yaml"), []byte(candidatePolicy), 0o644)
	cfg := fmt.Sprintf("tokens:\n  - {name: ops, role: admin, sha256: %s}\n  - {name: a1, role: agent, agent: a1, sha256: %s}\n  - {name: a2, role: agent, agent: a2, sha256: %s}\n%s",
		sum("admin-tok"), sum("a1-tok"), sum("a2-tok"), extra(cand))
	os.WriteFile(filepath.Join(dir, "agentgov.yaml"), []byte(cfg), 0o644)
	in := &instance{t: t, dir: dir, data: filepath.Join(dir, "data")}
	in.args = []string{"serve", "--config", filepath.Join(dir, "agentgov.yaml"), "--policies", pol, "--data", in.data, "--addr", freePort(t)}
	in.start()
	t.Cleanup(in.stop)
	return in
}

// metric reads one sample of /metrics, 0 when absent.
func (in *instance) metric(t *testing.T, series string) float64 {
	t.Helper()
	resp, err := http.Get(in.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindSubmatch(b)
	if m == nil {
		return 0
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}

func TestShadowSetIsEvaluatedOnEveryDecisionWithNoEffect(t *testing.T) {
	in := startDeliveryServer(t, func(c string) string { return "policies_shadow: " + c + "\n" })
	var effects []string
	for _, a := range replayActions {
		_, d := in.call("POST", "/v1/decide", "a1-tok", a)
		effects = append(effects, d["effect"].(string))
	}
	// The live set decided: the shadow changed nothing.
	want := []string{"allow", "deny", "allow", "allow", "require_approval", "deny", "allow"}
	if fmt.Sprint(effects) != fmt.Sprint(want) {
		t.Fatalf("effects %v, want the live set's %v", effects, want)
	}
	// Four differ: the home read, the payment of 500, the write, and the
	// key (the shadow sees the live action, before masking).
	if got := in.metric(t, `agentgov_shadow_differences_total{live="allow",shadow="deny"}`); got != 2 {
		t.Errorf("allow->deny differences: %v", got)
	}
	if got := in.metric(t, `agentgov_shadow_differences_total{live="allow",shadow="require_approval"}`); got != 1 {
		t.Errorf("allow->require_approval differences: %v", got)
	}
	if got := in.metric(t, `agentgov_shadow_differences_total{live="deny",shadow="allow"}`); got != 1 {
		t.Errorf("deny->allow differences: %v", got)
	}
	in.stop()
	var diffs []map[string]any
	for _, e := range auditRecords(t, in.data) {
		if e.Kind == "shadow.diff" {
			var r map[string]any
			json.Unmarshal(e.Record, &r)
			diffs = append(diffs, r)
		}
	}
	if len(diffs) != 4 {
		t.Fatalf("shadow.diff entries: %v", diffs)
	}
	if d := diffs[0]; d["live"] != "allow" || d["shadow"] != "deny" || fmt.Sprint(d["shadow_rules"]) != "[no-etc]" || d["decision"] == "" || d["agent"] != "a1" {
		t.Fatalf("first difference: %v", d)
	}
}

func TestCanaryDecidesForItsAgentsAndIsRolledBackOnDenials(t *testing.T) {
	in := startDeliveryServer(t, func(c string) string {
		return "canary: {policies: " + c + ", agents: [a2], rollback: {deny_ratio: 0.5, min_decisions: 4}}\n"
	})
	write := `{"tool":{"name":"write_file"},"args":{"path":"/tmp/y"}}`
	home := `{"tool":{"name":"read_file"},"args":{"path":"/home/u/x"}}`
	effect := func(tok, body string) string {
		t.Helper()
		code, d := in.call("POST", "/v1/decide", tok, body)
		if code != 200 {
			t.Fatalf("decide: %d %v", code, d)
		}
		return d["effect"].(string)
	}
	// The canary decides for a2 only.
	if e := effect("a2-tok", write); e != "allow" {
		t.Fatalf("a2 write under the canary: %s", e)
	}
	if e := effect("a1-tok", write); e != "deny" {
		t.Fatalf("a1 write under the live set: %s", e)
	}
	// 1 allow, then denials: at the 4th decision 3 of 4 are denials.
	for i := range 3 {
		if e := effect("a2-tok", home); e != "deny" {
			t.Fatalf("home read %d under the canary: %s", i, e)
		}
	}
	// Rolled back: the live set decides for a2 again.
	if e := effect("a2-tok", write); e != "deny" {
		t.Fatalf("a2 write after the rollback: %s", e)
	}
	if e := effect("a2-tok", home); e != "allow" {
		t.Fatalf("a2 home read after the rollback: %s", e)
	}
	if got := in.metric(t, "agentgov_canary_rollbacks_total"); got != 1 {
		t.Fatalf("rollbacks: %v", got)
	}
	if got := in.metric(t, `agentgov_canary_decisions_total{effect="deny"}`); got != 3 {
		t.Fatalf("canary denials: %v", got)
	}
	// A restart does not bring the rolled-back canary back.
	in.stop()
	in.start()
	if e := effect("a2-tok", write); e != "deny" {
		t.Fatalf("a2 write after a restart: %s", e)
	}
	in.stop()
	var events []string
	for _, e := range auditRecords(t, in.data) {
		if e.Kind == "canary" {
			var r map[string]any
			json.Unmarshal(e.Record, &r)
			events = append(events, fmt.Sprint(r["event"]))
			if r["event"] == "rollback" && (r["decisions"] != 4.0 || r["denials"] != 3.0) {
				t.Errorf("rollback record: %v", r)
			}
		}
	}
	if fmt.Sprint(events) != "[start rollback held]" {
		t.Fatalf("canary entries: %v", events)
	}
}
