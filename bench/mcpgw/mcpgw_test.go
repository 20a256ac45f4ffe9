// Package mcpgw measures what the MCP gateway adds to a tools/call: the same
// call, in the same run, straight to an upstream and through the gateway,
// over stdio and over streamable HTTP.
package mcpgw

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"slices"
	"sync"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/audit"
	"github.com/agentgov/agentgov/govern"
	"github.com/agentgov/agentgov/mcp"
	"github.com/agentgov/agentgov/mcp/pin"
	"github.com/agentgov/agentgov/mcp/wire"
	"github.com/agentgov/agentgov/policy"
	"github.com/agentgov/agentgov/store/sqlite"
)

const policyYAML = `version: agentgov/v1
name: bench
default: deny
rules:
  - id: echo
    match: {tools: ["bench/echo"]}
    effect: allow
`

type echoIn struct {
	Text string `json:"text"`
}

func upstreamServer() *sdk.Server {
	srv := sdk.NewServer(&sdk.Implementation{Name: "bench-upstream", Version: "1"}, nil)
	sdk.AddTool(srv, &sdk.Tool{Name: "echo", Description: "Echo the text back."},
		func(ctx context.Context, _ *sdk.CallToolRequest, in echoIn) (*sdk.CallToolResult, any, error) {
			return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: in.Text}}}, nil, nil
		})
	return srv
}

func engine(tb testing.TB, opts ...govern.Option) *govern.Engine {
	doc, err := policy.Parse("bench.yaml", []byte(policyYAML))
	if err != nil {
		fatal(tb, err)
	}
	set, err := policy.Compile([]*policy.Document{doc})
	if err != nil {
		fatal(tb, err)
	}
	return govern.New(set, opts...)
}

// gateway builds the gateway under test. With a data directory it also
// keeps a durable audit log there, as `agentgov mcp run` does (a SQLite
// file, synced before each acknowledgement): the engine records both
// decisions and the outcome, the gateway the call and its result.
func gateway(tb testing.TB, dial mcp.Dialer, data string) *mcp.Gateway {
	cfg := mcp.Config{Server: "bench", Dial: dial, Decider: engine(tb), Pins: pin.MemoryPins(nil), TrustOnFirstUse: true, Detector: pin.Detectors(), RedactResults: true}
	if data != "" {
		l := auditLog(data)
		cfg.Decider, cfg.Recorder = engine(tb, govern.WithAudit(l)), l
	}
	g, err := mcp.New(cfg)
	if err != nil {
		fatal(tb, err)
	}
	return g
}

// auditLog opens the audit log in dir and runs its writer for the life of
// the process.
func auditLog(dir string) *audit.Log {
	ctx := context.Background()
	db, err := sqlite.OpenDir(ctx, dir)
	if err != nil {
		panic(err)
	}
	signer, verifier, err := audit.LoadOrCreateKey(dir, "bench-audit")
	if err != nil {
		panic(err)
	}
	l, err := audit.Open(ctx, db, signer, verifier, audit.Options{CommitDelay: -1}) // as agentgov mcp run
	if err != nil {
		panic(err)
	}
	go l.Run(ctx)
	return l
}

// fatal ends the benchmark, or the gateway process (which has no testing.TB).
func fatal(tb testing.TB, err error) {
	if tb == nil {
		panic(err)
	}
	tb.Fatal(err)
}

// The benchmark binary is also the upstream server and the stdio gateway.
func TestMain(m *testing.M) {
	switch os.Getenv("MCPGW_ROLE") {
	case "upstream":
		upstreamServer().Run(context.Background(), &sdk.StdioTransport{})
		os.Exit(0)
	case "gateway":
		exe, _ := os.Executable()
		dial, _ := wire.Command([]string{exe}, append(os.Environ(), "MCPGW_ROLE=upstream"), os.Stderr)
		g := gateway(nil, dial, os.Getenv("MCPGW_AUDIT"))
		g.Serve(context.Background(), wire.NewStdioConn(os.Stdin, os.Stdout, nil, 0), mcp.Identity{Agent: action.Agent{ID: "bench"}})
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// connect opens a client session over protocol 2025-11-25 (initialize, a
// session), the revision every figure before the stateless one was taken
// with; connectRev asks for another.
func connect(b *testing.B, t sdk.Transport) *sdk.ClientSession {
	return connectRev(b, t, mcp.RevisionSession)
}

func connectRev(b *testing.B, t sdk.Transport, revision string) *sdk.ClientSession {
	cs, err := sdk.NewClient(&sdk.Implementation{Name: "bench", Version: "1"}, nil).Connect(context.Background(), t, &sdk.ClientSessionOptions{ProtocolVersion: revision})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cs.Close() })
	return cs
}

func stdioClient(b *testing.B, role, data string) *sdk.ClientSession {
	exe, _ := os.Executable()
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), "MCPGW_ROLE="+role, "MCPGW_AUDIT="+data)
	cmd.Stderr = io.Discard
	return connect(b, &sdk.CommandTransport{Command: cmd})
}

func httpUpstream(b *testing.B) string {
	srv := upstreamServer()
	ts := httptest.NewServer(sdk.NewStreamableHTTPHandler(func(*http.Request) *sdk.Server { return srv }, nil))
	b.Cleanup(ts.Close)
	return ts.URL
}

