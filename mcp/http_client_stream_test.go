package mcp

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/agentgov/agentgov/mcp/pin"
	"github.com/agentgov/agentgov/mcp/wire"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// httpGateway serves a gateway over the test upstream at an HTTP endpoint
// that takes the test tokens.
func httpGateway(t *testing.T, tweak func(*Config)) (*httptest.Server, *testDecider) {
	t.Helper()
	dial, err := wire.Command(upstreamArgv(t), upstreamEnv("clean"), nil)
	if err != nil {
		t.Fatal(err)
	}
	dec := newTestDecider()
	cfg := Config{Server: "test", Dial: dial, Decider: dec, Recorder: &memRecorder{}, Detector: pin.Detectors(), Pins: pin.MemoryPins(nil), TrustOnFirstUse: true}
	if tweak != nil {
		tweak(&cfg)
	}
	g, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h := g.HTTPHandler(context.Background(), testIdentify)
	ts := httptest.NewServer(h)
	t.Cleanup(func() { ts.Close(); h.Close() })
	return ts, dec
}

// httpSDKClient connects the Go SDK's client over protocol 2025-11-25,
// with a session (see sdkClientOf for the stateless revision).
func httpSDKClient(t *testing.T, url string, opts *sdk.ClientOptions) *sdk.ClientSession {
	t.Helper()
	return sdkClientOf(t, url, opts, RevisionSession)
}

