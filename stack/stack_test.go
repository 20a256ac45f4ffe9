package stack

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentgov/agentgov/audit"
	"github.com/agentgov/agentgov/config"
	"github.com/agentgov/agentgov/store/sqlite"
)

// These tests run the stack as `agentgov serve` runs it: the real store,
// audit log and engine on a temporary data directory, the HTTP front on a
// loopback port, and, for the MCP gateway, an upstream server process.

const upstreamEnv = "AGENTGOV_STACK_TEST_UPSTREAM"

func TestMain(m *testing.M) {
	if os.Getenv(upstreamEnv) != "" {
		runUpstream()
		return
	}
	os.Exit(m.Run())
}

// runUpstream is an MCP server whose one tool, wait, says it has the call
// (by writing PATH.started) and answers once released (PATH exists).
func runUpstream() {
	srv := sdk.NewServer(&sdk.Implementation{Name: "stack-test-upstream", Version: "1"}, nil)
	sdk.AddTool(srv, &sdk.Tool{Name: "wait", Description: "Answer once released."},
		func(ctx context.Context, _ *sdk.CallToolRequest, in struct {
			Path string `json:"path"`
		}) (*sdk.CallToolResult, any, error) {
			if err := os.WriteFile(in.Path+".started", nil, 0o644); err != nil {
				return nil, nil, err
			}
			for {
				if _, err := os.Stat(in.Path); err == nil {
					return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: "released"}}}, nil, nil
				}
				select {
				case <-ctx.Done():
					return nil, nil, ctx.Err()
				case <-time.After(5 * time.Millisecond):
				}
			}
		})
	if err := srv.Run(context.Background(), &sdk.StdioTransport{}); err != nil {
		fmt.Fprintln(os.Stderr, "upstream:", err)
	}
}

const policyYAML = `version: agentgov/v1
name: open
default: allow
`

