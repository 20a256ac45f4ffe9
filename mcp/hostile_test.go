package mcp

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/errcode/errcodetest"
	"github.com/agentgov/agentgov/govern"
	"github.com/agentgov/agentgov/mcp/pin"
	"github.com/agentgov/agentgov/mcp/wire"
	"github.com/agentgov/agentgov/policies"
)

// The helpers here let a test play the attacker on the gateway's real
// transports: a client that writes raw JSON-RPC lines to the stdio
// gateway, and an upstream that speaks streamable HTTP by hand.

// handUpstream is a streamable-HTTP MCP server written by hand, so that a
// test can make it say what no SDK server would. It answers initialize,
// tools/list (from tools) and tools/call (with "ran NAME"), every answer
// on an event stream; hook sees each request first and may answer it
// itself, hold it, or send other messages on its stream first.
type handUpstream struct {
	tools []map[string]any
	hook  func(ev *handEvents, req *jsonrpc.Request) bool // true: it answered

	mu       sync.Mutex
	received []jsonrpc.Message
	deletes  int // sessions ended with DELETE
}

// handEvents is the event stream answering one request; ctx ends when
// the gateway gives the request up.
type handEvents struct {
	ctx context.Context
	w   http.ResponseWriter
	rc  *http.ResponseController
}

func (e *handEvents) send(m jsonrpc.Message) {
	data, err := wire.EncodeMessage(m)
	if err != nil {
		panic(err)
	}
	fmt.Fprintf(e.w, "event: message\ndata: %s\n\n", data)
	e.rc.Flush()
}

func (e *handEvents) result(id jsonrpc.ID, v any) {
	raw, _ := json.Marshal(v)
	e.send(&jsonrpc.Response{ID: id, Result: raw})
}

func (u *handUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodDelete:
		u.mu.Lock()
		u.deletes++
		u.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
		return
	case http.MethodPost:
	default:
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	body, _ := io.ReadAll(r.Body)
	m, err := wire.DecodeMessage(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	u.mu.Lock()
	u.received = append(u.received, m)
	u.mu.Unlock()
	req, ok := m.(*jsonrpc.Request)
	if !ok || !req.IsCall() {
		w.WriteHeader(http.StatusAccepted)
		return
	}
	w.Header().Set("Content-Type", wire.MediaEventStream)
	w.Header().Set(sessionHeader, "hand-session")
	w.WriteHeader(http.StatusOK)
	ev := &handEvents{ctx: r.Context(), w: w, rc: http.NewResponseController(w)}
	if u.hook != nil && u.hook(ev, req) {
		return
	}
	switch req.Method {
	case methodInitialize:
		ev.result(req.ID, map[string]any{
			"protocolVersion": "2025-06-18",
			"capabilities":    map[string]any{"tools": map[string]any{}, "resources": map[string]any{}, "prompts": map[string]any{}},
			"serverInfo":      map[string]any{"name": "hand", "version": "1"},
		})
	case methodToolsList:
		ev.result(req.ID, map[string]any{"tools": u.tools})
	case methodToolsCall:
		p, _ := parseCallParams(req.Params)
		ev.result(req.ID, map[string]any{"content": []any{map[string]any{"type": "text", "text": "ran " + p.Name}}})
	default:
		ev.send(&jsonrpc.Response{ID: req.ID, Error: &jsonrpc.Error{Code: jsonrpc.CodeMethodNotFound, Message: "no " + req.Method}})
	}
}

// methods lists the methods of the requests and notifications received,
// with the tool's name after a tools/call.
func (u *handUpstream) methods() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []string
	for _, m := range u.received {
		if req, ok := m.(*jsonrpc.Request); ok {
			name := req.Method
			if req.Method == methodToolsCall {
				p, _ := parseCallParams(req.Params)
				name += " " + p.Name
			}
			out = append(out, name)
		}
	}
	return out
}

// stdioPeer is a client that writes raw lines to a stdio gateway and reads
// what it writes back.
type stdioPeer struct {
	t       *testing.T
	w       io.Writer
	lines   chan map[string]any
	skipped []map[string]any // what await passed over
}

// rawStdio serves a gateway with cfg over in-process pipes, as
// `agentgov mcp run` serves its standard input and output.
func rawStdio(t *testing.T, cfg Config) *stdioPeer {
	t.Helper()
	g, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c2gR, c2gW := io.Pipe()
	g2cR, g2cW := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		g.Serve(context.Background(), wire.NewStdioConn(c2gR, g2cW, g2cW, 0), Identity{Agent: action.Agent{ID: "raw"}, Principal: action.Principal{User: "mallory"}})
	}()
	t.Cleanup(func() { c2gW.Close(); <-done })
	c := &stdioPeer{t: t, w: c2gW, lines: make(chan map[string]any, 64)}
	go func() {
		sc := bufio.NewScanner(g2cR)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				c.lines <- m
			}
		}
		close(c.lines)
	}()
	return c
}

func (c *stdioPeer) send(line string) {
	c.t.Helper()
	if _, err := io.WriteString(c.w, line+"\n"); err != nil {
		c.t.Fatal(err)
	}
}

