package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentgov/agentgov/errcode"
	"github.com/agentgov/agentgov/errcode/errcodetest"
	"github.com/agentgov/agentgov/llmproxy"
	"github.com/agentgov/agentgov/mcp"
	"github.com/agentgov/agentgov/mcp/pin"
	"github.com/agentgov/agentgov/models"
)

// Bounds of the mounts in these tests, small so that an oversized body is
// cheap to send.
const (
	testMCPMax = 64 << 10
	testLLMMax = 64 << 10
)

// mountAll adds an MCP gateway (fs) and the model proxy to e's server, as
// serve does. No upstream is ever reached by these tests: every request
// they send is refused before.
func (e *env) mountAll() {
	e.t.Helper()
	g, err := mcp.New(mcp.Config{
		Server: "fs", Decider: e.eng, Recorder: e.log, Pins: pin.MemoryPins(nil), MaxMessageBytes: testMCPMax,
		Dial: func(ctx context.Context) (sdk.Connection, error) { return nil, errors.New("no upstream in this test") },
	})
	if err != nil {
		e.t.Fatal(err)
	}
	mh := g.HTTPHandler(context.Background(), e.srv.Identify)
	e.t.Cleanup(func() { mh.Close() })
	llm, err := llmproxy.New(llmproxy.Config{
		MaxRequestBytes: testLLMMax, Recorder: e.log,
		Getenv: func(k string) string {
			return map[string]string{"OPENAI_API_KEY": "sk-test", "ANTHROPIC_API_KEY": "sk-ant-test"}[k]
		},
	}, e.eng, models.Shipped(), e.srv.Identify)
	if err != nil {
		e.t.Fatal(err)
	}
	e.srv.Mount(map[string]http.Handler{"fs": mh}, llm)
}

// answer is an error answer as a client of one mount reads it.
type answer struct {
	status  int
	header  http.Header
	code    string // the code the body carries, when its shape has room for it
	message string
	rpc     int64 // the JSON-RPC code, on /mcp
}

// mount is one surface of the server and how its error answers read.
type mount struct {
	name         string
	method, path string
	wrongMethod  string
	// ok is a well-formed body; malformed is not JSON; wrongType is JSON
	// with a member of the wrong type.
	ok, malformed, wrongType string
	max                      int
	// wrongRole is a known token whose role may not call the mount.
	wrongRole string
	headers   []string
	read      func(t *testing.T, status int, h http.Header, body []byte) answer
}

func readV1(t *testing.T, status int, h http.Header, body []byte) answer {
	var b struct {
		Error struct{ Code, Message string }
	}
	if err := json.Unmarshal(body, &b); err != nil {
		t.Fatalf("%d: not the API's error shape: %s", status, body)
	}
	return answer{status: status, header: h, code: b.Error.Code, message: b.Error.Message}
}

func readRPC(t *testing.T, status int, h http.Header, body []byte) answer {
	var b struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Error   struct {
			Code    int64
			Message string
			Data    map[string]string
		}
	}
	if err := json.Unmarshal(body, &b); err != nil || b.JSONRPC != "2.0" || b.Error.Code == 0 {
		t.Fatalf("%d: not a JSON-RPC error: %s", status, body)
	}
	return answer{status: status, header: h, code: b.Error.Data["agentgov/code"], message: b.Error.Message, rpc: b.Error.Code}
}

func readOpenAI(t *testing.T, status int, h http.Header, body []byte) answer {
	var b struct {
		Error struct{ Message, Type, Code string }
	}
	if err := json.Unmarshal(body, &b); err != nil || b.Error.Type == "" {
		t.Fatalf("%d: not an OpenAI error: %s", status, body)
	}
	if want := errcode.Code(b.Error.Code).OpenAIType(); b.Error.Type != want {
		t.Errorf("%d: OpenAI type %q for code %q, want %q", status, b.Error.Type, b.Error.Code, want)
	}
	return answer{status: status, header: h, code: b.Error.Code, message: b.Error.Message}
}

