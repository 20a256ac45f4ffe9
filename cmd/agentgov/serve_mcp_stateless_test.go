package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A client of protocol 2026-07-28 against the running server: a call that
// needs approval is an input-required result whose requestState is the
// ticket; the ticket lets only the very call it was given for through,
// once an approver has approved it.
func TestServeMCPStatelessApprovalIsBoundToTheCall(t *testing.T) {
	files := t.TempDir()
	in := startWithConfig(t, fmt.Sprintf("mcp:\n  trust_on_first_use: true\n  servers:\n    fs: {command: [node, %q, %q]}\n", fsServer(t), files))
	os.WriteFile(filepath.Join(in.dir, "policies", "test.yaml"), []byte(`
version: agentgov/v1
name: test
default: allow
rules:
  - id: writes
    match: {tools: ["fs/write_file"], points: [pre_tool_call]}
    effect: require_approval
    reason: writes need a person
`), 0o644)
	if code, m := in.call("POST", "/v1/policies/reload", "admin-tok", ""); code != 200 {
		t.Fatalf("reload: %d %v", code, m)
	}
	n := 0
	write := func(path, state string) map[string]any {
		t.Helper()
		n++
		params := map[string]any{"name": "write_file", "arguments": map[string]any{"path": path, "content": "approved text"},
			"_meta": map[string]any{
				"io.modelcontextprotocol/protocolVersion":    "2026-07-28",
				"io.modelcontextprotocol/clientInfo":         map[string]any{"name": "stateless-e2e", "version": "1"},
				"io.modelcontextprotocol/clientCapabilities": map[string]any{},
			}}
		if state != "" {
			params["requestState"] = state
		}
		body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": n, "method": "tools/call", "params": params})
		req, _ := http.NewRequest("POST", in.url+"/mcp/fs", strings.NewReader(string(body)))
		for k, v := range map[string]string{"Authorization": "Bearer a1-tok", "Content-Type": "application/json", "Accept": "application/json, text/event-stream",
			"Mcp-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": "write_file"} {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		var m struct {
			Result map[string]any `json:"result"`
		}
		if err := json.Unmarshal(raw, &m); err != nil || resp.StatusCode != 200 || m.Result == nil {
			t.Fatalf("write %s: %d %s\n%s", path, resp.StatusCode, raw, in.output())
		}
		return m.Result
	}
	a, b := filepath.Join(files, "a.txt"), filepath.Join(files, "b.txt")
	r := write(a, "")
	ticket, _ := r["requestState"].(string)
	if r["resultType"] != "input_required" || ticket == "" {
		t.Fatalf("a write needing approval = %v", r)
	}
	if code, m := in.call("POST", "/v1/approvals/"+ticket+"/approve", "admin-tok", `{"note":"ok"}`); code != 200 {
		t.Fatalf("approve: %d %v", code, m)
	}
	// The approved ticket offered with another call: nothing written.
	if r = write(b, ticket); r["resultType"] == "complete" && r["isError"] != true {
		t.Fatalf("another call under the ticket = %v", r)
	}
	if _, err := os.Stat(b); err == nil {
		t.Fatal("the ticket of one write let another through")
	}
	// The call it was given for goes through.
	if r = write(a, ticket); r["resultType"] != "complete" || r["isError"] == true {
		t.Fatalf("the approved call = %v\n%s", r, in.output())
	}
	if got, err := os.ReadFile(a); err != nil || string(got) != "approved text" {
		t.Fatalf("the approved write: %q %v", got, err)
	}
}
