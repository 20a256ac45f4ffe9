package main

import (
	"strings"
	"testing"
)

// A run with a pass, a skip and a failure: the skip is listed with its
// reason, the failing test's output is shown, and the run counts as failed.
func TestReportListsSkipsWithReasonsAndFailures(t *testing.T) {
	in := strings.Join([]string{
		`{"Action":"run","Package":"example.com/p","Test":"TestNode"}`,
		`{"Action":"output","Package":"example.com/p","Test":"TestNode","Output":"=== RUN   TestNode\n"}`,
		`{"Action":"output","Package":"example.com/p","Test":"TestNode","Output":"    node_test.go:27: node is not installed\n"}`,
		`{"Action":"output","Package":"example.com/p","Test":"TestNode","Output":"--- SKIP: TestNode (0.00s)\n"}`,
		`{"Action":"skip","Package":"example.com/p","Test":"TestNode"}`,
		`{"Action":"output","Package":"example.com/p","Test":"TestBroken","Output":"    x_test.go:9: want 1, got 2\n"}`,
		`{"Action":"fail","Package":"example.com/p","Test":"TestBroken"}`,
		`{"Action":"fail","Package":"example.com/p","Elapsed":0.5}`,
		`{"Action":"pass","Package":"example.com/q","Elapsed":0.25}`,
	}, "\n")
	var out strings.Builder
	r := &report{out: &out, output: map[key][]string{}}
	if err := r.read(strings.NewReader(in)); err != nil {
		t.Fatal(err)
	}
	r.summary()
	got := out.String()
	for _, want := range []string{
		"example.com/p TestNode: node is not installed",
		"want 1, got 2",
		"FAIL\texample.com/p",
		"ok  \texample.com/q",
		"FAIL: 2 packages, 2 failures, 1 skipped",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("report lacks %q:\n%s", want, got)
		}
	}
	if r.failed == 0 {
		t.Error("a failing run is reported as passing")
	}
}

func TestReportOfACleanRunSaysNoneSkipped(t *testing.T) {
	var out strings.Builder
	r := &report{out: &out, output: map[key][]string{}}
	_ = r.read(strings.NewReader(`{"Action":"pass","Package":"example.com/q","Elapsed":0.25}`))
	r.summary()
	if !strings.Contains(out.String(), "skipped: none") || r.failed != 0 {
		t.Fatalf("clean run:\n%s", out.String())
	}
}
