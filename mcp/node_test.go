package mcp

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/mcp/pin"
	"github.com/agentgov/agentgov/mcp/wire"
)

const nodeDir = "testdata/node"

// needNode skips a test when the npm packages it runs are not installed.
func needNode(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node is not installed")
	}
	if _, err := os.Stat(filepath.Join(nodeDir, "node_modules", "@modelcontextprotocol", "sdk")); err != nil {
		t.Skip("npm packages not installed; run: npm ci --prefix mcp/testdata/node")
	}
}

func nodeServer(t *testing.T, pkg string, args ...string) []string {
	abs, err := filepath.Abs(filepath.Join(nodeDir, "node_modules", "@modelcontextprotocol", pkg, "dist", "index.js"))
	if err != nil {
		t.Fatal(err)
	}
	return append([]string{"node", abs}, args...)
}

func fsFixture(t *testing.T) string {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("governed hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestRealServersBehindStdioGateway(t *testing.T) {
	needNode(t)
	dir := fsFixture(t)
	for _, tc := range []struct {
		name, tool string
		argv       []string
		args       map[string]any
		want       string
	}{
		{"filesystem", "read_text_file", nodeServer(t, "server-filesystem", dir), map[string]any{"path": filepath.Join(dir, "notes.txt")}, "governed hello"},
		{"everything", "echo", nodeServer(t, "server-everything"), map[string]any{"message": "through the gateway"}, "through the gateway"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dial, err := wire.Command(tc.argv, os.Environ(), nil)
			if err != nil {
				t.Fatal(err)
			}
			h := startDial(t, tc.name, dial, nil, nil)
			names := toolNames(t, h.session)
			if !slices.Contains(names, tc.tool) {
				t.Fatalf("tools through the gateway = %v; want %s", names, tc.tool)
			}
			if f := h.rec.kind("mcp.finding"); len(f) > 0 {
				t.Errorf("clean tools of the real %s server were flagged: %v", tc.name, f)
			}
			pinned, ok := h.pins.Server(tc.name)
			if !ok || len(pinned) != len(names) {
				t.Errorf("trust on first use pinned %d tools, the client sees %d", len(pinned), len(names))
			}
			res := h.call(t, tc.tool, tc.args)
			if res.IsError || !strings.Contains(resultString(res), tc.want) {
				t.Fatalf("%s = %v %q", tc.tool, res.IsError, resultString(res))
			}
			if len(calls(h.dec.seen(action.PreToolCall, tc.tool))) != 1 || len(h.rec.kind("mcp.call")) != 1 {
				t.Errorf("the call was not decided and audited once")
			}
		})
	}
}

// TestPinDiffScanRealServers fetches the real servers' tools the way `agentgov mcp pin` does.
func TestPinDiffScanRealServers(t *testing.T) {
	needNode(t)
	dial, err := wire.Command(nodeServer(t, "server-everything"), os.Environ(), nil)
	if err != nil {
		t.Fatal(err)
	}
	tools, err := FetchTools(context.Background(), dial)
	if err != nil {
		t.Fatal(err)
	}
	if len(tools) < 5 {
		t.Fatalf("everything server lists %d tools", len(tools))
	}
	pinned := map[string]pin.ToolDef{}
	for _, tool := range tools {
		pinned[tool.Name] = tool
	}
	again, err := FetchTools(context.Background(), dial)
	if err != nil {
		t.Fatal(err)
	}
	if d := pin.Diff("everything", pinned, again, pin.Detectors()); len(d) != 0 {
		t.Errorf("the same server drifted from itself: %v", d)
	}
	if f := pin.Scan("everything", tools, map[string][]string{"filesystem": {"read_file", "write_file"}}, pin.Detectors()); len(f) != 0 {
		t.Errorf("clean tools flagged: %v", f)
	}
}

// TestTypeScriptClientStdio drives the gateway as a real process (this
// test binary in gateway mode) from the TypeScript SDK's client.
func TestTypeScriptClientStdio(t *testing.T) {
	needNode(t)
	exe, _ := os.Executable()
	cmd := exec.Command("node", "client.mjs", "stdio", exe, "echo", `{"message":"from typescript"}`)
	cmd.Dir = nodeDir
	srv, _ := filepath.Abs(nodeServer(t, "server-everything")[1])
	cmd.Env = append(os.Environ(), "AGENTGOV_TEST_GATEWAY=node "+srv)
	checkTSOutput(t, cmd, "from typescript")
}