func sum(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// testConfig is a configuration with an agent token (agent-tok) and the
// MCP upstream "slow", filled and valid.
func testConfig(t *testing.T) *config.Config {
	t.Helper()
	dir := t.TempDir()
	pol := filepath.Join(dir, "policies")
	os.MkdirAll(pol, 0o755)
	os.WriteFile(filepath.Join(pol, "open.yaml"), []byte(policyYAML), 0o644)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cfg := &config.Config{
		Data: filepath.Join(dir, "data"), Policies: pol,
		Tokens: []config.Token{{Name: "a1", Role: config.AgentRole, Agent: "a1", SHA256: sum("agent-tok")}},
		MCP: config.MCP{
			Lock: filepath.Join(dir, "mcp.lock"), TrustOnFirstUse: true,
			Servers: map[string]config.MCPServer{"slow": {Command: []string{exe}, Env: map[string]string{upstreamEnv: "1"}}},
		},
	}
	cfg.Audit.CheckpointInterval = 50 * time.Millisecond
	cfg.Fill()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// running is a stack being run.
type running struct {
	*Stack
	url  string
	stop context.CancelFunc
	done chan struct{}
	err  error // Run's, once done is closed
}

// wait waits for Run to return and gives its error.
func (r *running) wait() error {
	<-r.done
	return r.err
}

// run opens the stack of cfg with its HTTP front and runs it; tweak may
// change the stack before it runs.
func run(t *testing.T, cfg *config.Config, tweak func(*Stack)) *running {
	t.Helper()
	return runWith(t, cfg, Options{}, tweak)
}

// runWith is run with options.
func runWith(t *testing.T, cfg *config.Config, opt Options, tweak func(*Stack)) *running {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	st, err := Open(context.Background(), cfg, opt)
	if err != nil {
		t.Fatal(err)
	}
	front, err := st.HTTP(ln, HTTPOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if tweak != nil {
		tweak(st)
	}
	ctx, stop := context.WithCancel(context.Background())
	r := &running{Stack: st, url: "http://" + ln.Addr().String(), stop: stop, done: make(chan struct{})}
	go func() {
		r.err = st.Run(ctx, front)
		close(r.done)
	}()
	t.Cleanup(func() {
		stop()
		select {
		case <-r.done:
		case <-time.After(time.Minute):
			t.Error("the stack did not stop")
		}
	})
	for i := 0; ; i++ {
		resp, err := http.Get(r.url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return r
			}
		}
		if i == 500 {
			t.Fatalf("the stack never became ready: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func decide(url string) (int, error) {
	req, _ := http.NewRequest("POST", url+"/v1/decide", strings.NewReader(`{"tool":{"name":"read_file"},"args":{"path":"/tmp/x"}}`))
	req.Header.Set("Authorization", "Bearer agent-tok")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// An audit writer that dies stops the whole stack with its error: the
// server does not keep answering without a log.
func TestAnAuditWriterThatDiesStopsTheStack(t *testing.T) {
	died := make(chan struct{})
	r := run(t, testConfig(t), func(s *Stack) {
		if s.loops[0].name != "audit log writer" {
			t.Fatalf("the first loop is %q", s.loops[0].name)
		}
		writer := s.loops[0].run
		s.loops[0].run = func(ctx context.Context) error {
			wctx, cancel := context.WithCancel(ctx)
			defer cancel()
			go func() {
				select {
				case <-died:
					cancel()
				case <-wctx.Done():
				}
			}()
			writer(wctx)
			if ctx.Err() == nil {
				return errors.New("disk on fire")
			}
			return nil
		}
	})
	if code, err := decide(r.url); err != nil || code != 200 {
		t.Fatalf("a decision before: %d %v", code, err)
	}
	close(died)
	err := r.wait()
	if err == nil || !strings.Contains(err.Error(), "disk on fire") || !strings.Contains(err.Error(), "audit log writer") {
		t.Fatalf("Run = %v; want the writer's error, naming it", err)
	}
	if code, err := decide(r.url); err == nil {
		t.Fatalf("the server still answers (%d) after its audit writer died", code)
	}
}

// The variant: a loop that returns without an error before it is asked to
// stop has died too.
func TestALoopThatReturnsEarlyStopsTheStack(t *testing.T) {
	r := run(t, testConfig(t), func(s *Stack) {
		for i, l := range s.loops {
			if l.name == "budget reservations" {
				s.loops[i].run = func(ctx context.Context) error {
					select {
					case <-time.After(100 * time.Millisecond):
					case <-ctx.Done():
					}
					return nil
				}
			}
		}
	})
	err := r.wait()
	if err == nil || !strings.Contains(err.Error(), "budget reservations: stopped by itself") {
		t.Fatalf("Run = %v; want the loop named", err)
	}
	if _, err := decide(r.url); err == nil {
		t.Fatal("the server still answers after a loop stopped")
	}
}

// An MCP call in flight when the stack is asked to stop is answered, and
// its result and outcome are in the audit log, signed by the final
// checkpoint, when Run returns.
func TestAnMCPCallInFlightAtShutdownIsRecorded(t *testing.T) {
	cfg := testConfig(t)
	r := run(t, cfg, nil)
	cs, err := sdk.NewClient(&sdk.Implementation{Name: "agent", Version: "1"}, nil).Connect(context.Background(), &sdk.StreamableClientTransport{
		Endpoint: r.url + "/mcp/slow", HTTPClient: &http.Client{Transport: bearer("agent-tok")},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	path := filepath.Join(t.TempDir(), "release")
	type answer struct {
		res *sdk.CallToolResult
		err error
	}
	got := make(chan answer, 1)
	go func() {
		res, err := cs.CallTool(context.Background(), &sdk.CallToolParams{Name: "wait", Arguments: map[string]any{"path": path}})
		got <- answer{res, err}
	}()
	for {
		if _, err := os.Stat(path + ".started"); err == nil {
			break
		}
		select {
		case a := <-got:
			t.Fatalf("the call ended before it reached the upstream: %+v %v", a.res, a.err)
		case <-time.After(5 * time.Millisecond):
		}
	}
	r.stop()
	os.WriteFile(path, nil, 0o644)
	a := <-got
	if a.err != nil || a.res.IsError {
		t.Fatalf("the call in flight: %+v %v", a.res, a.err)
	}
	if err := r.wait(); err != nil {
		t.Fatalf("Run = %v", err)
	}

	// The log, read as audit verify reads it.
	ctx := context.Background()
	db, err := sqlite.OpenAuditReadOnly(ctx, filepath.Join(cfg.Data, sqlite.FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	v, err := audit.LoadVerifier(filepath.Join(cfg.Data, audit.PubFile))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := audit.Verify(ctx, db, v, audit.VerifyOptions{})
	if err != nil || !rep.OK() || rep.Unsigned != 0 {
		t.Fatalf("verify: %+v %v", rep, err)
	}
	entries, err := audit.Entries(ctx, db, -1, 10000)
	if err != nil {
		t.Fatal(err)
	}
	var result, outcome, closed bool
	for _, e := range entries {
		var rec map[string]any
		json.Unmarshal(e.Record, &rec)
		switch e.Kind {
		case "mcp.result":
			result = result || rec["tool"] == "wait" && rec["status"] == "ok"
		case "outcome":
			outcome = true
		case "mcp.session":
			closed = closed || rec["event"] == "close"
		}
	}
	if !result || !outcome || !closed {
		t.Fatalf("after Run: the call's result recorded %v, its outcome %v, the session's close %v", result, outcome, closed)
	}
}

type bearer string

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+string(b))
	return http.DefaultTransport.RoundTrip(r)
}
