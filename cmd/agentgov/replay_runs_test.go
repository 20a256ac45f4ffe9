package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentgov/agentgov/replay"
)

func TestReplayRunsStopsTheRecordedAttack(t *testing.T) {
	var out bytes.Buffer
	if err := runReplay(context.Background(), "", filepath.Join("testdata", "agentdojo-banking-run.jsonl"), "stopped", replay.Perturbation{}, &out); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	if !strings.Contains(s, "| banking | 1/1 (100.0%)") || !strings.Contains(s, "pre_tool_call send_money") || !strings.Contains(s, `"args.recipient":["tool:read_file"]`) {
		t.Fatalf("report:\n%s", s)
	}
}

func TestReplayRunsRefusesBadInput(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct{ args, want string }{
		{"--format agentdojo", "one FILE"},
		{"--format csv x.jsonl", "--format must be agentdojo"},
		{"--format agentdojo --runs some x.jsonl", "--runs must be"},
		{"--format agentdojo " + filepath.Join(dir, "missing.jsonl"), "no such file"},
		{"--format agentdojo serve_test.go", "line 1"},
		{"--format agentdojo --perturb shouting x.jsonl", "neither constants nor a phrasing"},
		{"--format agentdojo --perturb todo,ignore x.jsonl", "one phrasing"},
	} {
		var out, errb bytes.Buffer
		code := run(context.Background(), append([]string{"replay-runs"}, strings.Fields(c.args)...), &out, &errb)
		if code == 0 || !strings.Contains(out.String()+errb.String(), c.want) {
			t.Errorf("%s: exit %d, output %q %q; want an error naming %q", c.args, code, out.String(), errb.String(), c.want)
		}
	}
}
