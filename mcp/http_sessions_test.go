package mcp

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentgov/agentgov/killswitch"
	"github.com/agentgov/agentgov/mcp/pin"
	"github.com/agentgov/agentgov/mcp/wire"
)

// Each HTTP session costs an upstream connection (for a command server, a
// process of tens of MiB), so what one agent may hold is bounded: a number
// of sessions, an idle time, a time for the upstream to initialise.

const initializeBody = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`

// fakeClock is the gateway's clock in a test: it moves when told to.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// handHTTP serves a gateway over up on an HTTP endpoint taking the test
// tokens, counting the upstream connections it dials.
func handHTTP(t *testing.T, up *handUpstream, tweak func(*Config)) (*HTTPHandler, string, *memRecorder, *atomic.Int32) {
	t.Helper()
	url := handServer(t, up)
	var dials atomic.Int32
	rec := &memRecorder{}
	cfg := Config{
		Server: "hand", Decider: newTestDecider(), Recorder: rec, Detector: pin.Detectors(), Pins: pin.MemoryPins(nil), TrustOnFirstUse: true,
		Dial: func(ctx context.Context) (sdk.Connection, error) {
			dials.Add(1)
			return wire.URL(url, nil)(ctx)
		},
	}
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
	return h, ts.URL, rec, &dials
}

// open starts a session as token, returning its id ("" when refused), the
// status and the body.
func open(t *testing.T, url, token string) (string, int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", url, strings.NewReader(initializeBody))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.Header.Get(sessionHeader), resp.StatusCode, string(body)
}

func sessionRecords(rec *memRecorder, event string) []map[string]any {
	var out []map[string]any
	for _, r := range rec.kind("mcp.session") {
		if r["event"] == event {
			out = append(out, r)
		}
	}
	return out
}

// One agent opening session after session gets no more than the limit;
// the refusal says which key sets it, and is audited. Other agents are
// not held back, and a session ended makes room.
func TestHTTPSessionsPerAgentAreCapped(t *testing.T) {
	_, url, rec, dials := handHTTP(t, &handUpstream{tools: destructiveCatalogue}, func(c *Config) { c.MaxSessionsPerAgent = 2 })
	var sids []string
	for range 2 {
		sid, code, body := open(t, url, "agent-token")
		if code != 200 || sid == "" {
			t.Fatalf("a session within the limit: %d %s", code, body)
		}
		sids = append(sids, sid)
	}
	sid, code, body := open(t, url, "agent-token")
	if code != http.StatusTooManyRequests || sid != "" || !strings.Contains(body, "mcp.max_sessions_per_agent") || !strings.Contains(body, fmt.Sprint(codeRefused)) {
		t.Fatalf("a session past the limit: %d %q %s; want 429 naming the key", code, sid, body)
	}
	if n := dials.Load(); n != 2 {
		t.Errorf("%d upstream connections, want 2: the refused session must not start one", n)
	}
	if r := sessionRecords(rec, "refused"); len(r) != 1 || !strings.Contains(fmt.Sprint(r[0]["reason"]), "mcp.max_sessions_per_agent") {
		t.Errorf("refusals audited = %v", r)
	}
	if _, code, body := open(t, url, "other-token"); code != 200 {
		t.Errorf("another agent's session: %d %s", code, body)
	}
	c := &rawHTTP{t: t, url: url, sid: sids[0]}
	if code, _ := c.status("DELETE", ""); code != http.StatusNoContent {
		t.Fatalf("DELETE: %d", code)
	}
	if _, code, body := open(t, url, "agent-token"); code != 200 {
		t.Errorf("a session after one was ended: %d %s", code, body)
	}
}

// The variant of a killed agent: no session at all, no upstream started.
func TestHTTPKilledAgentCannotOpenASession(t *testing.T) {
	kill := switchboard(t)
	sw := engage(t, kill, killswitch.Agent, "http-agent")
	_, url, rec, dials := handHTTP(t, &handUpstream{tools: destructiveCatalogue}, func(c *Config) { c.Kill = kill })
	sid, code, body := open(t, url, "agent-token")
	if code != http.StatusForbidden || sid != "" || !strings.Contains(body, sw.ID) {
		t.Fatalf("a killed agent's session: %d %q %s; want 403 naming the switch", code, sid, body)
	}
	if n := dials.Load(); n != 0 {
		t.Errorf("%d upstream connections for a killed agent", n)
	}
	if len(sessionRecords(rec, "refused")) != 1 {
		t.Errorf("refusal not audited: %v", rec.kind("mcp.session"))
	}
	if _, code, _ := open(t, url, "other-token"); code != 200 {
		t.Errorf("another agent's session: %d", code)
	}
}

// A session that serves no request for the idle timeout is closed with
// its upstream, on the gateway's clock; one used since, or with a request
// in progress, stays.
func TestHTTPIdleSessionsExpire(t *testing.T) {
	release := make(chan struct{})
	up := &handUpstream{tools: destructiveCatalogue, hook: func(ev *handEvents, req *jsonrpc.Request) bool {
		if req.Method == "resources/list" {
			select {
			case <-release:
				ev.result(req.ID, map[string]any{"resources": []any{}})
			case <-ev.ctx.Done():
			}
			return true
		}
		return false
	}}
	clock := &fakeClock{now: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)}
	h, url, rec, _ := handHTTP(t, up, func(c *Config) { c.Now = clock.Now })
	idle, _, _ := open(t, url, "agent-token")
	used, _, _ := open(t, url, "agent-token")
	busy, _, _ := open(t, url, "agent-token")

	clock.advance(5 * time.Minute)
	if code, _ := (&rawHTTP{t: t, url: url, sid: used}).status("POST", `{"jsonrpc":"2.0","id":2,"method":"ping"}`); code != 200 {
		t.Fatalf("ping: %d", code)
	}
	held := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest("POST", url, strings.NewReader(`{"jsonrpc":"2.0","id":3,"method":"resources/list"}`))
		req.Header.Set("Authorization", "Bearer agent-token")
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(sessionHeader, busy)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			held <- 0
			return
		}
		resp.Body.Close()
		held <- resp.StatusCode
	}()
	waitUntil(t, "the held request to reach the upstream", func() bool { return up.hasMethod("resources/list") })

	clock.advance(6 * time.Minute) // idle 11m, used 6m ago, busy in progress
	h.expireIdle()
	for sid, want := range map[string]int{idle: http.StatusNotFound, used: 200} {
		if code, body := (&rawHTTP{t: t, url: url, sid: sid}).status("POST", `{"jsonrpc":"2.0","id":4,"method":"ping"}`); code != want {
			t.Errorf("session %s after the sweep: %d %s; want %d", sid, code, body, want)
		}
	}
	waitUntil(t, "the expired session's upstream to be ended", func() bool {
		up.mu.Lock()
		defer up.mu.Unlock()
		return up.deletes == 1
	})
	closes := rec.await(t, "mcp.session", 4) // three opens, one close
	var expired int
	for _, r := range closes {
		if r["event"] == "close" && r["session"] == idle && strings.Contains(fmt.Sprint(r["reason"]), "mcp.session_idle_timeout") {
			expired++
		}
	}
	if expired != 1 {
		t.Errorf("session records = %v; want the idle one's close, naming the timeout", closes)
	}
	close(release)
	if code := waitFor(t, held, "the held request's answer"); code != 200 {
		t.Errorf("the request in progress during the sweep: %d", code)
	}
}

// waitUntil waits for something the gateway does on a goroutine of its
// own; the bound only keeps a broken gateway from hanging the test.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited in vain for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// An upstream that never answers initialize holds the client no longer
// than the gateway's bound, and its connection is dropped.
func TestUpstreamMustAnswerInitialize(t *testing.T) {
	dropped := make(chan struct{}, 1)
	up := &handUpstream{hook: func(ev *handEvents, req *jsonrpc.Request) bool {
		if req.Method == methodInitialize {
			<-ev.ctx.Done() // never answered; the gateway gives up
			dropped <- struct{}{}
			return true
		}
		return false
	}}
	c := rawStdio(t, Config{Server: "hand", Dial: wire.URL(handServer(t, up), nil), Decider: newTestDecider(), Pins: pin.MemoryPins(nil),
		TrustOnFirstUse: true, InitTimeout: 50 * time.Millisecond})
	c.send(initializeBody)
	if r := c.answer(1); !strings.Contains(errorOf(r), "did not answer initialize within 50ms") {
		t.Fatalf("initialize of a stuck upstream = %v", r)
	}
	waitFor(t, dropped, "the stuck upstream's connection to be dropped")
}

// The variant: an upstream that answers initialize but never lists its
// tools. Calls wait for the listing no longer than the same bound, and are
// denied saying why.
func TestUpstreamMustListItsTools(t *testing.T) {
	up := &handUpstream{tools: destructiveCatalogue, hook: func(ev *handEvents, req *jsonrpc.Request) bool {
		if req.Method == methodToolsList {
			<-ev.ctx.Done() // never answered
			return true
		}
		return false
	}}
	c := rawStdio(t, Config{Server: "hand", Dial: wire.URL(handServer(t, up), nil), Decider: newTestDecider(), Pins: pin.MemoryPins(nil),
		TrustOnFirstUse: true, InitTimeout: 50 * time.Millisecond})
	c.initialize(`{}`)
	c.send(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"read_notes","arguments":{}}}`)
	if r := c.answer(2); !strings.Contains(resultText(r), "could not be listed") || !strings.Contains(resultText(r), "deadline") {
		t.Fatalf("a call while the upstream never lists its tools = %v", r)
	}
}

