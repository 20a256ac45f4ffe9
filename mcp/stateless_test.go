package mcp

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentgov/agentgov/action"
)

// statelessClient speaks protocol 2026-07-28 by hand: no initialize, no
// session, every request carrying its revision, the client's info and
// capabilities, and the Mcp-Method and Mcp-Name headers.
type statelessClient struct {
	t     *testing.T
	url   string
	token string
	n     int
}

func (c *statelessClient) params(params map[string]any) map[string]any {
	if params == nil {
		params = map[string]any{}
	}
	meta, _ := params["_meta"].(map[string]any)
	if meta == nil {
		meta = map[string]any{}
	}
	meta[metaProtocol] = RevisionStateless
	meta[metaClientInfo] = map[string]any{"name": "stateless-test", "version": "1"}
	meta[metaClientCaps] = map[string]any{}
	params["_meta"] = meta
	return params
}

// post sends method with params; headers override or, given as "", drop
// the ones the client would send.
func (c *statelessClient) post(method string, params map[string]any, headers ...string) (int, map[string]any) {
	c.t.Helper()
	c.n++
	body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": c.n, "method": method, "params": c.params(params)})
	req, _ := http.NewRequest("POST", c.url, strings.NewReader(string(body)))
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set(headerProtocol, RevisionStateless)
	req.Header.Set(headerMethod, method)
	if name, ok := params["name"].(string); ok {
		req.Header.Set(headerName, name)
	}
	if uri, ok := params["uri"].(string); ok {
		req.Header.Set(headerName, uri)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] == "" {
			req.Header.Del(headers[i])
		} else {
			req.Header.Set(headers[i], headers[i+1])
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		c.t.Fatalf("%s: %d, not JSON: %s", method, resp.StatusCode, raw)
	}
	if resp.StatusCode == 200 && m["id"] != float64(c.n) {
		c.t.Fatalf("%s: the answer's id is %v, want the request's %d", method, m["id"], c.n)
	}
	return resp.StatusCode, m
}

func rpcResult(m map[string]any) map[string]any {
	r, _ := m["result"].(map[string]any)
	return r
}

func textIn(r map[string]any) string {
	var b strings.Builder
	cs, _ := r["content"].([]any)
	for _, c := range cs {
		if cm, _ := c.(map[string]any); cm != nil {
			fmt.Fprint(&b, cm["text"])
		}
	}
	return b.String()
}

// A client of each revision through the same gateway: the 2025-11-25 one
// with the Go SDK (initialize, a session), the 2026-07-28 one stateless.
// Both are governed alike.
func TestBothRevisionsThroughOneGateway(t *testing.T) {
	ts, dec := httpGateway(t, nil)

	old := httpSDKClient(t, ts.URL, nil)
	res, err := old.CallTool(context.Background(), &sdk.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "from 2025-11-25"}})
	if err != nil || res.IsError || resultString(res) != "from 2025-11-25" {
		t.Fatalf("2025-11-25 call: %v %+v", err, res)
	}

	c := &statelessClient{t: t, url: ts.URL, token: "agent-token"}
	code, m := c.post("server/discover", nil)
	vs, _ := rpcResult(m)["supportedVersions"].([]any)
	if code != 200 || len(vs) != 2 || vs[0] != RevisionStateless || vs[1] != RevisionSession || rpcResult(m)["capabilities"] == nil {
		t.Fatalf("server/discover: %d %v", code, m)
	}
	code, m = c.post("tools/list", nil)
	if tools, _ := rpcResult(m)["tools"].([]any); code != 200 || len(tools) == 0 || rpcResult(m)["resultType"] != "complete" {
		t.Fatalf("tools/list: %d %v", code, m)
	}
	code, m = c.post("tools/call", map[string]any{"name": "echo", "arguments": map[string]any{"text": "from 2026-07-28"}})
	if code != 200 || textIn(rpcResult(m)) != "from 2026-07-28" || rpcResult(m)["resultType"] != "complete" {
		t.Fatalf("2026-07-28 call: %d %v", code, m)
	}
	code, m = c.post("tools/call", map[string]any{"name": "forbidden"})
	if code != 200 || rpcResult(m)["isError"] != true || !strings.Contains(textIn(rpcResult(m)), "deleting is not allowed") {
		t.Fatalf("a denied 2026-07-28 call: %d %v", code, m)
	}

	// The Go SDK's own client of the stateless revision: server/discover,
	// the headers, the _meta, all its own.
	modern := sdkClientOf(t, ts.URL, nil, RevisionStateless)
	if modern.InitializeResult().ProtocolVersion != RevisionStateless {
		t.Fatalf("the SDK client settled on %q", modern.InitializeResult().ProtocolVersion)
	}
	res, err = modern.CallTool(context.Background(), &sdk.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "from the SDK, stateless"}})
	if err != nil || res.IsError || resultString(res) != "from the SDK, stateless" {
		t.Fatalf("the SDK's 2026-07-28 call: %v %+v", err, res)
	}

	// Every call was decided, for the same agent: the session client's in
	// its session, the stateless clients' in the agent's stateless one.
	var sessions []string
	for _, a := range dec.seen(action.PreToolCall, "echo") {
		if a.Agent.ID != "http-agent" {
			t.Errorf("decided for %q", a.Agent.ID)
		}
		if a.Args["text"] != nil {
			sessions = append(sessions, a.Session)
		}
	}
	if len(sessions) != 3 || strings.HasPrefix(sessions[0], "mcp-stateless-") || sessions[1] != sessions[2] || !strings.HasPrefix(sessions[1], "mcp-stateless-") {
		t.Errorf("sessions of the three calls = %v", sessions)
	}
}