func readAnthropic(t *testing.T, status int, h http.Header, body []byte) answer {
	var b struct {
		Type  string
		Error struct{ Type, Message string }
	}
	if err := json.Unmarshal(body, &b); err != nil || b.Type != "error" || b.Error.Type == "" {
		t.Fatalf("%d: not an Anthropic error: %s", status, body)
	}
	// The shape has no room for the code: the header carries it.
	code := errcode.Code(h.Get(errcode.Header))
	if want := code.AnthropicType(); b.Error.Type != want {
		t.Errorf("%d: Anthropic type %q for code %q, want %q", status, b.Error.Type, code, want)
	}
	return answer{status: status, header: h, code: string(code), message: b.Error.Message}
}

var mounts = []mount{
	{name: "v1", method: "POST", path: "/v1/decide", wrongMethod: "GET",
		ok: `{"agent":{"id":"a1"},"tool":{"name":"read_file"}}`, malformed: `{"tool": {`, wrongType: `{"tool": "read_file"}`,
		max: 1 << 20, wrongRole: "fin-tok", read: readV1},
	{name: "mcp", method: "POST", path: "/mcp/fs", wrongMethod: "PUT",
		ok:        `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}`,
		malformed: `{"jsonrpc":"2.0","id":1,`, wrongType: `{"jsonrpc":"2.0","id":1,"method":5}`,
		max: testMCPMax, wrongRole: "admin-tok", headers: []string{"Accept", "application/json, text/event-stream"}, read: readRPC},
	{name: "openai", method: "POST", path: "/llm/v1/chat/completions", wrongMethod: "GET",
		ok:        `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`,
		malformed: `{"model":`, wrongType: `{"model":"gpt-4o-mini","messages":{"role":"user"}}`,
		max: testLLMMax, wrongRole: "admin-tok", read: readOpenAI},
	{name: "anthropic", method: "POST", path: "/llm/anthropic/v1/messages", wrongMethod: "PUT",
		ok:        `{"model":"claude-haiku-4-5","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`,
		malformed: `{"model":`, wrongType: `{"model":"claude-haiku-4-5","max_tokens":"5","messages":[{"role":"user","content":"hi"}]}`,
		max: testLLMMax, wrongRole: "admin-tok", read: readAnthropic},
}

// TestEveryMountRefusesAlike plays the same bad requests against every
// mount: each answers in its own shape, with the same status and code.
func TestEveryMountRefusesAlike(t *testing.T) {
	e := start(t)
	e.mountAll()
	for _, m := range mounts {
		for _, tc := range []struct {
			name          string
			method, token string
			body          string
			status        int
			code          errcode.Code
		}{
			{"no token", m.method, "", m.ok, 401, errcode.Unauthorized},
			{"unknown token", m.method, "not-a-token", m.ok, 401, errcode.Unauthorized},
			{"wrong role", m.method, m.wrongRole, m.ok, 403, errcode.Forbidden},
			{"wrong method", m.wrongMethod, "a1-tok", m.ok, 405, errcode.MethodNotAllowed},
			{"wrong method without a token", m.wrongMethod, "", m.ok, 405, errcode.MethodNotAllowed},
			{"malformed body", m.method, "a1-tok", m.malformed, 400, errcode.BadRequest},
			{"wrong type", m.method, "a1-tok", m.wrongType, 400, errcode.BadRequest},
			{"oversized body", m.method, "a1-tok", `{"x":"` + strings.Repeat("a", m.max) + `"}`, 413, errcode.TooLarge},
		} {
			t.Run(m.name+"/"+tc.name, func(t *testing.T) {
				a := e.send(m, tc.method, tc.token, tc.body)
				if a.status != tc.status || a.header.Get(errcode.Header) != string(tc.code) {
					t.Fatalf("%d %s (%q), want %d %s", a.status, a.header.Get(errcode.Header), a.message, tc.status, tc.code)
				}
				if a.code != string(tc.code) {
					t.Errorf("the body says %q, want %q", a.code, tc.code)
				}
				if m.name == "mcp" && a.rpc != tc.code.RPC() && !(tc.code == errcode.BadRequest && (a.rpc == errcode.RPCParseError || a.rpc == errcode.RPCInvalidRequest)) {
					t.Errorf("JSON-RPC code %d, want %d", a.rpc, tc.code.RPC())
				}
				if tc.status == 405 && a.header.Get("Allow") == "" {
					t.Error("405 without an Allow header")
				}
				if a.message == "" {
					t.Error("no message")
				}
				if g := errcodetest.GoTypeName(a.message); g != "" {
					t.Errorf("the message %q shows the Go type %q", a.message, g)
				}
			})
		}
	}
}

