package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPolicyReviewListsOverdueDocuments(t *testing.T) {
	dir := t.TempDir()
	write := func(name, review string) {
		os.WriteFile(filepath.Join(dir, name+".yaml"), []byte("version: agentgov/v1\nname: "+name+"\ndefault: allow\n"+review), 0o644)
	}
	write("fresh", "review: {frequency: quarterly, approvers: [sec], reviewed: 2026-11-01}\n")
	write("stale", "review: {frequency: monthly, approvers: [sec, legal], reviewed: 2026-06-01}\n")
	write("never", "review: {frequency: 90d}\n")
	write("none", "")
	code, out, _ := runCLI(t, "", "policy", "review", dir, "--at", "2026-12-03")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 3 || !strings.HasPrefix(lines[0], "never ") || !strings.Contains(lines[1], "stale") ||
		!strings.Contains(lines[1], "due 2026-07-02") || lines[2] != "2 overdue for review" {
		t.Fatalf("policy review: %d\n%s", code, out)
	}
	if code, _, _ := runCLI(t, "", "policy", "review", dir, "--at", "2026-12-03", "--fail-on-overdue"); code != 1 {
		t.Fatalf("--fail-on-overdue: %d", code)
	}
	if code, out, _ := runCLI(t, "", "policy", "review", dir, "--at", "2026-06-15"); code != 0 || !strings.HasSuffix(strings.TrimSpace(out), "1 overdue for review") {
		t.Fatalf("as of June: %d %s", code, out)
	}
	// A frequency or date that means nothing is refused where it is written.
	write("bad", "review: {frequency: fortnightly-ish}\n")
	if code, _, errOut := runCLI(t, "", "policy", "review", dir); code != 1 || !strings.Contains(errOut, "bad.yaml") || !strings.Contains(errOut, "unknown review frequency") {
		t.Fatalf("bad frequency: %d %s", code, errOut)
	}
}
