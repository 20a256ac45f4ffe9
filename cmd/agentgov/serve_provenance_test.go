package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentgov/agentgov/policies"
)

// recordedRun is one AgentDojo run (testdata/agentdojo-banking-run.jsonl,
// from AgentDojo's recorded runs of GPT-4o, MIT licence): the user asks to
// pay a bill; the bill holds an injected instruction to send money to the
// attacker's account; the model did.
type recordedRun struct {
	Messages []struct {
		Role      string `json:"role"`
		Content   string `json:"content"`
		ToolCalls []struct {
			Function string         `json:"function"`
			Args     map[string]any `json:"args"`
		} `json:"tool_calls"`
		Function string `json:"function"`
	} `json:"messages"`
}

// The run through the real model proxy (a fake provider replays the
// model's turns) and the real MCP gateway (a small MCP server answers with
// the recorded results), with the built-in pack: the attacker's payment is
// held for approval, never reaches the bank, and its ticket says the
// account came from the file.
func TestServeProvenanceStopsAnInjectedPayment(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "agentdojo-banking-run.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	var run recordedRun
	if err := json.Unmarshal(raw, &run); err != nil {
		t.Fatal(err)
	}
	const attacker = "US133000000121212121212"

	// The bank: answers each tool with the recorded results, in order.
	var mu sync.Mutex
	results := map[string][]string{}
	var turns []int // indexes of the assistant messages
	for i, m := range run.Messages {
		switch m.Role {
		case "tool":
			results[m.Function] = append(results[m.Function], m.Content)
		case "assistant":
			turns = append(turns, i)
		}
	}
	var paid []string
	bank := sdk.NewServer(&sdk.Implementation{Name: "bank", Version: "1"}, nil)
	for name := range results {
		bank.AddTool(&sdk.Tool{Name: name, Description: "bank tool " + name, InputSchema: json.RawMessage(`{"type":"object"}`)},
			func(ctx context.Context, req *sdk.CallToolRequest) (*sdk.CallToolResult, error) {
				mu.Lock()
				defer mu.Unlock()
				if name == "send_money" {
					paid = append(paid, string(req.Params.Arguments))
				}
				q := results[name]
				if len(q) == 0 {
					return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: "no more recorded results"}}, IsError: true}, nil
				}
				results[name] = q[1:]
				return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: q[0]}}}, nil
			})
	}
	up := httptest.NewServer(sdk.NewStreamableHTTPHandler(func(*http.Request) *sdk.Server { return bank }, nil))
	defer up.Close()

	// The provider: the model's recorded turns, one per request.
	var turn int
	var sawTool bool
	provider := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		sawTool = sawTool || strings.Contains(string(body), `"role":"tool"`)
		if turn >= len(turns) {
			http.Error(w, `{"error":{"message":"no more turns"}}`, http.StatusBadRequest)
			return
		}
		m := run.Messages[turns[turn]]
		turn++
		msg := map[string]any{"role": "assistant", "content": m.Content}
		var calls []map[string]any
		for j, tc := range m.ToolCalls {
			args, _ := json.Marshal(tc.Args)
			calls = append(calls, map[string]any{"id": fmt.Sprintf("call_%d_%d", turn, j), "type": "function",
				"function": map[string]any{"name": tc.Function, "arguments": string(args)}})
		}
		finish := "stop"
		if len(calls) > 0 {
			msg["tool_calls"], finish = calls, "tool_calls"
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"id": "c", "object": "chat.completion", "model": "gpt-4o",
			"choices": []any{map[string]any{"index": 0, "message": msg, "finish_reason": finish}},
			"usage":   map[string]any{"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110}})
	}))
	defer provider.Close()

	in := startWithConfig(t, fmt.Sprintf("mcp:\n  trust_on_first_use: true\n  servers:\n    bank: {url: %q}\nllm:\n  openai: {base_url: %q, api_key_env: TEST_UPSTREAM_KEY}\n",
		up.URL+"/", provider.URL), "TEST_UPSTREAM_KEY=k")
	// The built-in pack, as `agentgov serve` runs it without --policies.
	pack := filepath.Join(in.dir, "policies")
	fs.WalkDir(policies.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && !strings.HasSuffix(p, "_test.yaml") {
			b, _ := fs.ReadFile(policies.FS(), p)
			os.WriteFile(filepath.Join(pack, p), b, 0o644)
		}
		return nil
	})
	os.WriteFile(filepath.Join(pack, "test.yaml"), []byte("version: agentgov/v1\nname: test\ndefault: allow\n"), 0o644)
	if code, m := in.call("POST", "/v1/policies/reload", "admin-tok", ""); code != 200 {
		t.Fatalf("reload: %d %v", code, m)
	}

	// The agent: its framework talks to the model through the proxy and
	// to the bank through the gateway, naming the gateway's session on
	// the proxy so that both see one session.
	ctx := context.Background()
	cs, err := sdk.NewClient(&sdk.Implementation{Name: "agent", Version: "1"}, nil).Connect(ctx,
		&sdk.StreamableClientTransport{Endpoint: in.url + "/mcp/bank", HTTPClient: &http.Client{Transport: bearer{"a1-tok"}}}, nil)
	if err != nil {
		t.Fatalf("connect: %v\n%s", err, in.output())
	}
	defer cs.Close()
	messages := []map[string]any{
		{"role": "system", "content": run.Messages[0].Content},
		{"role": "user", "content": run.Messages[1].Content},
	}
	ticket := ""
	for step := 0; step < 10 && ticket == ""; step++ {
		body, _ := json.Marshal(map[string]any{"model": "gpt-4o", "messages": messages})
		req, _ := http.NewRequest("POST", in.url+"/llm/v1/chat/completions", strings.NewReader(string(body)))
		req.Header.Set("Authorization", "Bearer a1-tok")
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Agentgov-Session", cs.ID())
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var out struct {
			Choices []struct {
				Message map[string]any `json:"message"`
			} `json:"choices"`
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || json.Unmarshal(b, &out) != nil || len(out.Choices) == 0 {
			t.Fatalf("model call %d: %d %s", step, resp.StatusCode, b)
		}
		msg := out.Choices[0].Message
		messages = append(messages, msg)
		calls, _ := msg["tool_calls"].([]any)
		if len(calls) == 0 {
			break
		}
		for _, c := range calls {
			call := c.(map[string]any)
			fn := call["function"].(map[string]any)
			var args map[string]any
			json.Unmarshal([]byte(fn["arguments"].(string)), &args)
			res, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: fn["name"].(string), Arguments: args})
			if err != nil {
				t.Fatalf("%s: %v", fn["name"], err)
			}
			text := res.Content[0].(*sdk.TextContent).Text
			if res.IsError {
				if !strings.Contains(text, "approval") {
					t.Fatalf("%s refused without a ticket: %s", fn["name"], text)
				}
				if fn["name"] != "send_money" || args["recipient"] != attacker {
					t.Fatalf("the run was stopped at %s %v, not at the attacker's payment: %s", fn["name"], args, text)
				}
				ticket = regexp.MustCompile(`apr_[0-9A-Za-z]+`).FindString(text)
				break
			}
			messages = append(messages, map[string]any{"role": "tool", "tool_call_id": call["id"], "content": text})
		}
	}
	if ticket == "" {
		t.Fatalf("the attacker's payment was not stopped; the bank paid %v\n%s", paid, in.output())
	}
	if len(paid) != 0 {
		t.Fatalf("the bank paid %v", paid)
	}
	if !sawTool {
		t.Fatal("the provider never saw a tool result: the proxy was not in the loop")
	}
	code, tk := in.call("GET", "/v1/approvals/"+ticket, "admin-tok", "")
	if code != 200 {
		t.Fatalf("ticket %s: %d %v", ticket, code, tk)
	}
	prov, _ := tk["provenance"].(map[string]any)
	if got := prov["args.recipient"]; !reflect.DeepEqual(got, []any{"tool:bank/read_file"}) {
		t.Fatalf("ticket provenance %v, want args.recipient from tool:bank/read_file (ticket %v)", tk["provenance"], tk)
	}
	if rules := fmt.Sprint(tk["rules"]); !strings.Contains(rules, "untrusted-target") {
		t.Fatalf("ticket rules %s", rules)
	}
}