func (e *env) send(m mount, method, token, body string) answer {
	e.t.Helper()
	req, _ := http.NewRequest(method, e.url+m.path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(m.headers); i += 2 {
		req.Header.Set(m.headers[i], m.headers[i+1])
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return m.read(e.t, resp.StatusCode, resp.Header, raw)
}

// TestNoV1MessageShowsAGoType sends every /v1 endpoint that reads a body
// members of the wrong JSON type: each is refused naming the member in
// JSON's words.
func TestNoV1MessageShowsAGoType(t *testing.T) {
	e := start(t)
	_, d := e.call("POST", "/v1/decide", "a1-tok", `{"tool":{"name":"read_file"}}`)
	id, _ := d["id"].(string)
	for _, tc := range []struct{ method, path, token, body string }{
		{"POST", "/v1/decide", "a1-tok", `{"tool": "read_file"}`},
		{"POST", "/v1/decide", "a1-tok", `{"tool": {"name": ["read_file"]}}`},
		{"POST", "/v1/decide", "a1-tok", `{"tool":{"name":"read_file"},"estimate": {"tokens": "many"}}`},
		{"POST", "/v1/decide", "a1-tok", `{"tool":{"name":"read_file"},"agent": {"labels": ["x"]}}`},
		{"POST", "/v1/decide", "a1-tok", `["read_file"]`},
		{"POST", "/v1/decisions/" + id + "/outcome", "a1-tok", `{"status": "ok", "tokens": "5"}`},
		{"POST", "/v1/decisions/" + id + "/outcome", "a1-tok", `{"status": 1}`},
		{"POST", "/v1/sessions", "a1-tok", `{"id": 5}`},
		{"POST", "/v1/kill", "admin-tok", `{"scope": ["agent"], "target": "a1", "reason": "x"}`},
		{"POST", "/v1/kill", "admin-tok", `{"scope": "agent", "target": 1, "reason": "x"}`},
		{"POST", "/v1/budgets", "admin-tok", `{"id": "b", "scope": {"org": 5}, "period": "daily", "limits": {"calls": 1}}`},
		{"POST", "/v1/budgets", "admin-tok", `{"id": "b", "scope": {}, "period": "daily", "limits": []}`},
		{"POST", "/v1/budgets", "admin-tok", `{"id": "b", "period": "daily", "limits": {"calls": 1}, "thresholds": {"soft": "high"}}`},
		{"POST", "/v1/approvals/apr_x/approve", "admin-tok", `{"note": 5}`},
	} {
		status, m := e.call(tc.method, tc.path, tc.token, tc.body)
		msg := errMsg(m)
		if status != 400 || msg == "" {
			t.Errorf("%s %s %s: %d %v, want 400 naming the member", tc.method, tc.path, tc.body, status, m)
			continue
		}
		if g := errcodetest.GoTypeName(msg); g != "" {
			t.Errorf("%s %s %s: %q shows the Go type %q", tc.method, tc.path, tc.body, msg, g)
		}
	}
}

// TestRoutesAnswer405WithTheMethodsTheyTake: a path the API serves, asked
// with another method, is 405 naming the methods it takes, not 404.
func TestRoutesAnswer405WithTheMethodsTheyTake(t *testing.T) {
	e := start(t)
	for _, tc := range []struct{ method, path, allow string }{
		{"GET", "/v1/decide", "POST"},
		{"DELETE", "/v1/kill", "GET, POST, HEAD"},
		{"POST", "/v1/budgets/b1", "GET, PUT, DELETE, HEAD"},
		{"PUT", "/healthz", "GET, HEAD"},
		{"POST", "/metrics", "GET, HEAD"},
	} {
		req, _ := http.NewRequest(tc.method, e.url+tc.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, m := decodeAnswer(t, tc.path, resp.StatusCode, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 405 || resp.Header.Get("Allow") != tc.allow || m["error"].(map[string]any)["code"] != "method_not_allowed" {
			t.Errorf("%s %s: %d Allow %q %v, want 405 Allow %q", tc.method, tc.path, resp.StatusCode, resp.Header.Get("Allow"), m, tc.allow)
		}
	}
	if status, m := e.call("GET", "/v1/nothing-here", "admin-tok", ""); status != 404 || m["error"].(map[string]any)["code"] != "not_found" {
		t.Errorf("unknown path: %d %v", status, m)
	}
}
