package mcp

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/mcp/pin"
	"github.com/agentgov/agentgov/mcp/wire"
)

// rawGateway runs a gateway whose client side is a bare pipe, so that a
// test can send it what no SDK client would.
func rawGateway(t *testing.T, maxMessage int) (io.Writer, *bufio.Scanner) {
	t.Helper()
	dial, err := wire.Command(upstreamArgv(t), upstreamEnv("clean"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	g, err := New(Config{Server: "test", Dial: dial, Decider: newTestDecider(), Pins: pin.MemoryPins(nil), TrustOnFirstUse: true})
	if err != nil {
		t.Fatal(err)
	}
	c2gR, c2gW := io.Pipe()
	g2cR, g2cW := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		g.Serve(context.Background(), wire.NewStdioConn(c2gR, g2cW, g2cW, maxMessage), Identity{Agent: action.Agent{ID: "raw"}})
	}()
	t.Cleanup(func() { c2gW.Close(); <-done })
	sc := bufio.NewScanner(g2cR)
	sc.Buffer(nil, 1<<20)
	return c2gW, sc
}

type rpcReply struct {
	ID     any             `json:"id"`
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func exchange(t *testing.T, w io.Writer, sc *bufio.Scanner, line string) rpcReply {
	t.Helper()
	if _, err := io.WriteString(w, line+"\n"); err != nil {
		t.Fatal(err)
	}
	for sc.Scan() {
		var r rpcReply
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("gateway wrote %q: %v", sc.Text(), err)
		}
		if r.Result == nil && r.Error == nil {
			continue // a notification
		}
		return r
	}
	t.Fatalf("gateway closed the connection after %q: %v", line, sc.Err())
	return rpcReply{}
}

func TestBadInputGetsClearErrorsAndServiceGoesOn(t *testing.T) {
	w, sc := rawGateway(t, 4096)
	init := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`
	if r := exchange(t, w, sc, init); r.Error != nil {
		t.Fatalf("initialize: %+v", r.Error)
	}
	io.WriteString(w, `{"jsonrpc":"2.0","method":"notifications/initialized"}`+"\n")

	for _, tc := range []struct {
		name, line string
		code       int
		mention    string
	}{
		{"not JSON", `{"jsonrpc": "2.0", "id": 2, "method": `, -32700, "not valid JSON"},
		{"not JSON-RPC", `{"id": 3, "method": "tools/list"}`, -32600, "version"},
		{"huge", `{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"echo","arguments":{"text":"` + strings.Repeat("x", 10000) + `"}}}`, -32600, "limit of 4096 bytes"},
		{"unknown method", `{"jsonrpc":"2.0","id":5,"method":"no/such/method"}`, -32601, ""},
		{"call without a name", `{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{}}`, -32602, "tool name"},
		{"arguments not an object", `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":[1]}}`, -32602, "JSON object"},
	} {
		r := exchange(t, w, sc, tc.line)
		if r.Error == nil || r.Error.Code != tc.code || !strings.Contains(r.Error.Message, tc.mention) {
			t.Errorf("%s: reply %+v %s; want error %d mentioning %q", tc.name, r.Error, r.Result, tc.code, tc.mention)
		}
	}
	r := exchange(t, w, sc, `{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"echo","arguments":{"text":"after all that"}}}`)
	if r.Error != nil || !strings.Contains(string(r.Result), "after all that") {
		t.Fatalf("a good call after bad input = %+v %s", r.Error, r.Result)
	}
}

// A key that differs from "name" or "arguments" only in case must not
// change what the gateway decides on: the server reads the exact keys.
func TestCallKeysMatchExactly(t *testing.T) {
	w, sc := rawGateway(t, 4096)
	init := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`
	if r := exchange(t, w, sc, init); r.Error != nil {
		t.Fatalf("initialize: %+v", r.Error)
	}
	io.WriteString(w, `{"jsonrpc":"2.0","method":"notifications/initialized"}`+"\n")
	r := exchange(t, w, sc, `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"forbidden","Name":"echo","arguments":{},"Arguments":{"text":"x"}}}`)
	if r.Error != nil || !strings.Contains(string(r.Result), "denied") {
		t.Fatalf("a call to forbidden disguised as echo = %+v %s; want it denied", r.Error, r.Result)
	}
}
