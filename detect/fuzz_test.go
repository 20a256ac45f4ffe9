package detect

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// seedText adds every text from the testdata case files to a fuzz corpus, so
// the fuzzer starts from inputs that reach deep into each rule.
func seedText(f *testing.F) {
	for _, file := range []string{"secrets.txt", "pii.txt", "injection.txt"} {
		for _, c := range loadTextCases(f, file) {
			f.Add(c.text)
		}
	}
	f.Add("")
	f.Add("\xff\xfe\xf3\xa0\x80")
	f.Add(strings.Repeat("ignore ", 500))
}

// fuzzDetector checks the invariants every detector keeps on any input: no
// panic, offsets within the text, results sorted.
func fuzzDetector(f *testing.F, detector func(string) []Finding) {
	seedText(f)
	f.Fuzz(func(t *testing.T, text string) {
		checkWellFormed(t, text, detector(text))
	})
}

func FuzzSecrets(f *testing.F)   { fuzzDetector(f, Secrets) }
func FuzzPII(f *testing.F)       { fuzzDetector(f, PII) }
func FuzzInjection(f *testing.F) { fuzzDetector(f, Injection) }
func FuzzAll(f *testing.F)       { fuzzDetector(f, All) }

func FuzzRedact(f *testing.F) {
	seedText(f)
	f.Fuzz(func(t *testing.T, text string) {
		fs := All(text)
		out := Redact(text, fs)
		if len(fs) == 0 && out != text {
			t.Fatalf("Redact changed text without findings")
		}
		// Redacting is idempotent for secrets: nothing a detector found
		// survives in the output.
		for _, f := range Secrets(text) {
			if s := text[f.Start:f.End]; len(s) > 12 && strings.Contains(out, s) {
				t.Fatalf("secret %q survived redaction", s)
			}
		}
		// Arbitrary findings, including nonsense offsets, never panic.
		Redact(text, []Finding{{Start: len(text) / 2, End: len(text) + 1}, {Start: -1, End: 1}, {Start: 1, End: 0}})
	})
}

func FuzzToolPoisoning(f *testing.F) {
	for _, c := range loadPoisoningCases(f) {
		f.Add(c.Name, c.Description, string(c.Schema))
	}
	f.Add("", "", "")
	f.Add("x", "y", `{"properties": {"a": {"description": 1}}}`)
	f.Fuzz(func(t *testing.T, name, description, schema string) {
		var arg any = schema
		if schema == "" {
			arg = nil
		}
		fs := ToolPoisoning(name, description, arg)
		checkWellFormedAnyOrder(t, description, fs)
		var decoded any
		if json.Unmarshal([]byte(schema), &decoded) == nil {
			checkWellFormedAnyOrder(t, description, ToolPoisoning(name, description, decoded))
		}
	})
}

// checkWellFormedAnyOrder is checkWellFormed without the ordering check that
// positionless findings (name, schema) do not take part in.
func checkWellFormedAnyOrder(t *testing.T, text string, fs []Finding) {
	t.Helper()
	for _, f := range fs {
		if f.Start < 0 || f.End < f.Start || f.End > len(text) || f.Severity.Rank() < 1 || f.Rule == "" {
			t.Fatalf("malformed finding %+v for text of %d bytes", f, len(text))
		}
	}
}

func FuzzShadowing(f *testing.F) {
	f.Add("read_file,write_file", "read_fle,fetch")
	f.Add("", "")
	f.Add("a,b,c", "a,b,c")
	f.Add("héllo,\xff", "hello,\xfe")
	f.Fuzz(func(t *testing.T, a, b string) {
		servers := map[string][]string{"a": strings.Split(a, ","), "b": strings.Split(b, ",")}
		for _, f := range Shadowing(servers) {
			if f.Kind != KindShadowing || f.Positional() || f.Detail == "" {
				t.Fatalf("malformed finding %+v", f)
			}
		}
		for _, x := range servers["a"] {
			for _, y := range servers["b"] {
				d, ok := withinDistance(x, y, 2)
				if ok && (d < 0 || d > 2) || ok && x == y && d != 0 {
					t.Fatalf("withinDistance(%q, %q) = %d, %v", x, y, d, ok)
				}
				if ok && d == 0 && utf8.RuneCountInString(x) != utf8.RuneCountInString(y) {
					t.Fatalf("distance 0 between names of different lengths %q %q", x, y)
				}
			}
		}
	})
}
