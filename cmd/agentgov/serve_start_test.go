package main

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// serveOnce runs `agentgov serve args...` in dir, expecting it to fail,
// and returns its exit code, standard output and standard error.
func serveOnce(t *testing.T, dir string, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, append([]string{"serve"}, args...)...)
	cmd.Dir = dir
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	ee, ok := err.(*exec.ExitError)
	if !ok {
		t.Fatalf("serve %v: %v (want it to fail)\n%s%s", args, err, out.String(), errOut.String())
	}
	return ee.ExitCode(), out.String(), errOut.String()
}

// A start that fails leaves no trace: with its port taken, serve creates
// no data directory and shows no admin token for a server that never
// served.
func TestServeOnAPortInUseLeavesNoTrace(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dir := t.TempDir()
	code, out, errOut := serveOnce(t, dir, "--addr", ln.Addr().String())
	if code != 1 || !strings.Contains(errOut, "listen on "+ln.Addr().String()) {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	if strings.Contains(out, "admin token") {
		t.Fatalf("a server that never served showed an admin token:\n%s", out)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Fatalf("the failed start left %v", left)
	}
}

// The variants: a start that fails once the data directory is open (here
// on a malformed MCP lock) keeps no admin token and records no start; a
// second server on a live data directory is refused, and the first one's
// log gains no start of it.
func TestServeThatFailsToStartRecordsNothing(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	lock := filepath.Join(dir, "mcp.lock")
	os.WriteFile(lock, []byte("this is not a lock\n"), 0o644)
	cfg := filepath.Join(dir, "agentgov.yaml")
	os.WriteFile(cfg, []byte("mcp:\n  lock: "+lock+"\n  servers:\n    fs: {command: [node, x.js]}\n"), 0o644)
	code, out, errOut := serveOnce(t, dir, "--config", cfg, "--data", data, "--addr", freePort(t))
	if code != 1 || !strings.Contains(errOut, "mcp lock") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	if strings.Contains(out, "admin token") {
		t.Fatalf("a server that never served showed an admin token:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(data, "admin.token")); err == nil {
		t.Fatal("a server that never served kept an admin token")
	}
	if k := auditKinds(t, data); len(k) != 0 {
		t.Fatalf("a server that never served wrote %v to its log", k)
	}

	in := startServer(t)
	starts := func() int {
		t.Helper()
		_, m := in.call("GET", "/v1/audit?limit=1000", "admin-tok", "")
		n := 0
		for _, e := range m["entries"].([]any) {
			if e.(map[string]any)["kind"] == "policy_load" {
				n++
			}
		}
		return n
	}
	before := starts()
	code, out, errOut = serveOnce(t, in.dir, "--config", filepath.Join(in.dir, "agentgov.yaml"), "--data", in.data, "--addr", freePort(t))
	if code != 1 || !strings.Contains(errOut, "another") && !strings.Contains(errOut, "lock") {
		t.Fatalf("a second server on a live data directory: exit %d, stderr %q", code, errOut)
	}
	if strings.Contains(out, "admin token") {
		t.Fatalf("the refused server showed an admin token:\n%s", out)
	}
	if after := starts(); after != before {
		t.Fatalf("policy_load entries went from %d to %d for a server that never started", before, after)
	}
}
