package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentgov/agentgov/evidence"
)

// candidatePolicy differs from testPolicy: home directories and anything
// naming an AWS key are off limits, payments over 100 need approval, and
// writes are allowed.
const candidatePolicy = `
version: agentgov/v1
name: test
default: deny
rules:
  - id: reads
    match: {tools: ["read_*"]}
    effect: allow
  - id: no-etc
    match: {tools: [read_file]}
    when: 'args.path.startsWith("/etc/") || args.path.startsWith("/home/")'
    effect: deny
    severity: high
  - id: no-keys
    match: {tools: [read_file]}
    when: 'args.path.contains("AKIA")'
    effect: deny
    severity: critical
  - id: payments
    match: {tools: [pay]}
    when: 'args.amount > 100'
    effect: require_approval
    approval: {approvers: ["group:finance"], timeout: 30m}
  - id: small-payments
    match: {tools: [pay]}
    when: 'args.amount <= 100'
    effect: allow
  - id: writes
    match: {tools: [write_file]}
    effect: allow
`

var replayActions = []string{
	`{"tool":{"name":"read_file"},"args":{"path":"/tmp/x"}}`,
	`{"tool":{"name":"read_file"},"args":{"path":"/etc/passwd"}}`,
	`{"tool":{"name":"read_file"},"args":{"path":"/home/u/.ssh/config"}}`,
	`{"tool":{"name":"pay"},"args":{"amount":500,"to":"bob"}}`,
	`{"tool":{"name":"pay"},"args":{"amount":5000,"to":"bob"}}`,
	`{"tool":{"name":"write_file"},"args":{"path":"/tmp/y"}}`,
	// The key is masked in the log: replay cannot see what no-keys sees.
	`{"tool":{"name":"read_file"},"args":{"path":"/tmp/AKIAIOSFODNN7EXAMPLE"}}`,
}

// candidateSet writes candidatePolicy as a policy directory.
func candidateSet(t *testing.T) string {
	t.Helper()
	cand := filepath.Join(t.TempDir(), "candidate")
	os.MkdirAll(cand, 0o755)
	os.WriteFile(filepath.Join(cand, "test.yaml"), []byte(candidatePolicy), 0o644)
	return cand
}

// loggedReads is a stopped server whose log holds six reads of /tmp/x,
// checkpointed every three entries.
func loggedReads(t *testing.T) *instance {
	t.Helper()
	in := startAuditServer(t, "audit: {checkpoint_every: 3, checkpoint_interval: 1h}\n", "")
	in.decide(6)
	in.stop()
	return in
}

