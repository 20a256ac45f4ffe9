package stack

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentgov/agentgov/audit"
	"github.com/agentgov/agentgov/config"
	"github.com/agentgov/agentgov/evidence"
)

const (
	liveNoWrites = `version: agentgov/v1
name: live
default: allow
rules:
  - id: no-writes
    match: {tools: [write_file]}
    effect: deny
`
	canaryOpen = `version: agentgov/v1
name: candidate
default: allow
`
)

// call makes one request with a bearer token and decodes the answer.
func call(t *testing.T, method, url, token, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	json.Unmarshal(b, &m)
	return resp.StatusCode, m
}

// The canary decides for agent a2 and lets its writes through; the writes
// fail, as a2 reports in its outcomes; the SLO the canary names, on a2's
// outcomes, burns past its page threshold. The running server rolls the
// canary back by itself: the page and then the rollback naming the SLO
// are in the audit log, in that order, and every later decision for a2 is
// the live set's. The SLOs are checked every 20ms here instead of every
// 30s; nothing else differs from `agentgov serve`.
func TestABurningSLORollsTheCanaryBackInARunningServer(t *testing.T) {
	dir := t.TempDir()
	live, cand := filepath.Join(dir, "policies"), filepath.Join(dir, "candidate")
	os.MkdirAll(live, 0o755)
	os.MkdirAll(cand, 0o755)
	os.WriteFile(filepath.Join(live, "live.yaml"), []byte(liveNoWrites), 0o644)
	os.WriteFile(filepath.Join(cand, "candidate.yaml"), []byte(canaryOpen), 0o644)
	cfgPath := filepath.Join(dir, "agentgov.yaml")
	os.WriteFile(cfgPath, []byte(fmt.Sprintf(`
data: %s
policies: %s
tokens:
  - {name: ops, role: admin, sha256: %s}
  - {name: a1, role: agent, agent: a1, sha256: %s}
  - {name: a2, role: agent, agent: a2, sha256: %s}
audit: {checkpoint_interval: 50ms}
slos:
  - {id: canary-success, sli: success, target: 0.99, window: 1h, match: {agents: [a2]}}
canary: {policies: %s, agents: [a2], rollback: {slo: canary-success}}
`, filepath.Join(dir, "data"), live, sum("admin-tok"), sum("a1-tok"), sum("a2-tok"), cand)), 0o644)
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	r := runWith(t, cfg, Options{SLOEvaluateEvery: 20 * time.Millisecond}, nil)
	write := `{"tool":{"name":"write_file"},"args":{"path":"/tmp/x"}}`
	decide := func(token string) (string, string) {
		t.Helper()
		code, d := call(t, "POST", r.url+"/v1/decide", token, write)
		if code != 200 {
			t.Fatalf("decide: %d %v", code, d)
		}
		return d["effect"].(string), fmt.Sprint(d["id"])
	}

	if e, _ := decide("a1-tok"); e != "deny" {
		t.Fatalf("a1 under the live set: %s", e)
	}
	// The canary lets a2 write; the write fails. Against a 99% target
	// one failure in one outcome burns the budget 100 times too fast, past
	// the page's 14.4 over both 1h and 5m.
	e, id := decide("a2-tok")
	if e != "allow" {
		t.Fatalf("a2 under the canary: %s", e)
	}
	if r.Engine.CanaryInForce() == nil {
		t.Fatal("the canary was rolled back before any outcome")
	}
	if code, m := call(t, "POST", r.url+"/v1/decisions/"+id+"/outcome", "a2-tok", `{"status":"error","error":"disk full"}`); code != 200 {
		t.Fatalf("outcome: %d %v", code, m)
	}
	// The SLO pages and the canary is rolled back, within the deadline.
	rolled := false
	for range 1000 {
		if r.Engine.CanaryInForce() == nil {
			rolled = true
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !rolled {
		_, slos := call(t, "GET", r.url+"/v1/slos", "admin-tok", "")
		t.Fatalf("the canary was never rolled back; SLOs: %v", slos)
	}
	// Later decisions are the live set's, for a2 as for a1.
	for _, tok := range []string{"a2-tok", "a1-tok"} {
		if e, _ := decide(tok); e != "deny" {
			t.Fatalf("%s after the rollback: %s", tok, e)
		}
	}
	_, slos := call(t, "GET", r.url+"/v1/slos", "admin-tok", "")
	if !strings.Contains(fmt.Sprint(slos), "severity:page") || !strings.Contains(fmt.Sprint(slos), "firing:true") {
		t.Fatalf("SLOs after the burn: %v", slos)
	}

	// The log: the canary's start, the SLO's page, then the rollback
	// naming it.
	var steps []string
	deadline := time.Now().Add(10 * time.Second)
	for {
		steps = steps[:0]
		err := evidence.Walk(t.Context(), r.Audit.Entries, func(e audit.Entry) error {
			var rec map[string]any
			json.Unmarshal(e.Record, &rec)
			switch {
			case e.Kind == "canary":
				s := fmt.Sprint(rec["event"])
				if rec["event"] == "rollback" && !strings.Contains(fmt.Sprint(rec["reason"]), "SLO canary-success pages") {
					s += " (reason: " + fmt.Sprint(rec["reason"]) + ")"
				}
				steps = append(steps, "canary "+s)
			case e.Kind == "reliability" && rec["subject"] == "canary-success":
				steps = append(steps, fmt.Sprint("reliability ", rec["kind"]))
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(steps) >= 3 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := strings.Join(steps, ", "); got != "canary start, reliability slo_burn, canary rollback" {
		t.Fatalf("audit steps: %s", got)
	}
}
