package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentgov/agentgov/evidence"
)

// Two replicas on one PostgreSQL database: the reports and replay count
// both logs, each at its own signed checkpoint.
func TestReportAndReplayOverEveryReplicasLog(t *testing.T) {
	dsn, _ := pgSchema(t)
	start := func(id string) *instance {
		dir := t.TempDir()
		pol := filepath.Join(dir, "policies")
		os.MkdirAll(pol, 0o755)
		os.WriteFile(filepath.Join(pol, "test.yaml"), []byte(testPolicy), 0o644)
		cfg := fmt.Sprintf("tokens:\n  - {name: ops, role: admin, sha256: %s}\n  - {name: a1, role: agent, agent: a1, sha256: %s}\nstore: %q\nreplica: %s\naudit: {checkpoint_interval: 100ms}\n",
			sum("admin-tok"), sum("a1-tok"), dsn, id)
		os.WriteFile(filepath.Join(dir, "agentgov.yaml"), []byte(cfg), 0o644)
		in := &instance{t: t, dir: dir, data: filepath.Join(dir, "data")}
		in.args = []string{"serve", "--config", filepath.Join(dir, "agentgov.yaml"), "--policies", pol, "--data", in.data, "--addr", freePort(t)}
		in.start()
		t.Cleanup(in.stop)
		return in
	}
	r1, r2 := start("r1"), start("r2")
	for i, in := range []*instance{r1, r2, r2} {
		path := "/tmp/x"
		if i > 0 {
			path = "/etc/passwd"
		}
		if code, d := in.call("POST", "/v1/decide", "a1-tok", `{"tool":{"name":"read_file"},"args":{"path":"`+path+`"}}`); code != 200 {
			t.Fatalf("decide: %d %v", code, d)
		}
	}
	r1.stop()
	r2.stop()

	code, out := agentgov(t, "report", "soc2", "--store", dsn)
	if code != 0 {
		t.Fatalf("report --store: %d %s", code, out)
	}
	var rep struct {
		Totals struct {
			Decisions int `json:"decisions"`
			Deny      int `json:"deny"`
		} `json:"totals"`
		Replicas []struct {
			Replica    string `json:"replica"`
			Checkpoint string `json:"checkpoint"`
		} `json:"replicas"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Totals.Decisions != 3 || rep.Totals.Deny != 2 || len(rep.Replicas) != 2 || rep.Replicas[0].Replica+rep.Replicas[1].Replica != "r1r2" || rep.Replicas[1].Checkpoint == "" {
		t.Fatalf("report over two replicas: %s", out)
	}

	cand := filepath.Join(t.TempDir(), "candidate")
	os.MkdirAll(cand, 0o755)
	os.WriteFile(filepath.Join(cand, "test.yaml"), []byte(strings.Replace(testPolicy, "effect: deny", "effect: allow", 1)), 0o644)
	code, out = agentgov(t, "replay", "--policies", cand, "--store", dsn, "--json")
	var res evidence.ReplayResult
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil || res.Total != 3 || res.Changed != 2 {
		t.Fatalf("replay --store: %d %s", code, out)
	}
	if code, out := agentgov(t, "report", "owasp", "--store", dsn, "--data", "x"); code != 2 || !strings.Contains(out, "not both") {
		t.Fatalf("--store with --data: %d %s", code, out)
	}
}
