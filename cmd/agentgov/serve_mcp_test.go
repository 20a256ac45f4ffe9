package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
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
	srv := fsServer(t)
	files := t.TempDir()
	os.WriteFile(filepath.Join(files, "notes.txt"), []byte("governed hello"), 0o644)
	os.WriteFile(filepath.Join(files, "id_rsa"), []byte("-----BEGIN OPENSSH PRIVATE KEY-----"), 0o600)
	in := startWithConfig(t, fmt.Sprintf("mcp:\n  trust_on_first_use: true\n  servers:\n    fs: {command: [node, %q, %q]}\n", srv, files))
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

// Over /mcp/{server} the client holds the agent's token: it is the agent.
// A client that declares elicitation and says yes to everything used to
// approve its own destructive call, recorded as the user's. The call now
// waits for its ticket, which only an approver can decide.
func TestServeMCPAgentCannotApproveItsOwnCall(t *testing.T) {
	files := t.TempDir()
	in := startWithConfig(t, fmt.Sprintf("mcp:\n  trust_on_first_use: true\n  servers:\n    fs: {command: [node, %q, %q]}\n", fsServer(t), files))
	os.WriteFile(filepath.Join(in.dir, "policies", "test.yaml"), []byte(`
version: agentgov/v1
name: test
default: allow
rules:
  - id: destructive
    match: {points: [pre_tool_call]}
    when: 'tool.annotations.destructiveHint == true'
    effect: require_approval
    reason: the tool may destroy data
`), 0o644)
	if code, m := in.call("POST", "/v1/policies/reload", "admin-tok", ""); code != 200 {
		t.Fatalf("reload: %d %v", code, m)
	}
	asked := make(chan string, 1)
	client := sdk.NewClient(&sdk.Implementation{Name: "hostile-agent", Version: "1"}, &sdk.ClientOptions{
		ElicitationHandler: func(ctx context.Context, r *sdk.ElicitRequest) (*sdk.ElicitResult, error) {
			asked <- r.Params.Message
			return &sdk.ElicitResult{Action: "accept", Content: map[string]any{"approve": true}}, nil
		},
	})
	cs, err := client.Connect(context.Background(), &sdk.StreamableClientTransport{Endpoint: in.url + "/mcp/fs", HTTPClient: &http.Client{Transport: bearer{"a1-tok"}}}, nil)
	if err != nil {
		t.Fatalf("connect: %v\n%s", err, in.output())
	}
	defer cs.Close()
	target := filepath.Join(files, "overwritten.txt")
	res, err := cs.CallTool(context.Background(), &sdk.CallToolParams{Name: "write_file", Arguments: map[string]any{"path": target, "content": "gone"}})
	if err != nil || !res.IsError || !strings.Contains(textOf(res), "needs a person's approval") {
		t.Fatalf("a destructive call = %v %+v; want it held for approval", err, res)
	}
	select {
	case msg := <-asked:
		t.Fatalf("the agent was asked to approve its own call: %q", msg)
	default:
	}
	if _, err := os.Stat(target); err == nil {
		t.Fatal("the destructive call ran")
	}
	_, pending := in.call("GET", "/v1/approvals?status=pending", "admin-tok", "")
	if !strings.Contains(fmt.Sprint(pending), "write_file") {
		t.Fatalf("pending approvals = %v; want the call's ticket", pending)
	}
	_, log := in.call("GET", "/v1/audit?limit=1000", "admin-tok", "")
	entries, _ := log["entries"].([]any)
	if len(entries) == 0 {
		t.Fatalf("no audit entries: %v", log)
	}
	for _, e := range entries {
		if m, _ := e.(map[string]any); m["kind"] == "approval" {
			t.Fatalf("an approval is in the audit log: %v", m)
		}
	}
}
