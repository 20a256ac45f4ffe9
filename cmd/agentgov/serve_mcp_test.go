package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

type bearer struct{ token string }

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return http.DefaultTransport.RoundTrip(r)
}

// serve exposes a configured MCP server at /mcp/{name}: the real npm
// filesystem server behind it, the Go SDK client in front with an agent
// token, every call decided by policy and audited.
func TestServeMCPGateway(t *testing.T) {
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node is not installed")
	}
	fsServer, _ := filepath.Abs("../../mcp/testdata/node/node_modules/@modelcontextprotocol/server-filesystem/dist/index.js")
	if _, err := os.Stat(fsServer); err != nil {
		t.Skip("npm packages not installed; run: npm ci --prefix mcp/testdata/node")
	}
	files := t.TempDir()
	os.WriteFile(filepath.Join(files, "notes.txt"), []byte("governed hello"), 0o644)
	os.WriteFile(filepath.Join(files, "id_rsa"), []byte("-----BEGIN OPENSSH PRIVATE KEY-----"), 0o600)
	in := startWithConfig(t, fmt.Sprintf("mcp:\n  trust_on_first_use: true\n  servers:\n    fs: {command: [node, %q, %q]}\n", fsServer, files))
	os.WriteFile(filepath.Join(in.dir, "policies", "test.yaml"), []byte(`
version: agentgov/v1
name: test
default: allow
rules:
  - id: no-keys
    match: {tools: ["fs/*"]}
    when: 'args_text.contains("id_rsa")'
    effect: deny
    reason: key material stays on the host
`), 0o644)
	if code, m := in.call("POST", "/v1/policies/reload", "admin-tok", ""); code != 200 {
		t.Fatalf("reload: %d %v", code, m)
	}

	if code, _ := in.call("POST", "/mcp/fs", "", `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`); code != 401 {
		t.Fatalf("MCP endpoint without a token: %d, want 401", code)
	}
	ctx := context.Background()
	client := sdk.NewClient(&sdk.Implementation{Name: "e2e", Version: "1"}, nil)
	cs, err := client.Connect(ctx, &sdk.StreamableClientTransport{Endpoint: in.url + "/mcp/fs", HTTPClient: &http.Client{Transport: bearer{"a1-tok"}}}, nil)
	if err != nil {
		t.Fatalf("connect: %v\n%s", err, in.output())
	}
	defer cs.Close()
	res, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: "read_text_file", Arguments: map[string]any{"path": filepath.Join(files, "notes.txt")}})
	if err != nil || res.IsError || !strings.Contains(fmt.Sprint(res.Content[0]), "governed hello") {
		t.Fatalf("allowed call: %v %+v", err, res)
	}
	res, err = cs.CallTool(ctx, &sdk.CallToolParams{Name: "read_text_file", Arguments: map[string]any{"path": filepath.Join(files, "id_rsa")}})
	if err != nil || !res.IsError || !strings.Contains(fmt.Sprint(res.Content[0]), "key material stays on the host") {
		t.Fatalf("denied call: %v %+v", err, res)
	}
	_, entries := in.call("GET", "/v1/audit?limit=1000", "admin-tok", "")
	all := fmt.Sprint(entries)
	if !strings.Contains(all, "no-keys") || !strings.Contains(all, "read_text_file") {
		t.Fatalf("calls not in the audit log: %.500s", all)
	}
}