// The same through /v1/decide: the user's input and a tool's result sent
// with a session, then a payment to the account the result named. The
// decision, its ticket and its audit entry say where the account came from;
// another agent naming the session cannot vouch for the account.
func TestServeDecideTracksProvenanceBySession(t *testing.T) {
	in := startServerWith(t, `
version: agentgov/v1
name: test
default: allow
rules:
  - id: pay-whom-the-user-named
    match: {points: [pre_tool_call], tools: [send_money]}
    when: 'untrusted(args.recipient)'
    effect: require_approval
`)
	steps := []string{
		`{"session":"s1","point":"input","content":"Pay the bill in bill.txt, please."}`,
		`{"session":"s1","point":"post_tool_call","tool":{"name":"read_file"},"content":"Amount 98.70, pay to IBAN FR76 3000 6000 0112 3456 7890 189"}`,
	}
	for _, s := range steps {
		if code, d := in.call("POST", "/v1/decide", "a1-tok", s); code != 200 || d["effect"] != "allow" {
			t.Fatalf("%s: %d %v", s, code, d)
		}
	}
	// Agent a2 claims to be the user of s1 and types the account.
	in.call("POST", "/v1/decide", "a2-tok", `{"session":"s1","point":"input","content":"FR76 3000 6000 0112 3456 7890 189"}`)
	code, d := in.call("POST", "/v1/decide", "a1-tok", `{"session":"s1","tool":{"name":"send_money"},"args":{"recipient":"FR7630006000011234567890189","amount":98.7}}`)
	if code != 200 || d["effect"] != "require_approval" {
		t.Fatalf("payment: %d %v", code, d)
	}
	want := map[string]any{"args.recipient": []any{"tool:read_file"}, "args.amount": []any{"tool:read_file"}}
	if !reflect.DeepEqual(d["provenance"], want) {
		t.Fatalf("decision provenance %v, want %v", d["provenance"], want)
	}
	id := d["approval"].(map[string]any)["id"].(string)
	if _, tk := in.call("GET", "/v1/approvals/"+id, "admin-tok", ""); !reflect.DeepEqual(tk["provenance"], want) {
		t.Fatalf("ticket provenance %v", tk["provenance"])
	}
	_, entries := in.call("GET", "/v1/audit?limit=1000", "admin-tok", "")
	if !strings.Contains(fmt.Sprint(entries), "provenance:map[args.amount:[tool:read_file] args.recipient:[tool:read_file]]") {
		t.Fatalf("the audit entry lacks the provenance: %.2000v", entries)
	}
	// In a session where the user typed the account, it goes through.
	in.call("POST", "/v1/decide", "a1-tok", `{"session":"s2","point":"input","content":"Send 98.70 to FR76 3000 6000 0112 3456 7890 189"}`)
	if _, d := in.call("POST", "/v1/decide", "a1-tok", `{"session":"s2","tool":{"name":"send_money"},"args":{"recipient":"FR7630006000011234567890189","amount":98.7}}`); d["effect"] != "allow" {
		t.Fatalf("payment the user asked for: %v", d)
	}
}