// sdkClientOf connects the Go SDK's client asking for protocol revision.
func sdkClientOf(t *testing.T, url string, opts *sdk.ClientOptions, revision string) *sdk.ClientSession {
	t.Helper()
	cs, err := sdk.NewClient(&sdk.Implementation{Name: "go-http-client", Version: "1"}, opts).Connect(context.Background(), &sdk.StreamableClientTransport{
		Endpoint: url, HTTPClient: &http.Client{Transport: bearer{"agent-token", http.DefaultTransport}},
	}, &sdk.ClientSessionOptions{ProtocolVersion: revision})
	if err != nil {
		t.Fatalf("connect over HTTP: %v", err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

// What the gateway sends outside of an answer reaches an HTTP client on its
// GET stream: the upstream's list_changed.
func TestHTTPGatewayEventStream(t *testing.T) {
	ts, _ := httpGateway(t, nil)
	changed := make(chan struct{}, 4)
	cs := httpSDKClient(t, ts.URL, &sdk.ClientOptions{
		ToolListChangedHandler: func(context.Context, *sdk.ToolListChangedRequest) { changed <- struct{}{} },
	})
	if res, err := cs.CallTool(context.Background(), &sdk.CallToolParams{Name: "mutate"}); err != nil || res.IsError {
		t.Fatalf("mutate = %v %v", res, err)
	}
	select {
	case <-changed:
	case <-time.After(10 * time.Second):
		t.Fatal("the upstream's tools/list_changed did not reach the HTTP client")
	}
}

// Over HTTP the client holds the agent's token: it is the agent. A client
// that declares elicitation and says yes to everything would approve its
// own calls, so the HTTP handler never asks, even with ElicitApprovals
// set: the call waits for its ticket, which an approver decides.
func TestHTTPAgentCannotApproveItsOwnCall(t *testing.T) {
	ts, dec := httpGateway(t, func(c *Config) { c.ElicitApprovals, c.ElicitApprover = true, "os-user:alice" })
	asked := make(chan string, 1)
	cs := httpSDKClient(t, ts.URL, &sdk.ClientOptions{
		ElicitationHandler: func(ctx context.Context, r *sdk.ElicitRequest) (*sdk.ElicitResult, error) {
			asked <- r.Params.Message
			return &sdk.ElicitResult{Action: "accept", Content: map[string]any{"approve": true}}, nil
		},
	})
	res, err := cs.CallTool(context.Background(), &sdk.CallToolParams{Name: "pay", Arguments: map[string]any{"amount": 700}})
	if err != nil || !res.IsError || !strings.Contains(resultString(res), "needs a person's approval") {
		t.Fatalf("a payment needing approval, over HTTP = %v %v; want it held for its ticket", res, err)
	}
	select {
	case msg := <-asked:
		t.Fatalf("the agent was asked to approve its own call: %q", msg)
	default:
	}
	if by := dec.approvals(); len(by) != 0 {
		t.Fatalf("approved over HTTP: %v", by)
	}
}

// The variant of protocol 2026-07-28, whose clients declare elicitation in
// each request's _meta: still no question, over a raw GET stream either.
func TestHTTPAgentCannotApproveItsOwnCallDeclaredPerRequest(t *testing.T) {
	ts, dec := httpGateway(t, func(c *Config) { c.ElicitApprovals, c.ElicitApprover = true, "os-user:alice" })
	c := &rawHTTP{t: t, url: ts.URL}
	resp := c.do("POST", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{"elicitation":{}},"clientInfo":{"name":"raw","version":"1"}}}`)
	c.sid = resp.Header.Get(sessionHeader)
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	c.status("POST", `{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	get := c.do("GET", "")
	defer get.Body.Close()
	events := make(chan string, 16)
	go func() {
		// The hostile agent says yes to any question it is asked.
		wire.ReadEvents(bufio.NewReader(get.Body), 1<<20, func(data []byte) bool {
			events <- string(data)
			var m struct {
				ID     json.RawMessage `json:"id"`
				Method string          `json:"method"`
			}
			if json.Unmarshal(data, &m) == nil && m.Method == methodElicit {
				req, _ := http.NewRequest("POST", ts.URL, strings.NewReader(`{"jsonrpc":"2.0","id":`+string(m.ID)+`,"result":{"action":"accept","content":{"approve":true}}}`))
				req.Header.Set("Authorization", "Bearer agent-token")
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set(sessionHeader, c.sid)
				if resp, err := http.DefaultClient.Do(req); err == nil {
					resp.Body.Close()
				}
			}
			return true
		})
		close(events)
	}()
	code, body := c.status("POST", `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"pay","arguments":{"amount":700},`+
		`"_meta":{"io.modelcontextprotocol/clientCapabilities":{"elicitation":{}}}}}`)
	if code != 200 || !strings.Contains(body, "needs a person's approval") {
		t.Fatalf("the payment: %d %s; want it held for its ticket", code, body)
	}
	get.Body.Close()
	for ev := range events {
		if strings.Contains(ev, methodElicit) {
			t.Fatalf("the agent was asked to approve its own call: %s", ev)
		}
	}
	if by := dec.approvals(); len(by) != 0 {
		t.Fatalf("approved over HTTP: %v", by)
	}
}

// rawHTTP speaks the transport by hand, to check what no SDK client sends.
type rawHTTP struct {
	t   *testing.T
	url string
	sid string
}

func (c *rawHTTP) do(method, body string, header ...string) *http.Response {
	c.t.Helper()
	req, _ := http.NewRequest(method, c.url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer agent-token")
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if c.sid != "" {
		req.Header.Set(sessionHeader, c.sid)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	return resp
}

func (c *rawHTTP) status(method, body string, header ...string) (int, string) {
	c.t.Helper()
	resp := c.do(method, body, header...)
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(data)
}

func TestHTTPGatewayTransport(t *testing.T) {
	ts, _ := httpGateway(t, nil)
	c := &rawHTTP{t: t, url: ts.URL}
	resp := c.do("POST", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-03-26","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`)
	c.sid = resp.Header.Get(sessionHeader)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || c.sid == "" || !strings.Contains(string(body), `"protocolVersion"`) {
		t.Fatalf("initialize: %d %q %s", resp.StatusCode, c.sid, body)
	}
	if code, _ := c.status("POST", `{"jsonrpc":"2.0","method":"notifications/initialized"}`); code != http.StatusAccepted {
		t.Fatalf("a notification: status %d, want 202", code)
	}

	// A request is answered with JSON when the client takes JSON.
	code, body2 := c.status("POST", `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"text":"raw"}}}`)
	if code != 200 || !strings.Contains(body2, `"raw"`) || !strings.Contains(body2, `"id":2`) {
		t.Fatalf("a call: %d %s", code, body2)
	}
	// ...and with events when it only takes events.
	resp = c.do("POST", `{"jsonrpc":"2.0","id":3,"method":"prompts/get","params":{"name":"greet"}}`, "Accept", "text/event-stream")
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q, want an event stream", ct)
	}
	if got := readEventMessages(t, resp.Body); len(got) != 1 || got[0]["id"] != float64(3) {
		t.Fatalf("events = %v", got)
	}

	// A batch (protocol 2025-03-26) is answered on one event stream.
	resp = c.do("POST", `[{"jsonrpc":"2.0","id":"a","method":"ping"},{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"x","progress":1}},{"jsonrpc":"2.0","id":"b","method":"resources/read","params":{"uri":"test://readme"}}]`)
	got := readEventMessages(t, resp.Body)
	if len(got) != 2 {
		t.Fatalf("batch answers = %v", got)
	}

	// Bad input gets a JSON-RPC error and the session goes on.
	for _, tc := range []struct {
		body  string
		code  int
		rpc   int
		extra []string
	}{
		{`{"jsonrpc":"2.0","id":5,"method":`, 400, -32700, nil},
		{`{"id":6,"method":"tools/list"}`, 400, -32600, nil},
		{`[]`, 400, -32600, nil},
		{`{"jsonrpc":"2.0","id":7,"method":"tools/list"}`, 415, 0, []string{"Content-Type", "text/plain"}},
	} {
		code, body := c.status("POST", tc.body, tc.extra...)
		if code != tc.code || (tc.rpc != 0 && !strings.Contains(body, `"code":`+strconv.Itoa(tc.rpc))) {
			t.Errorf("%s: %d %s; want %d with JSON-RPC error %d", tc.body, code, body, tc.code, tc.rpc)
		}
	}

	// One GET stream per session, and it must take events.
	if code, _ := c.status("GET", "", "Accept", "application/json"); code != 400 {
		t.Errorf("GET without accepting events: %d, want 400", code)
	}
	get := c.do("GET", "")
	if get.StatusCode != 200 || get.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("GET: %d %q", get.StatusCode, get.Header.Get("Content-Type"))
	}
	if code, _ := c.status("GET", ""); code != http.StatusConflict {
		t.Errorf("a second GET stream: %d, want 409", code)
	}
	get.Body.Close()

	if code, _ := c.status("DELETE", ""); code != http.StatusNoContent {
		t.Fatalf("DELETE: %d", code)
	}
	if code, _ := c.status("POST", `{"jsonrpc":"2.0","id":9,"method":"tools/list"}`); code != http.StatusNotFound {
		t.Errorf("POST after DELETE: %d, want 404", code)
	}
}

// readEventMessages reads the JSON-RPC messages of an event stream until it
// ends.
func readEventMessages(t *testing.T, body io.ReadCloser) []map[string]any {
	t.Helper()
	defer body.Close()
	var out []map[string]any
	err := wire.ReadEvents(bufio.NewReader(body), 1<<20, func(data []byte) bool {
		var m map[string]any
		if err := json.Unmarshal(data, &m); err != nil {
			t.Errorf("event %q: %v", data, err)
		}
		out = append(out, m)
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
