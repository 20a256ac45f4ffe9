package policy

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// Every file in testdata/invalid is a policy that must be refused; its first
// line says, after "# want: ", the start of the error it must produce.
func TestInvalidPoliciesAreRefusedWithFileAndLine(t *testing.T) {
	files, _ := filepath.Glob("testdata/invalid/*.yaml")
	if len(files) == 0 {
		t.Fatal("no test files")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			want := wantLine(t, f)
			_, err := Load(f)
			if err == nil {
				t.Fatalf("loaded; want error %q", want)
			}
			if !strings.Contains(err.Error(), want) {
				t.Fatalf("error:\n  %v\nwant it to contain:\n  %s", err, want)
			}
			var el ErrorList
			if !errors.As(err, &el) || el[0].Line == 0 {
				t.Fatalf("error has no line: %#v", err)
			}
		})
	}
}

func wantLine(t *testing.T, f string) string {
	fh, err := os.Open(f)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	sc.Scan()
	want, ok := strings.CutPrefix(sc.Text(), "# want: ")
	if !ok {
		t.Fatalf("%s: first line must be '# want: ...'", f)
	}
	return want
}

// A directory with one bad file is refused whole: no partial set.
func TestOneBadFileRefusesTheDirectory(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "good.yaml"), []byte("version: agentgov/v1\nname: good\ndefault: allow\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "bad.yaml"), []byte("version: agentgov/v1\nname: bad\ndefault: maybe\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "good_test.yaml"), []byte("this is not a policy: ["), 0o644)
	s, err := Load(dir)
	if err == nil || s != nil {
		t.Fatalf("set %v err %v, want refusal", s, err)
	}
	if !strings.Contains(err.Error(), "bad.yaml:3: unknown default \"maybe\"") {
		t.Fatalf("error %v", err)
	}
}

func TestDuplicateDocumentNames(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a.yaml"), []byte("version: agentgov/v1\nname: same\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "b.yaml"), []byte("version: agentgov/v1\nname: same\n"), 0o644)
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), `document name "same" is already used`) {
		t.Fatalf("err %v", err)
	}
}

func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/invalid/*.yaml")
	for _, p := range files {
		b, _ := os.ReadFile(p)
		f.Add(b)
	}
	f.Add([]byte(designExample))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := Parse("fuzz.yaml", data)
		if err != nil {
			return
		}
		// Whatever parses must compile or fail cleanly, never panic.
		_, _ = Compile([]*Document{d})
	})
}

// One load reports every problem of a file, each with its line: unknown keys,
// bad values and conditions alike, not one kind per run.
func TestEveryProblemOfAFileInOneRun(t *testing.T) {
	dir := t.TempDir()
	src := `version: agentgov/v1
name: many
default: deny
rules:
  - id: r1
    matchx: {tools: [a]}
    effect: allow
  - id: r2
    effect: maybe
  - id: r3
    when: 'args.amount >'
    effect: deny
  - id: r4
    when: 'agent.idd == "x"'
    effect: deny
rate_limits:
  - {id: l1, limit: 0, per: 1m}
`
	os.WriteFile(filepath.Join(dir, "many.yaml"), []byte(src), 0o644)
	os.WriteFile(filepath.Join(dir, "other.yaml"), []byte("version: agentgov/v1\nname: many\ndefault: allow\n"), 0o644)
	_, err := Load(dir)
	var el ErrorList
	if !errors.As(err, &el) {
		t.Fatalf("err %v", err)
	}
	var got []string
	for _, e := range el {
		got = append(got, fmt.Sprintf("%s:%d", filepath.Base(e.File), e.Line))
	}
	want := []string{"many.yaml:6", "many.yaml:9", "many.yaml:11", "many.yaml:14", "many.yaml:17", "other.yaml:2"}
	if !slices.Equal(got, want) {
		t.Fatalf("problems at %v, want %v:\n%v", got, want, err)
	}
	for _, w := range []string{`unknown key "matchx"`, `unknown effect "maybe"`, "rule r3: when:", "unknown field agent.idd", "limit must be a positive number", `document name "many" is already used`} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("missing %q in:\n%v", w, err)
		}
	}
}

// A problem in one file does not hide those of the next.
func TestProblemsOfEveryFile(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a.yaml"), []byte("version: agentgov/v1\nname: a\nbogus: 1\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "b.yaml"), []byte("version: agentgov/v1\nname: b\nrules:\n  - {id: r, when: 'nope(', effect: deny}\n"), 0o644)
	_, err := Load(dir)
	if err == nil || !strings.Contains(err.Error(), "a.yaml:3:") || !strings.Contains(err.Error(), "b.yaml:4:") {
		t.Fatalf("err %v", err)
	}
}
