package mcp

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/mcp/pin"
	"github.com/agentgov/agentgov/mcp/wire"
)

// A gateway that stops, because its client closed its side or because it
// is asked to, first answers what it was asked and records the results:
// the client gets every answer, and the audit log every result, before the
// upstream is closed.

// waitStarted waits until the upstream's wait tool has the call: it
// writes path.started.
func waitStarted(t *testing.T, path string, failed <-chan error) {
	t.Helper()
	for {
		if _, err := os.Stat(path + ".started"); err == nil {
			return
		}
		select {
		case err := <-failed:
			t.Fatalf("the call ended before it reached the upstream: %v", err)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func release(t *testing.T, path string) {
	t.Helper()
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
}

// stdioGateway serves a gateway over pipes with the Go SDK client in front,
// leaving its stopping to the test: closing the client's side, or ending
// ctx.
type stdioGateway struct {
	rec        *memRecorder
	session    *sdk.ClientSession
	closeInput func()
	done       chan error
}

func serveStdio(t *testing.T, ctx context.Context) *stdioGateway {
	t.Helper()
	dial, err := wire.Command(upstreamArgv(t), upstreamEnv("clean"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	rec := &memRecorder{}
	g, err := New(Config{Server: "test", Dial: dial, Decider: newTestDecider(), Recorder: rec, Detector: pin.Detectors(),
		Pins: pin.MemoryPins(nil), TrustOnFirstUse: true})
	if err != nil {
		t.Fatal(err)
	}
	c2gR, c2gW := io.Pipe()
	g2cR, g2cW := io.Pipe()
	sg := &stdioGateway{rec: rec, done: make(chan error, 1)}
	go func() {
		sg.done <- g.Serve(ctx, wire.NewStdioConn(c2gR, g2cW, nil, 0), Identity{Agent: action.Agent{ID: "tester"}})
		g2cW.Close()
	}()
	sg.closeInput = func() { c2gW.Close() }
	client := sdk.NewClient(&sdk.Implementation{Name: "test-client", Version: "1"}, nil)
	sg.session, err = client.Connect(context.Background(), &sdk.IOTransport{Reader: g2cR, Writer: c2gW}, nil)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { c2gW.Close(); c2gR.Close() })
	return sg
}

// callWait calls the upstream's wait tool on path, on a goroutine.
func (sg *stdioGateway) callWait(path string) (<-chan *sdk.CallToolResult, <-chan error) {
	res, failed := make(chan *sdk.CallToolResult, 1), make(chan error, 1)
	go func() {
		r, err := sg.session.CallTool(context.Background(), &sdk.CallToolParams{Name: "wait", Arguments: map[string]any{"path": path}})
		if err != nil {
			failed <- err
			return
		}
		res <- r
	}()
	return res, failed
}

func resultOf(t *testing.T, res <-chan *sdk.CallToolResult, failed <-chan error) *sdk.CallToolResult {
	t.Helper()
	select {
	case r := <-res:
		return r
	case err := <-failed:
		t.Fatalf("the call in flight got no answer: %v", err)
	}
	return nil
}

func waitResults(rec *memRecorder) []map[string]any {
	var out []map[string]any
	for _, r := range rec.kind("mcp.result") {
		if r["tool"] == "wait" {
			out = append(out, r)
		}
	}
	return out
}

// A client that writes its request and closes its input still gets the
// answer; the gateway exits only after the result is recorded.
func TestStdioAnswersWhatWasAskedWhenTheInputCloses(t *testing.T) {
	sg := serveStdio(t, context.Background())
	path := filepath.Join(t.TempDir(), "release")
	res, failed := sg.callWait(path)
	waitStarted(t, path, failed)
	sg.closeInput()
	select {
	case err := <-sg.done:
		t.Fatalf("the gateway returned (%v) with a call in flight", err)
	default:
	}
	release(t, path)
	if r := resultOf(t, res, failed); r.IsError || resultString(r) != "released" {
		t.Fatalf("the answer = %v %q", r.IsError, resultString(r))
	}
	if err := <-sg.done; err != nil {
		t.Fatal(err)
	}
	if rs := waitResults(sg.rec); len(rs) != 1 || rs[0]["status"] != "ok" {
		t.Fatalf("result records when the gateway returned: %v", rs)
	}
	closes := sessionRecords(sg.rec, "close")
	if len(closes) != 1 || closes[0]["reason"] != "the client went away" {
		t.Fatalf("session close records = %v", closes)
	}
}

// Asked to stop (its ctx ends), the gateway takes no new request, and the
// call in flight is answered and recorded within the grace period.
func TestStdioShutdownFinishesTheCallInFlight(t *testing.T) {
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	sg := serveStdio(t, ctx)
	path := filepath.Join(t.TempDir(), "release")
	res, failed := sg.callWait(path)
	waitStarted(t, path, failed)
	stop()
	// Whatever is asked from now on is refused; the answer to it may race
	// the stop, so only its form is checked when it is not refused.
	if r, err := sg.session.CallTool(context.Background(), &sdk.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "late"}}); err == nil && r.IsError {
		t.Logf("a call after the stop: %q", resultString(r))
	}
	release(t, path)
	if r := resultOf(t, res, failed); r.IsError || resultString(r) != "released" {
		t.Fatalf("the answer = %v %q", r.IsError, resultString(r))
	}
	if err := <-sg.done; err != nil {
		t.Fatal(err)
	}
	if rs := waitResults(sg.rec); len(rs) != 1 || rs[0]["status"] != "ok" {
		t.Fatalf("result records when the gateway returned: %v", rs)
	}
	closes := sessionRecords(sg.rec, "close")
	if len(closes) != 1 || closes[0]["reason"] != "the gateway stopped" {
		t.Fatalf("session close records = %v", closes)
	}
}

// Over HTTP, Shutdown lets the call in flight finish and its result be
// recorded before it closes the session; a session opened after it began
// gets 503, and a new request of an open session is refused.
func TestHTTPShutdownFinishesTheCallInFlight(t *testing.T) {
	dial, err := wire.Command(upstreamArgv(t), upstreamEnv("clean"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	rec := &memRecorder{}
	g, err := New(Config{Server: "test", Dial: dial, Decider: newTestDecider(), Recorder: rec, Detector: pin.Detectors(), Pins: pin.MemoryPins(nil), TrustOnFirstUse: true})
	if err != nil {
		t.Fatal(err)
	}
	h := g.HTTPHandler(context.Background(), testIdentify)
	ts := httptest.NewServer(h)
	defer ts.Close()
	cs, err := sdk.NewClient(&sdk.Implementation{Name: "go-http-client", Version: "1"}, nil).Connect(context.Background(), &sdk.StreamableClientTransport{
		Endpoint: ts.URL, HTTPClient: &http.Client{Transport: bearer{"agent-token", http.DefaultTransport}},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	path := filepath.Join(t.TempDir(), "release")
	sg := &stdioGateway{session: cs}
	res, failed := sg.callWait(path)
	waitStarted(t, path, failed)

	shut := make(chan error, 1)
	go func() { shut <- h.Shutdown(context.Background()) }()
	for {
		// Shutdown has begun once a new session is refused.
		if _, code, body := open(t, ts.URL, "agent-token"); code == http.StatusServiceUnavailable {
			if !strings.Contains(body, "shutting down") {
				t.Fatalf("a session during shutdown: %d %s", code, body)
			}
			break
		}
		select {
		case err := <-shut:
			t.Fatalf("Shutdown returned (%v) with a call in flight", err)
		default:
		}
	}
	// The open session takes no new request either.
	if r, err := cs.CallTool(context.Background(), &sdk.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "late"}}); err == nil || !strings.Contains(err.Error(), "shutting down") {
		t.Fatalf("a call of the open session during shutdown = %v %v; want it refused", r, err)
	}
	release(t, path)
	if r := resultOf(t, res, failed); r.IsError || resultString(r) != "released" {
		t.Fatalf("the answer = %v %q", r.IsError, resultString(r))
	}
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
	if rs := waitResults(rec); len(rs) != 1 || rs[0]["status"] != "ok" {
		t.Fatalf("result records when Shutdown returned: %v", rs)
	}
}

// BenchmarkHoldRelease is what draining adds to each message a session
// handles: marking it under way and done.
func BenchmarkHoldRelease(b *testing.B) {
	s := &session{inflight: map[jsonrpc.ID]*inflight{}, settled: make(chan struct{}, 1)}
	b.ReportAllocs()
	for b.Loop() {
		s.hold()
		s.release()
	}
	if !s.idle() {
		b.Fatal("the session is not idle after matched holds and releases")
	}
}

// A client that closes its input while the upstream waits for its answer
// (a sampling request relayed to it) cannot answer any more: the upstream
// is told so, the call waiting on it ends, and the gateway exits, the
// call's answer written and its result recorded.
func TestStdioClientGoneAnswersTheUpstreamsRequests(t *testing.T) {
	dial, err := wire.Command(upstreamArgv(t), upstreamEnv("clean"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	rec := &memRecorder{}
	g, err := New(Config{Server: "test", Dial: dial, Decider: newTestDecider(), Recorder: rec, Detector: pin.Detectors(), Pins: pin.MemoryPins(nil), TrustOnFirstUse: true})
	if err != nil {
		t.Fatal(err)
	}
	c2gR, c2gW := io.Pipe()
	g2cR, g2cW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- g.Serve(context.Background(), wire.NewStdioConn(c2gR, g2cW, nil, 0), Identity{Agent: action.Agent{ID: "tester"}})
		g2cW.Close()
	}()
	defer c2gR.Close()
	for _, line := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{"sampling":{}},"clientInfo":{"name":"raw","version":"1"}}}`,
		`{"jsonrpc":"2.0","method":"notifications/initialized"}`,
		`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"ask","arguments":{}}}`,
	} {
		if _, err := io.WriteString(c2gW, line+"\n"); err != nil {
			t.Fatal(err)
		}
	}
	sc := bufio.NewScanner(g2cR)
	var answer string
	for sc.Scan() {
		line := sc.Text()
		if strings.Contains(line, `"sampling/createMessage"`) {
			c2gW.Close() // the client goes away without answering
			continue
		}
		if strings.Contains(line, `"id":2`) {
			answer = line
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(answer, "the client did not answer") || !strings.Contains(answer, "closed its side") {
		t.Fatalf("the call's answer = %q; want it to say the client could not answer", answer)
	}
	if rs := rec.kind("mcp.result"); len(rs) != 1 || rs[0]["tool"] != "ask" {
		t.Fatalf("result records = %v", rs)
	}
}
