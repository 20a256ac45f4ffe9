package mcp

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/mcp/wire"
)

// upstreamRecorder wraps an HTTP upstream to see what the gateway sends it
// and, on demand, to forget every session as a restarted server would.
type upstreamRecorder struct {
	h       http.Handler
	mu      sync.Mutex
	methods []string
	headers []http.Header
	forget  atomic.Bool
}

func (u *upstreamRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.mu.Lock()
	u.methods = append(u.methods, r.Method)
	u.headers = append(u.headers, r.Header.Clone())
	u.mu.Unlock()
	if r.Header.Get(sessionHeader) != "" && u.forget.Load() {
		http.Error(w, "session not found", http.StatusNotFound)
		return
	}
	u.h.ServeHTTP(w, r)
}

func (u *upstreamRecorder) seen() ([]string, []http.Header) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.methods), slices.Clone(u.headers)
}

// countingServer is an httptest server that counts the connections it
// accepts.
func countingServer(t *testing.T, h http.Handler) (*httptest.Server, *atomic.Int32) {
	ts := httptest.NewUnstartedServer(h)
	var conns atomic.Int32
	ts.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	ts.Start()
	t.Cleanup(ts.Close)
	return ts, &conns
}

func TestHTTPUpstream(t *testing.T) {
	for _, jsonResponse := range []bool{false, true} {
		name := "event-stream"
		if jsonResponse {
			name = "json"
		}
		t.Run(name, func(t *testing.T) {
			srv := newTestUpstream("clean")
			up := &upstreamRecorder{h: sdk.NewStreamableHTTPHandler(func(*http.Request) *sdk.Server { return srv }, &sdk.StreamableHTTPOptions{JSONResponse: jsonResponse})}
			ts, conns := countingServer(t, up)
			h := startDial(t, "test", wire.URL(ts.URL, nil), nil, nil)

			names := toolNames(t, h.session)
			if slices.Contains(names, "forbidden") || !slices.Contains(names, "echo") {
				t.Fatalf("tools through an HTTP upstream = %v", names)
			}
			if res := h.call(t, "echo", map[string]any{"text": "over an http upstream"}); res.IsError || resultString(res) != "over an http upstream" {
				t.Fatalf("echo = %v %q", res.IsError, resultString(res))
			}
			// Calls one after another share one connection: each answer's
			// stream is read to its end, so the connection goes back to
			// the pool instead of being closed.
			before := conns.Load()
			for range 5 {
				if res := h.call(t, "echo", map[string]any{"text": "again"}); res.IsError {
					t.Fatalf("echo = %q", resultString(res))
				}
			}
			// One more may be opened for a request of the gateway's own
			// (a listing) in flight beside a call; a transport that does not
			// reuse connections opens five.
			if n := conns.Load() - before; n > 1 {
				t.Errorf("5 calls in a row opened %d new connections to the upstream, want at most 1", n)
			}
			if res := h.call(t, "forbidden", nil); !res.IsError {
				t.Fatalf("a denied call went through: %q", resultString(res))
			}
			if res := h.call(t, "leak", nil); strings.Contains(resultString(res), "AKIAIOSFODNN7EXAMPLE") {
				t.Fatalf("a secret in a result was not redacted: %q", resultString(res))
			}
			p, err := h.session.GetPrompt(context.Background(), &sdk.GetPromptParams{Name: "greet"})
			if err != nil || len(p.Messages) != 1 {
				t.Fatalf("prompt through an HTTP upstream = %v %v", p, err)
			}
			r, err := h.session.ReadResource(context.Background(), &sdk.ReadResourceParams{URI: "test://readme"})
			if err != nil || len(r.Contents) != 1 || r.Contents[0].Text != "read me" {
				t.Fatalf("resource through an HTTP upstream = %v %v", r, err)
			}
			if _, err := h.session.GetPrompt(context.Background(), &sdk.GetPromptParams{Name: "no-such-prompt"}); err == nil {
				t.Fatal("an upstream error was not relayed")
			}

			// Every request after initialize carries the session and the
			// negotiated version. (The Go SDK client asks server/discover
			// before initialize.)
			_, headers := up.seen()
			without := 0
			for _, hd := range headers {
				switch {
				case hd.Get(sessionHeader) == "":
					without++
				case hd.Get("Mcp-Protocol-Version") == "":
					t.Errorf("a request in the session lacks the protocol version: %v", hd)
				}
			}
			if without > 2 {
				t.Errorf("%d requests without the session header, want at most discover and initialize", without)
			}

			h.session.Close()
			deadline := time.Now().Add(5 * time.Second)
			for {
				methods, _ := up.seen()
				if slices.Contains(methods, http.MethodDelete) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the upstream session was not ended with DELETE: %v", methods)
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
}

// TestHTTPUpstreamLostSession: when the upstream no longer knows the
// session, the pending call fails and the next one gets a new session.
func TestHTTPUpstreamLostSession(t *testing.T) {
	srv := newTestUpstream("clean")
	up := &upstreamRecorder{h: sdk.NewStreamableHTTPHandler(func(*http.Request) *sdk.Server { return srv }, nil)}
	ts := httptest.NewServer(up)
	defer ts.Close()
	h := startDial(t, "test", wire.URL(ts.URL, nil), nil, nil)
	if res := h.call(t, "echo", map[string]any{"text": "one"}); res.IsError {
		t.Fatalf("echo = %q", resultString(res))
	}
	up.forget.Store(true)
	_, err := h.session.CallTool(context.Background(), &sdk.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "two"}})
	if err == nil {
		t.Fatal("a call to a session the upstream forgot succeeded")
	}
	up.forget.Store(false)
	if res := h.call(t, "echo", map[string]any{"text": "three"}); res.IsError || resultString(res) != "three" {
		t.Fatalf("echo after the upstream lost the session = %v %q", res.IsError, resultString(res))
	}
}

// TestRealServerOverHTTPUpstream puts the TypeScript everything server,
// speaking streamable HTTP with resumable event streams, behind the
// gateway: progress and elicitation travel on a call's event stream.
func TestRealServerOverHTTPUpstream(t *testing.T) {
	needNode(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command(nodeServer(t, "server-everything", "streamableHttp")[0], nodeServer(t, "server-everything", "streamableHttp")[1:]...)
	cmd.Env = append(os.Environ(), "PORT="+strconv.Itoa(port))
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "listening") {
				close(ready)
				break
			}
		}
		for sc.Scan() {
		}
	}()
	select {
	case <-ready:
	case <-time.After(20 * time.Second):
		t.Fatal("the everything server did not start listening")
	}

	var progress atomic.Int32
	elicited := make(chan string, 1)
	h := startDial(t, "everything", wire.URL("http://127.0.0.1:"+strconv.Itoa(port)+"/mcp", nil), nil, &sdk.ClientOptions{
		ProgressNotificationHandler: func(context.Context, *sdk.ProgressNotificationClientRequest) { progress.Add(1) },
		ElicitationHandler: func(_ context.Context, r *sdk.ElicitRequest) (*sdk.ElicitResult, error) {
			elicited <- r.Params.Message
			return &sdk.ElicitResult{Action: "decline"}, nil
		},
	})
	if res := h.call(t, "echo", map[string]any{"message": "typescript upstream over http"}); res.IsError || !strings.Contains(resultString(res), "typescript upstream over http") {
		t.Fatalf("echo = %v %q", res.IsError, resultString(res))
	}
	params := &sdk.CallToolParams{Name: "trigger-long-running-operation", Arguments: map[string]any{"duration": 0.3, "steps": 3}}
	params.SetProgressToken("p1")
	res, err := h.session.CallTool(context.Background(), params)
	if err != nil || res.IsError {
		t.Fatalf("long running operation = %v %v", res, err)
	}
	// The client handles notifications concurrently with the answer.
	for deadline := time.Now().Add(5 * time.Second); progress.Load() < 3 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if progress.Load() < 3 {
		t.Errorf("%d progress notifications relayed, want 3", progress.Load())
	}
	res, err = h.session.CallTool(context.Background(), &sdk.CallToolParams{Name: "trigger-elicitation-request", Arguments: map[string]any{}})
	if err != nil {
		t.Fatalf("elicitation tool: %v", err)
	}
	select {
	case <-elicited:
	default:
		t.Fatalf("the upstream's elicitation request did not reach the client: %q", resultString(res))
	}
	if len(calls(h.dec.seen(action.PreToolCall, "echo"))) != 1 {
		t.Error("the call was not decided")
	}
}

// A catalogue listing that failed is not a catalogue: the next call lists
// the upstream's tools again instead of being denied for a failure that has
// passed (an upstream that went away while answering tools/list, then came
// back).
func TestFailedListingIsListedAgain(t *testing.T) {
	srv := newTestUpstream("clean")
	var failed atomic.Int32
	srv.AddReceivingMiddleware(func(next sdk.MethodHandler) sdk.MethodHandler {
		return func(ctx context.Context, method string, req sdk.Request) (sdk.Result, error) {
			if method == "tools/list" && failed.Add(1) == 1 {
				return nil, errors.New("busy, try again")
			}
			return next(ctx, method, req)
		}
	})
	ts := httptest.NewServer(sdk.NewStreamableHTTPHandler(func(*http.Request) *sdk.Server { return srv }, nil))
	defer ts.Close()
	h := startDial(t, "test", wire.URL(ts.URL, nil), nil, nil)
	if res := h.call(t, "echo", map[string]any{"text": "one"}); res.IsError || resultString(res) != "one" {
		t.Fatalf("echo after a failed listing = %v %q", res.IsError, resultString(res))
	}
	if n := failed.Load(); n < 2 {
		t.Fatalf("tools/list asked %d times; want the failed listing asked again", n)
	}
}
