// Package a2anodetest runs the A2A JavaScript SDK's agent and client of
// a2agateway/testdata/node, for the tests of the gateway and of the
// server around it.
package a2anodetest

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// Dir is the directory of the npm packages and scripts.
func Dir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "testdata", "node")
}

// Need skips t when node or the npm packages are not installed.
func Need(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node is not installed")
	}
	if _, err := os.Stat(filepath.Join(Dir(), "node_modules", "@a2a-js", "sdk")); err != nil {
		t.Skip("npm packages not installed; run: npm ci --prefix a2agateway/testdata/node")
	}
}

// StartAgent runs the SDK's server (agent.mjs) as an upstream agent until
// the test ends, and returns its base URL.
func StartAgent(t testing.TB) string {
	t.Helper()
	cmd := exec.Command("node", "agent.mjs")
	cmd.Dir = Dir()
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	port, ok := strings.CutPrefix(strings.TrimSpace(line), "listening ")
	if err != nil || !ok {
		t.Fatalf("the node agent did not start: %q %v", line, err)
	}
	return "http://127.0.0.1:" + port
}