// A client message is bounded (4 MiB by default, configurable), for a
// session's first POST as for the others, and the refusal names the key.
func TestHTTPBodyIsBounded(t *testing.T) {
	_, url, _, dials := handHTTP(t, &handUpstream{tools: destructiveCatalogue}, nil)
	padded := strings.Replace(initializeBody, `"capabilities":{}`, `"capabilities":{"pad":"`+strings.Repeat("x", DefaultMaxMessageBytes)+`"}`, 1)
	req, _ := http.NewRequest("POST", url, strings.NewReader(padded))
	req.Header.Set("Authorization", "Bearer agent-token")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(body), "over the limit of 4194304 bytes (mcp.max_message_bytes)") {
		t.Fatalf("a 4 MiB initialize: %d %s; want 413 naming the limit", resp.StatusCode, body)
	}
	if dials.Load() != 0 {
		t.Error("an upstream was started for a refused body")
	}

	_, url, _, _ = handHTTP(t, &handUpstream{tools: destructiveCatalogue}, func(c *Config) { c.MaxMessageBytes = 64 << 10 })
	sid, _, _ := open(t, url, "agent-token")
	c := &rawHTTP{t: t, url: url, sid: sid}
	code, text := c.status("POST", `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"read_notes","arguments":{"pad":"`+strings.Repeat("x", 100<<10)+`"}}}`)
	if code != http.StatusRequestEntityTooLarge || !strings.Contains(text, "65536") {
		t.Fatalf("a 100 KiB call over a 64 KiB limit: %d %s", code, text)
	}
}