func checkTSOutput(t *testing.T, cmd *exec.Cmd, want string) {
	t.Helper()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("typescript client: %v\n%s", err, stderr.String())
	}
	var got struct {
		Tools  []string `json:"tools"`
		Result struct {
			Content []struct {
				Text string `json:"text"`
			} `json:"content"`
			IsError bool `json:"isError"`
		} `json:"result"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("typescript client printed %q: %v", out, err)
	}
	if !slices.Contains(got.Tools, "echo") || got.Result.IsError || len(got.Result.Content) == 0 || !strings.Contains(got.Result.Content[0].Text, want) {
		t.Fatalf("typescript client through the gateway: %s", out)
	}
}

// runTestGateway is the gateway process of TestTypeScriptClientStdio.
func runTestGateway(upstream string) {
	dial, err := wire.Command(strings.Fields(upstream), os.Environ(), os.Stderr)
	if err != nil {
		panic(err)
	}
	g, err := New(Config{Server: "everything", Dial: dial, Decider: newTestDecider(), Pins: pin.MemoryPins(nil), TrustOnFirstUse: true, Detector: pin.Detectors()})
	if err != nil {
		panic(err)
	}
	g.Serve(context.Background(), wire.NewStdioConn(os.Stdin, os.Stdout, nil, 0), Identity{Agent: action.Agent{ID: "ts"}})
}

func testIdentify(r *http.Request) (action.Agent, action.Principal, error) {
	switch r.Header.Get("Authorization") {
	case "Bearer agent-token":
		return action.Agent{ID: "http-agent"}, action.Principal{User: "alice"}, nil
	case "Bearer other-token":
		return action.Agent{ID: "other-agent"}, action.Principal{}, nil
	}
	return action.Agent{}, action.Principal{}, errors.New("missing or unknown token")
}

type bearer struct {
	token string
	next  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}

func startHTTP(t *testing.T, server string, dial Dialer) (*httptest.Server, *testDecider, *memRecorder) {
	t.Helper()
	dec, rec := newTestDecider(), &memRecorder{}
	g, err := New(Config{Server: server, Dial: dial, Decider: dec, Recorder: rec, Detector: pin.Detectors(), Pins: pin.MemoryPins(nil), TrustOnFirstUse: true})
	if err != nil {
		t.Fatal(err)
	}
	h := g.HTTPHandler(context.Background(), testIdentify)
	ts := httptest.NewServer(h)
	t.Cleanup(func() { ts.Close(); h.Close() })
	return ts, dec, rec
}

func TestHTTPGatewayGoClient(t *testing.T) {
	dial, err := wire.Command(upstreamArgv(t), upstreamEnv("clean"), nil)
	if err != nil {
		t.Fatal(err)
	}
	ts, dec, rec := startHTTP(t, "test", dial)

	resp, err := http.Post(ts.URL, "application/json", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("request without a token: status %d, want 401", resp.StatusCode)
	}

	client := sdk.NewClient(&sdk.Implementation{Name: "go-http-client", Version: "1"}, nil)
	cs, err := client.Connect(context.Background(), &sdk.StreamableClientTransport{
		Endpoint: ts.URL, HTTPClient: &http.Client{Transport: bearer{"agent-token", http.DefaultTransport}},
	}, nil)
	if err != nil {
		t.Fatalf("connect over HTTP: %v", err)
	}
	defer cs.Close()
	names := toolNames(t, cs)
	if slices.Contains(names, "forbidden") || !slices.Contains(names, "echo") {
		t.Fatalf("tools over HTTP = %v", names)
	}
	res, err := cs.CallTool(context.Background(), &sdk.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "over http"}})
	if err != nil || res.IsError || resultString(res) != "over http" {
		t.Fatalf("echo over HTTP = %v %v", res, err)
	}
	res, err = cs.CallTool(context.Background(), &sdk.CallToolParams{Name: "forbidden"})
	if err != nil || !res.IsError {
		t.Fatalf("denied call over HTTP = %v %v", res, err)
	}
	pre := calls(dec.seen(action.PreToolCall, "echo"))
	if len(pre) != 1 || pre[0].Agent.ID != "http-agent" || pre[0].Principal.User != "alice" {
		t.Fatalf("the call was decided for %+v; want the identity of the token", pre)
	}
	if len(rec.kind("mcp.call")) != 2 {
		t.Errorf("audit records = %v", rec.kind("mcp.call"))
	}
}

func TestHTTPSessionsAreBoundToTheirAgent(t *testing.T) {
	dial, err := wire.Command(upstreamArgv(t), upstreamEnv("clean"), nil)
	if err != nil {
		t.Fatal(err)
	}
	ts, _, _ := startHTTP(t, "test", dial)
	post := func(token, sid, body string) *http.Response {
		req, _ := http.NewRequest("POST", ts.URL, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		if sid != "" {
			req.Header.Set("Mcp-Session-Id", sid)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	resp := post("agent-token", "", `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("a session opened without initialize: status %d, want 400", resp.StatusCode)
	}
	resp = post("agent-token", "", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`)
	resp.Body.Close()
	sid := resp.Header.Get("Mcp-Session-Id")
	if resp.StatusCode != http.StatusOK || sid == "" {
		t.Fatalf("initialize: status %d, session %q", resp.StatusCode, sid)
	}
	resp = post("other-token", sid, `{"jsonrpc":"2.0","id":2,"method":"tools/list"}`)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("another agent using the session: status %d, want 404", resp.StatusCode)
	}
}

func TestTypeScriptClientHTTP(t *testing.T) {
	needNode(t)
	dial, err := wire.Command(nodeServer(t, "server-everything"), os.Environ(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ts, _, _ := startHTTP(t, "everything", dial)
	cmd := exec.Command("node", "client.mjs", "http", ts.URL, "echo", `{"message":"typescript over http"}`, "agent-token")
	cmd.Dir = nodeDir
	checkTSOutput(t, cmd, "typescript over http")
}
