package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCLI(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	old := os.Stdin
	if stdin != "" {
		f := filepath.Join(t.TempDir(), "stdin")
		os.WriteFile(f, []byte(stdin), 0o644)
		in, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		defer in.Close()
		os.Stdin = in
		defer func() { os.Stdin = old }()
	}
	code := run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestPolicyLintReportsEveryProblemAndWarning(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "bad.yaml"), []byte(`version: agentgov/v1
name: bad
rules:
  - id: r1
    matchx: {tools: [a]}
    effect: allow
  - id: r2
    effect: maybe
  - id: r3
    when: 'args.x >'
    effect: deny
`), 0o644)
	code, out, _ := runCLI(t, "", "policy", "lint", dir)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 1 || len(lines) != 3 {
		t.Fatalf("exit %d, output:\n%s", code, out)
	}
	for i, want := range []string{"bad.yaml:5: unknown key", "bad.yaml:8: rule r2: unknown effect", "bad.yaml:10: rule r3: when:"} {
		if !strings.HasPrefix(lines[i], filepath.Join(dir, want)) {
			t.Errorf("line %d = %q, want prefix %q", i, lines[i], want)
		}
	}

	os.WriteFile(filepath.Join(dir, "bad.yaml"), []byte(`version: agentgov/v1
name: warn
default: allow
rules:
  - id: srv
    when: 'args.path.startsWith("/srv/")'
    effect: deny
`), 0o644)
	code, out, _ = runCLI(t, "", "policy", "lint", dir)
	if code != 0 || !strings.Contains(out, "bad.yaml:6: warning: rule srv: when: args.path is compared by prefix without clean_path") || !strings.Contains(out, "ok: 1 documents, 1 rules, 1 warnings") {
		t.Fatalf("exit %d, output:\n%s", code, out)
	}
}

func TestPolicyEvalFailOn(t *testing.T) {
	deny := `{"agent":{"id":"a"},"tool":{"name":"shell"},"args":{"command":"rm -rf /"}}`
	approve := `{"agent":{"id":"a"},"tool":{"name":"send_money"},"args":{"amount":5000}}`
	allow := `{"agent":{"id":"a"},"tool":{"name":"shell"},"args":{"command":"ls"}}`
	for _, c := range []struct {
		input, failOn string
		code          int
	}{
		{deny, "", 0},
		{deny, "deny", 3},
		{deny, "approval", 3},
		{approve, "deny", 0},
		{approve, "approval", 3},
		{allow, "deny", 0},
		{allow, "approval", 0},
	} {
		args := []string{"policy", "eval", "--input", "-"}
		if c.failOn != "" {
			args = append(args, "--fail-on", c.failOn)
		}
		code, out, errOut := runCLI(t, c.input, args...)
		if code != c.code || !strings.Contains(out, `"effect"`) {
			t.Errorf("%s --fail-on %q: exit %d, want %d\n%s%s", c.input, c.failOn, code, c.code, out, errOut)
		}
	}
	if code, _, errOut := runCLI(t, allow, "policy", "eval", "--fail-on", "maybe"); code != 2 || !strings.Contains(errOut, "--fail-on must be deny or approval") {
		t.Errorf("--fail-on maybe: exit %d %s", code, errOut)
	}
}