// A client that sends its body slowly, or not at all, holds a handler no
// longer than the read timeout. The bound is on reading the body only: a
// call whose answer takes longer is still answered.
func TestHTTPSlowBodyIsCutOff(t *testing.T) {
	up := &handUpstream{tools: destructiveCatalogue, hook: func(ev *handEvents, req *jsonrpc.Request) bool {
		if req.Method == "resources/list" {
			time.Sleep(300 * time.Millisecond) // a slow upstream, not a measurement
			ev.result(req.ID, map[string]any{"resources": []any{}})
			return true
		}
		return false
	}}
	_, url, _, _ := handHTTP(t, up, func(c *Config) { c.ReadTimeout = 100 * time.Millisecond })
	sid, _, _ := open(t, url, "agent-token")
	// Sent chunked, so that the body is read to its end while the call is
	// still to be served.
	req, _ := http.NewRequest("POST", url, io.MultiReader(strings.NewReader(`{"jsonrpc":"2.0","id":2,"method":"resources/list"}`)))
	req.Header.Set("Authorization", "Bearer agent-token")
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(sessionHeader, sid)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"resources"`) {
		t.Fatalf("a call answered after the read timeout: %d %s", resp.StatusCode, body)
	}
	for _, session := range []string{"", sid} {
		conn, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		header := ""
		if session != "" {
			header = sessionHeader + ": " + session + "\r\n"
		}
		fmt.Fprintf(conn, "POST / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer agent-token\r\nContent-Type: application/json\r\n%sContent-Length: 1000\r\n\r\n{\"jsonrpc\":", header)
		conn.SetReadDeadline(time.Now().Add(20 * time.Second)) // only so that a broken gateway fails rather than hangs
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("session %q: no answer to a stalled body: %v", session, err)
		}
		body, _ := io.ReadAll(resp.Body)
		conn.Close()
		if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(body), "mcp.read_timeout") {
			t.Errorf("session %q: a stalled body: %d %s; want 408 naming the key", session, resp.StatusCode, body)
		}
	}
}

// Over stdio the bound is the connection's: 4 MiB unless the caller
// (mcp run's --max-message-bytes) says otherwise.
func TestStdioMessageIsBoundedByDefault(t *testing.T) {
	c := rawStdio(t, Config{Server: "hand", Dial: wire.URL(handServer(t, &handUpstream{tools: destructiveCatalogue}), nil), Decider: newTestDecider(),
		Pins: pin.MemoryPins(nil), TrustOnFirstUse: true})
	c.initialize(`{}`)
	c.send(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"read_notes","arguments":{"pad":"` + strings.Repeat("x", DefaultMaxMessageBytes) + `"}}}`)
	if r := c.await("the refusal", func(m map[string]any) bool { return m["error"] != nil }); !strings.Contains(errorOf(r), "limit of 4194304 bytes") {
		t.Fatalf("a 4 MiB message = %v", r)
	}
}
