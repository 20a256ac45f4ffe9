// Command testreport reads `go test -json` on standard input and prints what
// `go test` prints without -v (a line per package, the output of failing
// tests), then every skipped test with the reason it gave, so that a test
// run never passes silently over tests that did not run. It exits 1 when a
// test or package failed, 0 otherwise.
//
//	go test -race -json ./... | go run ./internal/testreport
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"
)

// event is one line of `go test -json` (see `go doc test2json`).
type event struct {
	Action  string
	Package string
	Test    string
	Elapsed float64
	Output  string
}

type key struct{ pkg, test string }

// report accumulates the events of one run.
type report struct {
	out      io.Writer
	output   map[key][]string // output of each test (and of each package, test "")
	skipped  []skip
	failed   int
	packages int
}

type skip struct {
	pkg, test, reason string
}

func main() {
	r := &report{out: os.Stdout, output: map[key][]string{}}
	if err := r.read(os.Stdin); err != nil {
		fmt.Fprintln(os.Stderr, "testreport:", err)
		os.Exit(2)
	}
	r.summary()
	if r.failed > 0 {
		os.Exit(1)
	}
}

func (r *report) read(in io.Reader) error {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &e) != nil {
			// Build errors and other text go to the reader as they are.
			fmt.Fprintln(r.out, string(line))
			continue
		}
		r.handle(e)
	}
	return sc.Err()
}

func (r *report) handle(e event) {
	k := key{e.Package, e.Test}
	switch e.Action {
	case "build-output":
		fmt.Fprint(r.out, e.Output)
	case "build-fail":
		// The package's own "fail" follows and is counted.
	case "output":
		r.output[k] = append(r.output[k], e.Output)
	case "skip":
		if e.Test != "" {
			r.skipped = append(r.skipped, skip{e.Package, e.Test, skipReason(r.output[k])})
		} else {
			fmt.Fprintf(r.out, "?   \t%s\t[no test files]\n", e.Package)
		}
		delete(r.output, k)
	case "pass":
		if e.Test == "" {
			r.packages++
			fmt.Fprintf(r.out, "ok  \t%s\t%.3fs\n", e.Package, e.Elapsed)
		}
		delete(r.output, k)
	case "fail":
		r.failed++
		if e.Test == "" {
			r.packages++
			// The package's own output holds build errors and panics.
			for _, l := range r.output[k] {
				fmt.Fprint(r.out, l)
			}
			fmt.Fprintf(r.out, "FAIL\t%s\t%.3fs\n", e.Package, e.Elapsed)
		} else {
			for _, l := range r.output[k] {
				fmt.Fprint(r.out, l)
			}
		}
		delete(r.output, k)
	}
}

// skipReason is what the test logged before it skipped: the t.Skip message,
// without the "file.go:12:" prefix and the "--- SKIP" line.
func skipReason(lines []string) string {
	var msg []string
	for _, l := range lines {
		t := strings.TrimSpace(l)
		if t == "" || strings.HasPrefix(t, "=== ") || strings.HasPrefix(t, "--- SKIP") {
			continue
		}
		if i := strings.Index(t, ".go:"); i >= 0 {
			if j := strings.Index(t[i+4:], ": "); j >= 0 {
				t = t[i+4+j+2:]
			}
		}
		msg = append(msg, t)
	}
	if len(msg) == 0 {
		return "(no reason given)"
	}
	return strings.Join(msg, " ")
}

func (r *report) summary() {
	sort.Slice(r.skipped, func(i, j int) bool {
		a, b := r.skipped[i], r.skipped[j]
		return a.pkg < b.pkg || a.pkg == b.pkg && a.test < b.test
	})
	fmt.Fprintln(r.out)
	if len(r.skipped) == 0 {
		fmt.Fprintln(r.out, "skipped: none")
	} else {
		fmt.Fprintf(r.out, "skipped: %d tests\n", len(r.skipped))
		for _, s := range r.skipped {
			fmt.Fprintf(r.out, "  %s %s: %s\n", strings.TrimPrefix(s.pkg, "github.com/agentgov/agentgov/"), s.test, s.reason)
		}
	}
	status := "PASS"
	if r.failed > 0 {
		status = "FAIL"
	}
	fmt.Fprintf(r.out, "%s: %d packages, %d failures, %d skipped (%s)\n", status, r.packages, r.failed, len(r.skipped), time.Now().UTC().Format(time.RFC3339))
}