// Headers an intermediary routes on must say what the body says: a
// client that names a harmless tool in Mcp-Name and calls another in the
// body is refused, with 400, before anything is decided or forwarded.
func TestStatelessHeadersMustMatchTheBody(t *testing.T) {
	var rec *memRecorder
	ts, dec := httpGateway(t, func(c *Config) { rec = c.Recorder.(*memRecorder) })
	c := &statelessClient{t: t, url: ts.URL, token: "agent-token"}
	if code, m := c.post("tools/list", nil); code != 200 {
		t.Fatalf("a well-formed request: %d %v", code, m)
	}
	decided := len(dec.seen(action.PreToolCall, "forbidden"))
	call := map[string]any{"name": "forbidden"}
	for _, tc := range []struct {
		name    string
		method  string
		params  map[string]any
		headers []string
		want    string
	}{
		{"name mismatch", "tools/call", call, []string{headerName, "echo"}, "does not match the body's"},
		{"method mismatch", "tools/call", call, []string{headerMethod, "tools/list"}, "does not match the body's method"},
		{"no method header", "tools/call", call, []string{headerMethod, ""}, "Mcp-Method header is missing"},
		{"no name header", "tools/call", call, []string{headerName, ""}, "Mcp-Name header is missing"},
		{"uri mismatch", "resources/read", map[string]any{"uri": "test://secret"}, []string{headerName, "test://readme"}, "does not match"},
		{"name on a method without one", "tools/list", nil, []string{headerName, "echo"}, "names nothing"},
		{"a session id", "tools/list", nil, []string{sessionHeader, "mcp-x"}, "has no sessions"},
		{"initialize", "initialize", nil, nil, "not a method of protocol 2026-07-28"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, m := c.post(tc.method, tc.params, tc.headers...)
			if code/100 != 4 || !strings.Contains(fmt.Sprint(m["error"]), tc.want) {
				t.Fatalf("%d %v; want a 4xx saying %q", code, m, tc.want)
			}
		})
	}
	if got := refusals(rec, sideClient, "does not match the body"); len(got) < 3 {
		t.Errorf("lying headers audited %d times as mcp.refused, want each", len(got))
	}
	if got := dec.seen(action.PreToolCall, "forbidden"); len(got) != decided {
		t.Fatalf("a refused request was decided: %v", got)
	}

	// The session revision's clients may send the headers too, and are
	// held to them.
	raw := &rawHTTP{t: t, url: ts.URL}
	resp := raw.do("POST", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`)
	raw.sid = resp.Header.Get(sessionHeader)
	resp.Body.Close()
	if code, body := raw.status("POST", `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"forbidden"}}`, headerName, "echo"); code != 400 || !strings.Contains(body, "does not match") {
		t.Fatalf("a 2025-11-25 request with a lying Mcp-Name: %d %s", code, body)
	}
}

func TestStatelessMetaIsRequired(t *testing.T) {
	ts, _ := httpGateway(t, nil)
	for _, tc := range []struct{ body, want string }{
		{`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`, "params._meta is missing"},
		{`{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"x"}}}}`, "lacks io.modelcontextprotocol/clientCapabilities"},
		{`{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2025-11-25","io.modelcontextprotocol/clientInfo":{},"io.modelcontextprotocol/clientCapabilities":{}}}}`, `params._meta says`},
	} {
		req, _ := http.NewRequest("POST", ts.URL, strings.NewReader(tc.body))
		req.Header.Set("Authorization", "Bearer agent-token")
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(headerProtocol, RevisionStateless)
		req.Header.Set(headerMethod, "tools/list")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 400 || !strings.Contains(string(body), tc.want) {
			t.Errorf("%s: %d %s; want 400 saying %q", tc.body, resp.StatusCode, body, tc.want)
		}
	}
}

// In the stateless revision an approval is an input-required result: the
// ticket is its requestState, the client retries the same call with it,
// is told to wait while the ticket is pending, and goes through once an
// approver has approved.
func TestStatelessApprovalIsAnInputRequiredResult(t *testing.T) {
	ts, dec := httpGateway(t, nil)
	c := &statelessClient{t: t, url: ts.URL, token: "agent-token"}
	pay := func(state string) map[string]any {
		p := map[string]any{"name": "pay", "arguments": map[string]any{"amount": 500}}
		if state != "" {
			p["requestState"] = state
			p["inputResponses"] = map[string]any{}
		}
		code, m := c.post("tools/call", p)
		if code != 200 {
			t.Fatalf("pay: %d %v", code, m)
		}
		return rpcResult(m)
	}
	r := pay("")
	ticket, _ := r["requestState"].(string)
	if r["resultType"] != "input_required" || !strings.HasPrefix(ticket, "apr_") {
		t.Fatalf("a call needing approval = %v; want an input-required result carrying the ticket", r)
	}
	if r = pay(ticket); r["resultType"] != "input_required" || r["requestState"] != ticket {
		t.Fatalf("retry while pending = %v; want to wait on the same ticket", r)
	}
	dec.Approve(context.Background(), ticket, "bob", "")
	if r = pay(ticket); r["resultType"] != "complete" || textIn(r) != "paid 500" {
		t.Fatalf("retry after approval = %v", r)
	}
	seen := dec.seen(action.PreToolCall, "pay")
	if last := seen[len(seen)-1]; last.ApprovalID != ticket || last.Session != seen[0].Session {
		t.Fatalf("the retry was decided as %+v; want under the ticket, in the first call's session", last)
	}
}
