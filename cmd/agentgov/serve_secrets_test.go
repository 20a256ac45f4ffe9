package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// Secrets and personal data an agent (or an upstream it calls) can put
// into a request. Each is found by agentgov's detectors; none may ever be
// stored in clear.
var atRest = map[string]string{
	"github token": "ghp_u8jzPde0IgxLd6GncfBAepfJBd0Kh8oOOL8d",
	"aws key":      "AKIAIOSFODNN7EXAMPLE",
	"stripe key":   "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
	"gitlab token": "glpat-xR7vK2pQ9mZ4wN8tY3bL",
	"slack token":  "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
	"e-mail":       "jane.doe@example.com",
	"card":         "4111111111111111",
	"other card":   "5555555555554444",
	"iban":         "DE89370400440532013000",
}

// A real `agentgov serve` is sent secrets and personal data in every field
// an agent controls, through every entry point: the decision API (argument
// keys and values, a card number as a JSON number, the resource, tool
// annotations, destination, content, session, trace headers, the
// Idempotency-Key), outcomes, sessions, the model proxy (every message of
// a conversation, the session header, and an upstream whose streamed error
// holds a key) and the MCP gateway (arguments, and an upstream tool whose
// error result holds a key). Then every byte of the data directory (the
// database, its -wal and -shm, everything) is searched: none of them may be
// found.
func TestServeStoresNoSecretInClear(t *testing.T) {
	llmUp := leakyModelUpstream(t)
	mcpUp := httptest.NewServer(sdk.NewStreamableHTTPHandler(func(*http.Request) *sdk.Server { return leakyToolServer() }, nil))
	defer mcpUp.Close()
	in := startWithConfig(t, fmt.Sprintf(`llm:
  openai: {base_url: %q, api_key_env: TEST_UPSTREAM_KEY}
  anthropic: {base_url: %q, api_key_env: TEST_UPSTREAM_KEY}
mcp:
  trust_on_first_use: true
  servers:
    leaky: {url: %q}
`, llmUp.URL+"/v1", llmUp.URL, mcpUp.URL), "TEST_UPSTREAM_KEY=upstream-key")
	os.WriteFile(filepath.Join(in.dir, "policies", "test.yaml"), []byte(`
version: agentgov/v1
name: test
default: allow
rules:
  - id: payments
    match: {tools: [pay]}
    effect: require_approval
    approval: {approvers: ["group:finance"], timeout: 30m}
`), 0o644)
	if code, m := in.call("POST", "/v1/policies/reload", "admin-tok", ""); code != 200 {
		t.Fatalf("reload: %d %v", code, m)
	}
	s := atRest

	t.Run("decision API", func(t *testing.T) {
		body := fmt.Sprintf(`{
			"tool": {"name": "lookup", "annotations": {"owner": %q}},
			"args": {%q: "the key is the name", "card": %s, "card_as_float": %s.0, "note": "charge %s", "nested": [{"to %s": %q}]},
			"resource": {"type": "customer", "id": %q, "permission": "read"},
			"destination": "api.example.com",
			"content": "use key %s please"
		}`, s["e-mail"], s["github token"], s["card"], s["other card"], s["iban"], s["e-mail"], s["slack token"], s["e-mail"], s["aws key"])
		code, d := in.call("POST", "/v1/decide", "a1-tok", body, "Idempotency-Key", s["github token"],
			"Traceparent", "00-"+s["aws key"], "X-Correlation-Id", s["e-mail"])
		if code != 200 || d["effect"] != "allow" {
			t.Fatalf("decide: %d %v", code, d)
		}
		// The retry replays the stored answer.
		if _, again := in.call("POST", "/v1/decide", "a1-tok", body, "Idempotency-Key", s["github token"]); again["id"] != d["id"] {
			t.Fatalf("retry: %v", again)
		}
		if code, m := in.call("POST", "/v1/decisions/"+d["id"].(string)+"/outcome", "a1-tok",
			fmt.Sprintf(`{"status":"error","error":"the API said: key %s is revoked; mail %s"}`, s["stripe key"], s["e-mail"])); code != 200 {
			t.Fatalf("outcome: %d %v", code, m)
		}
		// A session named after a secret is refused; so is creating one.
		if _, d := in.call("POST", "/v1/decide", "a1-tok", fmt.Sprintf(`{"session":"s-%s","tool":{"name":"lookup"}}`, s["gitlab token"])); d["effect"] != "deny" {
			t.Fatalf("a session named after a token: %v", d)
		}
		if code, m := in.call("POST", "/v1/sessions", "a1-tok", fmt.Sprintf(`{"id":%q}`, s["gitlab token"])); code != 400 {
			t.Fatalf("create a session named after a token: %d %v", code, m)
		}
	})

	t.Run("model proxy", func(t *testing.T) {
		chat := fmt.Sprintf(`{"model":"gpt-4o-mini","max_tokens":20,"messages":[
			{"role":"system","content":"the deploy key is %s"},
			{"role":"user","content":"bill card %s"},
			{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"mail","arguments":"{\"to\":\"%s\"}"}}]},
			{"role":"tool","tool_call_id":"c1","content":"sent with %s"},
			{"role":"user","content":[{"type":"text","text":"and IBAN %s"}]}]}`,
			s["aws key"], s["card"], s["e-mail"], s["slack token"], s["iban"])
		if code, body := proxyCall(t, in, "/llm/v1/chat/completions", chat); code != 200 {
			t.Fatalf("chat: %d %s", code, body)
		}
		if code, body := proxyCall(t, in, "/llm/v1/chat/completions", `{"model":"gpt-4o-mini","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`,
			"X-Agentgov-Session", "s-"+s["gitlab token"]); code != 403 {
			t.Fatalf("a session header named after a token: %d %s", code, body)
		}
		// The upstream's streamed error holds a key; it becomes the outcome.
		if code, body := proxyCall(t, in, "/llm/anthropic/v1/messages", `{"model":"claude-haiku-4-5","max_tokens":20,"stream":true,"messages":[{"role":"user","content":"hi"}]}`); code != 200 || !strings.Contains(body, "event: error") {
			t.Fatalf("anthropic stream: %d %s", code, body)
		}
	})

	t.Run("MCP gateway", func(t *testing.T) {
		ctx := context.Background()
		client := sdk.NewClient(&sdk.Implementation{Name: "e2e", Version: "1"}, nil)
		cs, err := client.Connect(ctx, &sdk.StreamableClientTransport{Endpoint: in.url + "/mcp/leaky", HTTPClient: &http.Client{Transport: bearer{"a1-tok"}}}, nil)
		if err != nil {
			t.Fatalf("connect: %v\n%s", err, in.output())
		}
		defer cs.Close()
		res, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: "lookup", Arguments: map[string]any{
			"token": s["github token"], s["e-mail"]: "as a key", "card": json.Number(s["card"]),
		}})
		if err != nil || res.IsError {
			t.Fatalf("lookup: %v %+v", err, res)
		}
		res, err = cs.CallTool(ctx, &sdk.CallToolParams{Name: "fail", Arguments: map[string]any{}})
		if err != nil || !res.IsError {
			t.Fatalf("fail: %v %+v", err, res)
		}
	})

	t.Run("approval tickets", func(t *testing.T) {
		_, d := in.call("POST", "/v1/decide", "a1-tok", fmt.Sprintf(`{"tool":{"name":"pay"},"args":{"card":%s,"to":%q,"memo":"key %s"}}`, s["card"], s["iban"], s["stripe key"]))
		if d["effect"] != "require_approval" {
			t.Fatalf("payment: %v", d)
		}
	})

	// Everything the server wrote is on disk once it has stopped.
	in.stop()
	err := filepath.WalkDir(in.data, func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for name, secret := range atRest {
			if i := bytes.Index(b, []byte(secret)); i >= 0 {
				t.Errorf("the %s is stored in clear in %s: …%q…", name, filepath.Base(path), b[max(0, i-60):min(len(b), i+len(secret)+20)])
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The search did see the records: what was masked is there, masked.
	db, _ := os.ReadFile(filepath.Join(in.data, "agentgov.db"))
	wal, _ := os.ReadFile(filepath.Join(in.data, "agentgov.db-wal"))
	if all := append(db, wal...); !bytes.Contains(all, []byte("[REDACTED:github_token]")) || !bytes.Contains(all, []byte("[REDACTED:credit_card]")) {
		t.Fatalf("no masked record found in the database: the search looked in the wrong place (files: %v)", dataFiles(t, in.data))
	}
}

func dataFiles(t *testing.T, dir string) []string {
	var out []string
	filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err == nil && !e.IsDir() {
			out = append(out, filepath.Base(path))
		}
		return nil
	})
	return out
}

