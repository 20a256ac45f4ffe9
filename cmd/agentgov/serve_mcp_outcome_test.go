package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// auditOf returns the records of the audit entries of one kind, read with
// the admin token.
func auditOf(t *testing.T, in *instance, kind string) []map[string]any {
	t.Helper()
	code, log := in.call("GET", "/v1/audit?limit=1000", "admin-tok", "")
	if code != 200 {
		t.Fatalf("GET /v1/audit: %d %v", code, log)
	}
	var out []map[string]any
	entries, _ := log["entries"].([]any)
	for _, e := range entries {
		if m, _ := e.(map[string]any); m["kind"] == kind {
			rec, _ := m["record"].(map[string]any)
			out = append(out, rec)
		}
	}
	return out
}

// The MCP gateway of a running server records the outcome of every call
// it forwards. An agent that knows the decision id of such a call (here
// taken from the audit log; a leaked trace or log line would do) posts
// its own outcome while the tool is still running, to say the call failed
// and cost nothing. It is refused with 403 forbidden, as docs/api.md says,
// and the outcome on record is the gateway's: the call succeeded.
func TestServeMCPAgentCannotSettleADecisionTheGatewaySettles(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	tools := sdk.NewServer(&sdk.Implementation{Name: "tools", Version: "1"}, nil)
	tools.AddTool(&sdk.Tool{Name: "lookup", Description: "looks something up", InputSchema: json.RawMessage(`{"type":"object"}`)},
		func(ctx context.Context, req *sdk.CallToolRequest) (*sdk.CallToolResult, error) {
			started <- struct{}{}
			select {
			case <-release:
			case <-ctx.Done():
			}
			return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: "found it"}}}, nil
		})
	up := httptest.NewServer(sdk.NewStreamableHTTPHandler(func(*http.Request) *sdk.Server { return tools }, nil))
	defer up.Close()
	in := startWithConfig(t, fmt.Sprintf("mcp:\n  trust_on_first_use: true\n  servers:\n    tools: {url: %q}\n", up.URL+"/"))
	os.WriteFile(filepath.Join(in.dir, "policies", "test.yaml"), []byte("version: agentgov/v1\nname: test\ndefault: allow\n"), 0o644)
	if code, m := in.call("POST", "/v1/policies/reload", "admin-tok", ""); code != 200 {
		t.Fatalf("reload: %d %v", code, m)
	}

	ctx := context.Background()
	cs, err := sdk.NewClient(&sdk.Implementation{Name: "agent", Version: "1"}, nil).Connect(ctx,
		&sdk.StreamableClientTransport{Endpoint: in.url + "/mcp/tools", HTTPClient: &http.Client{Transport: bearer{"a1-tok"}}}, nil)
	if err != nil {
		t.Fatalf("connect: %v\n%s", err, in.output())
	}
	defer cs.Close()
	// Deferred last, so it runs first: a test that fails with the tool
	// held would otherwise wait on it for ever when closing the client.
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	defer free()
	type answer struct {
		res *sdk.CallToolResult
		err error
	}
	done := make(chan answer, 1)
	go func() {
		res, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: "lookup", Arguments: map[string]any{"q": "x"}})
		done <- answer{res, err}
	}()
	select {
	case <-started:
	case a := <-done:
		t.Fatalf("the call ended before reaching the tool: %v %+v\n%s", a.err, a.res, in.output())
	}
	var id string
	for _, rec := range auditOf(t, in, "decision") {
		if d, _ := rec["decision"].(map[string]any); d != nil && d["effect"] == "allow" && strings.Contains(fmt.Sprint(rec["action"]), "lookup") {
			id, _ = d["id"].(string)
			if rec["settled_by"] != "mcp_gateway" {
				t.Fatalf("the gateway's decision does not name it as the one that settles it: %v", rec)
			}
		}
	}
	if id == "" {
		t.Fatalf("no allowed decision for lookup in the audit log: %v", auditOf(t, in, "decision"))
	}

	code, m := in.call("POST", "/v1/decisions/"+id+"/outcome", "a1-tok", `{"status":"error","error":"the agent says it failed","cost_usd":0}`)
	if e, _ := m["error"].(map[string]any); code != 403 || e["code"] != "forbidden" {
		t.Fatalf("the agent's outcome for the gateway's decision: %d %v; want 403 forbidden", code, m)
	}

	free()
	a := <-done
	if a.err != nil || a.res.IsError || !strings.Contains(textOf(a.res), "found it") {
		t.Fatalf("the call: %v %+v", a.err, a.res)
	}
	// The gateway records its outcome once the upstream has answered; the
	// call returns to the agent first.
	var outcomes []map[string]any
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if outcomes = auditOf(t, in, "outcome"); len(outcomes) > 0 {
			break
		}
	}
	if len(outcomes) != 1 {
		t.Fatalf("%d outcome entries, want the gateway's one: %v", len(outcomes), outcomes)
	}
	o, _ := outcomes[0]["outcome"].(map[string]any)
	if outcomes[0]["decision"] != id || o["status"] != "ok" || strings.Contains(fmt.Sprint(o), "the agent says") {
		t.Fatalf("recorded outcome %v; want the gateway's ok for %s", outcomes[0], id)
	}
}
