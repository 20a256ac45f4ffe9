package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Under policy_trust the MCP lock is signed: the server shows it so and
// refuses every re-pin through the API, saying how to re-pin offline.
func TestServeRefusesToRepinASignedLock(t *testing.T) {
	dir := t.TempDir()
	pol := filepath.Join(dir, "policies")
	os.MkdirAll(pol, 0o755)
	os.WriteFile(filepath.Join(pol, "test.yaml"), []byte(testPolicy), 0o644)
	writeKeyPair(t, filepath.Join(dir, "release"))
	bun := filepath.Join(dir, "p.tar.gz")
	if code, out := agentgov(t, "bundle", "build", pol, "-o", bun); code != 0 {
		t.Fatal(out)
	}
	if code, out := agentgov(t, "bundle", "sign", "--key", filepath.Join(dir, "release.key"), bun); code != 0 {
		t.Fatal(out)
	}
	lock := filepath.Join(dir, "mcp.lock")
	os.WriteFile(lock, []byte("# reviewed pins\n"), 0o644)
	if code, out := agentgov(t, "bundle", "sign", "--key", filepath.Join(dir, "release.key"), lock); code != 0 {
		t.Fatal(out)
	}
	cfgPath := filepath.Join(dir, "agentgov.yaml")
	os.WriteFile(cfgPath, []byte(fmt.Sprintf("tokens:\n  - {name: ops, role: admin, sha256: %s}\npolicy_trust: {keys: [%s]}\nmcp:\n  lock: %s\n  servers:\n    fs: {command: [/bin/true]}\n",
		sum("admin-tok"), filepath.Join(dir, "release.pub"), lock)), 0o644)
	in := &instance{t: t, dir: dir, data: filepath.Join(dir, "data")}
	in.args = []string{"serve", "--config", cfgPath, "--policies", bun, "--data", in.data, "--addr", freePort(t)}
	in.start()
	t.Cleanup(in.stop)

	code, body := in.call("GET", "/v1/mcp/servers", "admin-tok", "")
	servers, _ := body["servers"].([]any)
	if code != 200 || len(servers) != 1 || servers[0].(map[string]any)["signed"] != true || servers[0].(map[string]any)["transport"] != "stdio" {
		t.Fatalf("GET /v1/mcp/servers: %d %v", code, body)
	}
	code, body = in.call("POST", "/v1/mcp/servers/fs/tools/read_file/repin", "admin-tok", `{"reason":"reviewed"}`)
	if code != 409 || !strings.Contains(errMsg(body), "signed") || !strings.Contains(errMsg(body), "bundle sign") {
		t.Fatalf("a re-pin of a signed lock: %d %v", code, body)
	}
	if b, _ := os.ReadFile(lock); string(b) != "# reviewed pins\n" {
		t.Fatalf("the signed lock changed: %q", b)
	}
}