func TestReplayMatchesASecondServerRunUnderTheNewPolicy(t *testing.T) {
	old := startServer(t)
	for _, a := range replayActions {
		if code, d := old.call("POST", "/v1/decide", "a1-tok", a); code != 200 {
			t.Fatalf("decide: %d %v", code, d)
		}
	}
	// A decision the kill switch made is not policy's to change.
	if code, m := old.call("POST", "/v1/kill", "admin-tok", `{"scope":"agent","target":"a2","reason":"test"}`); code != 201 && code != 200 {
		t.Fatalf("kill: %d %v", code, m)
	}
	if code, d := old.call("POST", "/v1/decide", "a2-tok", replayActions[0]); code != 200 || d["effect"] != "deny" {
		t.Fatalf("killed agent: %d %v", code, d)
	}
	old.stop()

	cand := candidateSet(t)

	code, out := agentgov(t, "replay", "--policies", cand, "--data", old.data, "--json")
	if code != 0 {
		t.Fatalf("replay: %d %s", code, out)
	}
	var res evidence.ReplayResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("replay --json: %v\n%s", err, out)
	}
	if res.Total != len(replayActions) || res.Skipped != 1 || res.Masked != 1 {
		t.Fatalf("replay: %+v", res)
	}

	// The second run: a fresh server under the candidate, the same actions.
	neu := startServerWith(t, candidatePolicy)
	var live []string
	for _, a := range replayActions {
		_, d := neu.call("POST", "/v1/decide", "a1-tok", a)
		live = append(live, d["effect"].(string))
	}
	// What the old run said, decision by decision, from its log.
	var before []string
	for _, e := range auditRecords(t, old.data) {
		if e.Kind != "decision" {
			continue
		}
		d, err := evidence.ParseDecision(e)
		if err != nil {
			t.Fatal(err)
		}
		if d.PolicyEffect != "" {
			before = append(before, string(d.PolicyEffect))
		}
	}
	if len(before) != len(replayActions) {
		t.Fatalf("old run: %v", before)
	}
	predicted := append([]string(nil), before...)
	changed := map[int]evidence.Change{}
	for _, c := range res.Decisions {
		i := int(c.Index) // decisions follow the start entry, one per action
		changed[i] = c
	}
	n := 0
	for _, e := range auditRecords(t, old.data) {
		if e.Kind != "decision" {
			continue
		}
		if c, ok := changed[int(e.Index)]; ok {
			if c.Old != "" && string(c.Old) != predicted[n] {
				t.Fatalf("decision %d: replay says it was %s, the log %s", e.Index, c.Old, predicted[n])
			}
			predicted[n] = string(c.New)
		}
		n++
		if n == len(predicted) {
			break
		}
	}
	for i := range replayActions {
		if i == len(replayActions)-1 {
			// Masked: the live run denies on the key, replay saw
			// [REDACTED:…] and predicts the old allow, and says so.
			if live[i] != "deny" || predicted[i] != "allow" {
				t.Fatalf("masked action: live %s, replay %s", live[i], predicted[i])
			}
			continue
		}
		if predicted[i] != live[i] {
			t.Errorf("action %d %s: replay predicts %s, the second run decided %s", i, replayActions[i], predicted[i], live[i])
		}
	}
	if res.Changed != 3 {
		t.Fatalf("want 3 changes (home read, payment of 500, write), got %+v", res)
	}

	// The text form: the count first, one line per change.
	code, out = agentgov(t, "replay", "--policies", cand, "--data", old.data)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || lines[0] != "3 of 7 decisions change" || !strings.Contains(out, "allow -> deny (rules: no-etc;") ||
		!strings.Contains(out, "1 decisions not re-decided") || !strings.Contains(out, "1 decisions were re-decided on masked values") {
		t.Fatalf("replay: %d\n%s", code, out)
	}
	// Since the future: nothing to re-decide.
	if code, out := agentgov(t, "replay", "--policies", cand, "--data", old.data, "--since", "2999-01-01T00:00:00Z"); code != 0 || !strings.HasPrefix(out, "0 of 0 decisions change") {
		t.Fatalf("replay --since: %d %s", code, out)
	}
	if code, out := agentgov(t, "replay", "--policies", cand, "--data", old.data, "--since", "yesterday"); code != 2 || !strings.Contains(out, "RFC 3339") {
		t.Fatalf("bad --since: %d %s", code, out)
	}
}

// Someone who can write the data directory edits a recorded read of /tmp/x
// into one of /etc/passwd: replayed as it stands, the candidate set would
// be shown denying a call nobody made. The entries under the latest
// checkpoint are read against its signed root, so the edit is refused.
func TestReplayRefusesALogEditedUnderItsCheckpoint(t *testing.T) {
	in := loggedReads(t)
	cand := candidateSet(t)

	code, out := agentgov(t, "replay", "--policies", cand, "--data", in.data, "--json")
	var res evidence.ReplayResult
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil || res.Total != 6 || res.Changed != 0 || res.Unsigned != 0 {
		t.Fatalf("replay of the log as written: exit %d\n%s", code, out)
	}

	sqlTamper(t, in.data, `UPDATE audit_entries SET data = replace(data, '/tmp/x', '/etc/passwd') WHERE idx = 2`)
	code, out = agentgov(t, "replay", "--policies", cand, "--data", in.data)
	if code != 1 || !strings.Contains(out, "do not have the signed root") {
		t.Fatalf("replay of an edited log: exit %d\n%s", code, out)
	}
}

// The variant: the checkpoints are deleted with the edit, so that no
// signature is left to contradict it. Replay cannot prove such a log and
// says that none of what it read is signed.
func TestReplaySaysWhatNoCheckpointSigns(t *testing.T) {
	in := loggedReads(t)
	cand := candidateSet(t)

	sqlTamper(t, in.data,
		`UPDATE audit_entries SET data = replace(data, '/tmp/x', '/etc/passwd') WHERE idx = 2`,
		`DELETE FROM audit_checkpoints`)
	code, out := agentgov(t, "replay", "--policies", cand, "--data", in.data)
	if code != 0 || !strings.Contains(out, "1 of 6 decisions change") || !strings.Contains(out, "6 decisions are newer than the latest signed checkpoint") {
		t.Fatalf("replay of a log without checkpoints: exit %d\n%s", code, out)
	}
}
