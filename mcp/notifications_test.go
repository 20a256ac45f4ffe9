package mcp

import (
	"context"
	"github.com/agentgov/agentgov/mcp/pin"
	"github.com/agentgov/agentgov/mcp/wire"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// A tools/call without an id gets no answer, so nothing would tell the
// agent it was denied; before, it went upstream undecided and unaudited.
// Only the notifications a client may send are forwarded; any other
// message without an id is refused and audited.
func TestCallWithoutAnIDIsNeverForwarded(t *testing.T) {
	for _, tc := range []struct{ name, line string }{
		{"no id", `{"jsonrpc":"2.0","method":"tools/call","params":{"name":"delete_everything","arguments":{}}}`},
		{"null id", `{"jsonrpc":"2.0","id":null,"method":"tools/call","params":{"name":"delete_everything","arguments":{}}}`},
		{"inside a batch", `[{"jsonrpc":"2.0","method":"tools/call","params":{"name":"delete_everything","arguments":{}}},{"jsonrpc":"2.0","id":"p0","method":"ping"}]`},
		{"another method", `{"jsonrpc":"2.0","method":"resources/read","params":{"uri":"file:///home/me/.ssh/id_rsa"}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := &handUpstream{tools: destructiveCatalogue}
			rec := &memRecorder{}
			c := rawStdio(t, Config{Server: "hand", Dial: wire.URL(handServer(t, up), nil), Decider: newTestDecider(), Recorder: rec,
				Detector: pin.Detectors(), Pins: pin.MemoryPins(nil), TrustOnFirstUse: true})
			c.initialize(`{}`)
			c.send(tc.line)
			c.send(`{"jsonrpc":"2.0","id":"after","method":"tools/call","params":{"name":"read_notes","arguments":{}}}`)
			if r := c.answer("after"); resultText(r) != "ran read_notes" {
				t.Fatalf("a call after the refused one = %v", r)
			}
			for _, m := range up.methods() {
				if m == "tools/call delete_everything" || m == methodResourcesRead {
					t.Fatalf("the message without an id reached the upstream: %v", up.methods())
				}
			}
			if len(refusals(rec, sideClient, "is not one a client may send")) != 1 {
				t.Fatalf("refusals audited = %v; want the message without an id", rec.kind("mcp.refused"))
			}
		})
	}
}

// The notifications a client may send still reach the upstream.
func TestClientNotificationsAreForwarded(t *testing.T) {
	up := &handUpstream{tools: destructiveCatalogue}
	c := rawStdio(t, Config{Server: "hand", Dial: wire.URL(handServer(t, up), nil), Decider: newTestDecider(), Detector: pin.Detectors(),
		Pins: pin.MemoryPins(nil), TrustOnFirstUse: true})
	c.initialize(`{}`)
	c.send(`{"jsonrpc":"2.0","method":"notifications/roots/list_changed"}`)
	c.send(`{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"t","progress":1}}`)
	c.send(`{"jsonrpc":"2.0","id":"after","method":"tools/call","params":{"name":"read_notes","arguments":{}}}`)
	c.answer("after")
	for _, m := range []string{methodInitialized, methodRootsChanged, methodProgress} {
		if !up.hasMethod(m) {
			t.Errorf("%s did not reach the upstream: %v", m, up.methods())
		}
	}
}

// Over HTTP the POST carrying it is refused whole, with 400 and a message
// saying why, and nothing of it reaches the upstream.
func TestHTTPCallWithoutAnIDIsRefused(t *testing.T) {
	up := &handUpstream{tools: destructiveCatalogue}
	rec := &memRecorder{}
	g, err := New(Config{Server: "hand", Dial: wire.URL(handServer(t, up), nil), Decider: newTestDecider(), Recorder: rec, Detector: pin.Detectors(),
		Pins: pin.MemoryPins(nil), TrustOnFirstUse: true})
	if err != nil {
		t.Fatal(err)
	}
	h := g.HTTPHandler(context.Background(), testIdentify)
	ts := httptest.NewServer(h)
	t.Cleanup(func() { ts.Close(); h.Close() })
	c := &rawHTTP{t: t, url: ts.URL}
	resp := c.do("POST", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`)
	c.sid = resp.Header.Get(sessionHeader)
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	for _, body := range []string{
		`{"jsonrpc":"2.0","method":"tools/call","params":{"name":"delete_everything","arguments":{}}}`,
		`[{"jsonrpc":"2.0","id":null,"method":"tools/call","params":{"name":"delete_everything","arguments":{}}},{"jsonrpc":"2.0","id":3,"method":"ping"}]`,
	} {
		code, text := c.status("POST", body)
		if code != http.StatusBadRequest || !strings.Contains(text, "is not one a client may send") {
			t.Errorf("POST %s: %d %s; want 400 saying why", body, code, text)
		}
	}
	if code, text := c.status("POST", `{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"read_notes","arguments":{}}}`); code != 200 || !strings.Contains(text, "ran read_notes") {
		t.Fatalf("a call after the refused ones: %d %s", code, text)
	}
	if up.hasMethod("tools/call delete_everything") {
		t.Fatalf("the call without an id reached the upstream: %v", up.methods())
	}
	if n := len(refusals(rec, sideClient, "is not one a client may send")); n != 2 {
		t.Fatalf("%d refusals audited, want 2: %v", n, rec.kind("mcp.refused"))
	}
}