// await returns the first message the gateway writes that match accepts,
// dropping the others. The bound only keeps a broken gateway from hanging
// the test.
func (c *stdioPeer) await(what string, match func(map[string]any) bool) map[string]any {
	c.t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case m, ok := <-c.lines:
			if !ok {
				c.t.Fatalf("the gateway closed the connection while the test waited for %s", what)
			}
			if match(m) {
				return m
			}
			c.skipped = append(c.skipped, m)
		case <-timeout:
			c.t.Fatalf("the gateway never wrote %s", what)
		}
	}
}

// answer returns the gateway's answer to the request with id.
func (c *stdioPeer) answer(id any) map[string]any {
	c.t.Helper()
	want := fmt.Sprint(id)
	return c.await("the answer to "+want, func(m map[string]any) bool {
		_, isReq := m["method"]
		return !isReq && fmt.Sprint(m["id"]) == want
	})
}

// request returns the next request of the given method the gateway sends.
func (c *stdioPeer) request(method string) map[string]any {
	c.t.Helper()
	return c.await("a "+method+" request", func(m map[string]any) bool { return m["method"] == method && m["id"] != nil })
}

// initialize opens the session, declaring capabilities (JSON), and waits
// for its answer before saying it is initialised.
func (c *stdioPeer) initialize(capabilities string) {
	c.t.Helper()
	c.send(`{"jsonrpc":"2.0","id":"init","method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":` + capabilities + `,"clientInfo":{"name":"raw","version":"1"}}}`)
	if r := c.answer("init"); r["error"] != nil {
		c.t.Fatalf("initialize: %v", r["error"])
	}
	c.send(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)
}

// errorOf is a JSON-RPC answer's error message, "" when it has none.
func errorOf(m map[string]any) string {
	e, _ := m["error"].(map[string]any)
	s, _ := e["message"].(string)
	return s
}

// resultText is the text of a tool result's first content block.
func resultText(m map[string]any) string {
	res, _ := m["result"].(map[string]any)
	content, _ := res["content"].([]any)
	if len(content) == 0 {
		return ""
	}
	block, _ := content[0].(map[string]any)
	s, _ := block["text"].(string)
	return s
}

// builtinEngine decides with the built-in policy pack, as `agentgov mcp
// run` does without --policies.
func builtinEngine(t *testing.T, opts ...govern.Option) *govern.Engine {
	t.Helper()
	set, err := policies.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	return govern.New(set, opts...)
}

// handServer starts u and returns its URL.
func handServer(t *testing.T, u *handUpstream) string {
	t.Helper()
	ts := httptest.NewServer(u)
	t.Cleanup(ts.Close)
	return ts.URL
}

// hasMethod says whether the upstream received a message of method
// (and, for a tools/call, of that tool).
func (u *handUpstream) hasMethod(method string) bool {
	return slices.Contains(u.methods(), method)
}

// refusals are the mcp.refused records of rec whose reason contains what.
func refusals(rec *memRecorder, from, what string) []map[string]any {
	var out []map[string]any
	for _, r := range rec.kind("mcp.refused") {
		if r["from"] == from && strings.Contains(fmt.Sprint(r["reason"]), what) {
			out = append(out, r)
		}
	}
	return out
}

// A client sending params of the wrong JSON types is told what is wrong in
// JSON's words, never Go's (map[string]interface {}, json.RawMessage).
func TestMalformedParamsAreDescribedInJSONsWords(t *testing.T) {
	up := &handUpstream{tools: []map[string]any{{"name": "read_notes", "inputSchema": map[string]any{"type": "object"}}}}
	c := rawStdio(t, Config{Server: "hand", Dial: wire.URL(handServer(t, up), nil), Decider: newTestDecider(), Recorder: &memRecorder{},
		Detector: pin.Detectors(), Pins: pin.MemoryPins(nil), TrustOnFirstUse: true})
	c.initialize(`{}`)
	for i, params := range []string{
		`{"name":"read_notes","arguments":[1,2]}`,
		`{"name":"read_notes","arguments":"x"}`,
		`{"name":5}`,
		`{"name":"read_notes","_meta":[]}`,
		`[]`,
		`{"name":"read_notes","arguments":{"a":1e999}}`,
	} {
		c.send(fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":%s}`, i+1, params))
		r := c.answer(i + 1)
		msg := errorOf(r)
		if msg == "" {
			msg = resultText(r)
		}
		if msg == "" {
			t.Errorf("%s: no error: %v", params, r)
			continue
		}
		if g := errcodetest.GoTypeName(msg); g != "" {
			t.Errorf("%s: %q shows the Go type %q", params, msg, g)
		}
	}
	for i, params := range []string{`{"uri":5}`, `{"uri":"x","_meta":{"agentgov/approval_id":7}}`} {
		c.send(fmt.Sprintf(`{"jsonrpc":"2.0","id":"r%d","method":"resources/read","params":%s}`, i, params))
		if msg := errorOf(c.answer(fmt.Sprintf("r%d", i))); errcodetest.GoTypeName(msg) != "" {
			t.Errorf("resources/read %s: %q", params, msg)
		}
	}
}