func httpClient(b *testing.B, url string) *sdk.ClientSession {
	return connect(b, &sdk.StreamableClientTransport{Endpoint: url})
}

func httpGateway(b *testing.B, data string) string {
	g := gateway(b, wire.URL(httpUpstream(b), nil), data)
	h := g.HTTPHandler(context.Background(), func(*http.Request) (action.Agent, action.Principal, error) {
		return action.Agent{ID: "bench"}, action.Principal{}, nil
	})
	ts := httptest.NewServer(h)
	b.Cleanup(func() { ts.Close(); h.Close() })
	return ts.URL
}

func call(b *testing.B, cs *sdk.ClientSession) {
	res, err := cs.CallTool(context.Background(), &sdk.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "hello"}})
	if err != nil {
		b.Fatal(err)
	}
	if res.IsError {
		b.Fatalf("call failed: %+v", res.Content[0])
	}
}

// measure runs sequential calls, reporting the p50 latency, then parallel
// calls from 8 goroutines, reporting throughput.
func measure(b *testing.B, cs *sdk.ClientSession) {
	call(b, cs) // warm: pins, catalog, connections
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for b.Loop() {
		t0 := time.Now()
		call(b, cs)
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1e3, "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1e3, "p99-µs")

	const workers, per = 8, 250
	var wg sync.WaitGroup
	t0 := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range per {
				call(b, cs)
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(workers*per)/time.Since(t0).Seconds(), "par-calls/s")
}

func BenchmarkToolsCall(b *testing.B) {
	b.Run("stdio/direct", func(b *testing.B) { measure(b, stdioClient(b, "upstream", "")) })
	b.Run("stdio/gateway", func(b *testing.B) { measure(b, stdioClient(b, "gateway", "")) })
	b.Run("http/direct", func(b *testing.B) { measure(b, httpClient(b, httpUpstream(b))) })
	b.Run("http/gateway", func(b *testing.B) { measure(b, httpClient(b, httpGateway(b, ""))) })
}

// BenchmarkToolsCallPaired measures the gateway against the direct path in
// alternation rather than one after the other, so that the machine's drift
// (on a shared VM the direct p50 alone moves by 2x between runs) weighs on
// both alike. Each iteration makes one direct and one gateway call, in
// alternating order; throughput alternates blocks of parallel calls.
// Reported: both p50s, the added p50 and the share of direct throughput
// the gateway keeps. The +audit cases add the durable audit log (one
// record before each call is forwarded, one after its result), whose cost
// is mostly this disk's fsync.
func BenchmarkToolsCallPaired(b *testing.B) {
	b.Run("stdio", func(b *testing.B) { paired(b, stdioClient(b, "upstream", ""), stdioClient(b, "gateway", "")) })
	b.Run("http", func(b *testing.B) { paired(b, httpClient(b, httpUpstream(b)), httpClient(b, httpGateway(b, ""))) })
	// Protocol 2026-07-28 from the client, on both paths: the gateway
	// relays each stateless request through the agent's session upstream.
	b.Run("http-stateless", func(b *testing.B) {
		stateless := func(url string) *sdk.ClientSession {
			return connectRev(b, &sdk.StreamableClientTransport{Endpoint: url}, mcp.RevisionStateless)
		}
		paired(b, stateless(httpUpstream(b)), stateless(httpGateway(b, "")))
	})
	b.Run("stdio+audit", func(b *testing.B) {
		paired(b, stdioClient(b, "upstream", ""), stdioClient(b, "gateway", b.TempDir()))
	})
	b.Run("http+audit", func(b *testing.B) {
		paired(b, httpClient(b, httpUpstream(b)), httpClient(b, httpGateway(b, b.TempDir())))
	})
}

func paired(b *testing.B, direct, gw *sdk.ClientSession) {
	call(b, direct)
	call(b, gw)
	var dl, gl []time.Duration
	timed := func(cs *sdk.ClientSession, into *[]time.Duration) {
		t0 := time.Now()
		call(b, cs)
		*into = append(*into, time.Since(t0))
	}
	i := 0
	for b.Loop() {
		if i%2 == 0 {
			timed(direct, &dl)
			timed(gw, &gl)
		} else {
			timed(gw, &gl)
			timed(direct, &dl)
		}
		i++
	}
	b.StopTimer()
	slices.Sort(dl)
	slices.Sort(gl)
	dp50, gp50 := dl[len(dl)/2], gl[len(gl)/2]
	b.ReportMetric(float64(dp50.Nanoseconds())/1e3, "direct-p50-µs")
	b.ReportMetric(float64(gp50.Nanoseconds())/1e3, "gateway-p50-µs")
	b.ReportMetric(float64((gp50-dp50).Nanoseconds())/1e3, "added-p50-µs")

	const workers, per, blocks = 8, 100, 6
	var dt, gt time.Duration
	block := func(cs *sdk.ClientSession) time.Duration {
		var wg sync.WaitGroup
		t0 := time.Now()
		for range workers {
			wg.Go(func() {
				for range per {
					call(b, cs)
				}
			})
		}
		wg.Wait()
		return time.Since(t0)
	}
	for k := range blocks {
		if k%2 == 0 {
			dt += block(direct)
			gt += block(gw)
		} else {
			gt += block(gw)
			dt += block(direct)
		}
	}
	// Same number of calls on both paths: throughput kept is the time ratio.
	b.ReportMetric(100*float64(dt)/float64(gt), "kept-%")
}