func proxyCall(t *testing.T, in *instance, path, body string, headers ...string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", in.url+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer a1-tok")
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// leakyModelUpstream answers OpenAI chat calls, and Anthropic streams with
// an error event that quotes a key, as a provider's error might.
func leakyModelUpstream(t *testing.T) *httptest.Server {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if r.URL.Path == "/v1/messages" {
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprint(w, "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n\n")
			fmt.Fprintf(w, "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\",\"message\":\"key %s is not valid for %s\"}}\n\n", atRest["stripe key"], atRest["e-mail"])
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"id":"c1","object":"chat.completion","model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"done"},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15}}`)
	}))
	t.Cleanup(up.Close)
	return up
}

// leakyToolServer is an MCP server whose tools put secrets in what they
// return: lookup echoes its arguments, fail answers an error that quotes a
// key and an address.
func leakyToolServer() *sdk.Server {
	srv := sdk.NewServer(&sdk.Implementation{Name: "leaky", Version: "1"}, nil)
	sdk.AddTool(srv, &sdk.Tool{Name: "lookup", Description: "Look a record up."},
		func(ctx context.Context, _ *sdk.CallToolRequest, in map[string]any) (*sdk.CallToolResult, any, error) {
			b, _ := json.Marshal(in)
			return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: "found " + string(b)}}}, nil, nil
		})
	sdk.AddTool(srv, &sdk.Tool{Name: "fail", Description: "Fail."},
		func(ctx context.Context, _ *sdk.CallToolRequest, _ struct{}) (*sdk.CallToolResult, any, error) {
			return &sdk.CallToolResult{IsError: true, Content: []sdk.Content{&sdk.TextContent{
				Text: fmt.Sprintf("authentication failed with key %s (owner %s)", atRest["aws key"], atRest["e-mail"]),
			}}}, nil, nil
		})
	return srv
}
