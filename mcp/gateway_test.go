package mcp

import (
	"context"
	"io"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/govern"
	"github.com/agentgov/agentgov/mcp/pin"
	"github.com/agentgov/agentgov/mcp/wire"
	"github.com/agentgov/agentgov/policy"
)

type harness struct {
	g       *Gateway
	dec     *testDecider
	rec     *memRecorder
	pins    *pin.Pins
	session *sdk.ClientSession
	changed chan struct{}
}

// startStdio runs a gateway over in-process pipes, as `agentgov mcp run`
// does over its standard input and output, with the Go SDK client in front
// and the test upstream behind.
func startStdio(t *testing.T, mode string, tweak func(*Config), copts *sdk.ClientOptions) *harness {
	t.Helper()
	dial, err := wire.Command(upstreamArgv(t), upstreamEnv(mode), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	return startDial(t, "test", dial, tweak, copts)
}

// startSession is startStdio serving the given session id.
func startSession(t *testing.T, session string, tweak func(*Config)) *harness {
	t.Helper()
	dial, err := wire.Command(upstreamArgv(t), upstreamEnv("clean"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	return startDialSession(t, "test", session, dial, tweak, nil)
}

// startDial is startStdio in front of any upstream.
func startDial(t *testing.T, server string, dial Dialer, tweak func(*Config), copts *sdk.ClientOptions) *harness {
	t.Helper()
	return startDialSession(t, server, "", dial, tweak, copts)
}

func startDialSession(t *testing.T, server, session string, dial Dialer, tweak func(*Config), copts *sdk.ClientOptions) *harness {
	t.Helper()
	if session == "" {
		session = newSessionID()
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	h := &harness{dec: newTestDecider(), rec: &memRecorder{}, changed: make(chan struct{}, 16)}
	pins, err := pin.OpenPins(filepath.Join(t.TempDir(), "mcp.lock"))
	if err != nil {
		t.Fatal(err)
	}
	h.pins = pins
	cfg := Config{Server: server, Dial: dial, Decider: h.dec, Recorder: h.rec, Detector: pin.Detectors(), Pins: pins, TrustOnFirstUse: true, RedactResults: true}
	if tweak != nil {
		tweak(&cfg)
	}
	h.g, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c2gR, c2gW := io.Pipe()
	g2cR, g2cW := io.Pipe()
	conn := wire.NewStdioConn(c2gR, g2cW, closers{c2gR, g2cW}, 0)
	done := make(chan error, 1)
	go func() {
		done <- h.g.ServeSession(ctx, conn, Identity{Agent: action.Agent{ID: "tester"}, Principal: action.Principal{User: "alice"}}, session)
	}()
	t.Cleanup(func() { c2gW.Close(); <-done })
	if copts == nil {
		copts = &sdk.ClientOptions{}
	}
	copts.ToolListChangedHandler = func(context.Context, *sdk.ToolListChangedRequest) { h.changed <- struct{}{} }
	client := sdk.NewClient(&sdk.Implementation{Name: "test-client", Version: "1"}, copts)
	h.session, err = client.Connect(ctx, &sdk.IOTransport{Reader: g2cR, Writer: c2gW}, nil)
	if err != nil {
		t.Fatalf("connect through the gateway: %v", err)
	}
	t.Cleanup(func() { h.session.Close() })
	return h
}

type closers []io.Closer

func (c closers) Close() error {
	for _, x := range c {
		x.Close()
	}
	return nil
}

func (h *harness) call(t *testing.T, name string, args map[string]any) *sdk.CallToolResult {
	t.Helper()
	res, err := h.session.CallTool(context.Background(), &sdk.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("call %s: %v", name, err)
	}
	return res
}

func resultString(r *sdk.CallToolResult) string {
	var b strings.Builder
	for _, c := range r.Content {
		if tc, ok := c.(*sdk.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	return b.String()
}

func toolNames(t *testing.T, cs *sdk.ClientSession) []string {
	t.Helper()
	res, err := cs.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatalf("list tools: %v", err)
	}
	var names []string
	for _, tool := range res.Tools {
		names = append(names, tool.Name)
	}
	return names
}

// With an engine that keeps the audit log, as in agentgov mcp run and
// serve, a call the engine decided is in the log once, as its decision
// (with the digest of its arguments); the gateway adds a record only for
// calls it refused itself, and the result's record beside the outcome.
func TestCallsAuditedOnceWithAnAuditingEngine(t *testing.T) {
	doc, err := policy.Parse("p.yaml", []byte("version: agentgov/v1\nname: p\ndefault: allow\nrules: []\n"))
	if err != nil {
		t.Fatal(err)
	}
	set, err := policy.Compile([]*policy.Document{doc})
	if err != nil {
		t.Fatal(err)
	}
	rec := &memRecorder{}
	h := startStdio(t, "clean", func(c *Config) {
		c.Decider, c.Recorder = govern.New(set, govern.WithAudit(rec)), rec
	}, nil)
	if res := h.call(t, "echo", map[string]any{"text": "hi there"}); res.IsError {
		t.Fatalf("echo = %q", resultString(res))
	}
	if res := h.call(t, "no-such-tool", nil); !res.IsError {
		t.Fatalf("a call to a tool the server lacks went through: %q", resultString(res))
	}
	rec.await(t, "outcome", 1)
	rec.await(t, "mcp.result", 1)

	var pre []map[string]any
	for _, d := range rec.kind("decision") {
		if a, _ := d["action"].(map[string]any); a["point"] == nil || a["point"] == "pre_tool_call" {
			pre = append(pre, d)
		}
	}
	if len(pre) != 1 || pre[0]["args_digest"] != digestOf(map[string]any{"text": "hi there"}) {
		t.Fatalf("pre-call decision records = %v; want the echo call's, with its args digest", pre)
	}
	calls := rec.kind("mcp.call")
	if len(calls) != 1 || calls[0]["tool"] != "no-such-tool" || calls[0]["effect"] != "deny" {
		t.Fatalf("mcp.call records = %v; want only the call the gateway refused itself", calls)
	}
	if n := len(rec.kind("outcome")); n != 1 {
		t.Errorf("%d outcome records, want 1", n)
	}
	if res := rec.kind("mcp.result"); len(res) != 1 || res[0]["status"] != "ok" {
		t.Errorf("mcp.result records = %v", res)
	}
}

func TestGatewayDecidesEveryCall(t *testing.T) {
	h := startStdio(t, "clean", nil, nil)

	names := toolNames(t, h.session)
	if strings.Contains(strings.Join(names, ","), "forbidden") {
		t.Errorf("tools/list shows %v; the tool denied outright must be hidden", names)
	}
	if !strings.Contains(strings.Join(names, ","), "echo") {
		t.Errorf("tools/list shows %v; want echo", names)
	}

	res := h.call(t, "echo", map[string]any{"text": "hi there"})
	if res.IsError || resultString(res) != "hi there" {
		t.Fatalf("echo through the gateway = %+v %q", res.IsError, resultString(res))
	}
	pre := calls(h.dec.seen(action.PreToolCall, "echo"))
	if len(pre) != 1 || pre[0].Tool.Server != "test" || pre[0].Args["text"] != "hi there" || pre[0].Agent.ID != "tester" || pre[0].Session == "" {
		t.Fatalf("pre_tool_call actions = %+v", pre)
	}
	post := h.dec.seen(action.PostToolCall, "echo")
	// The text first; then the result's other strings (the server's
	// _meta), which reach the client too.
	if len(post) != 1 || strings.Split(post[0].Content, "\n")[0] != "hi there" {
		t.Fatalf("post_tool_call actions = %+v; want one with the result as content", post)
	}

	res = h.call(t, "forbidden", nil)
	if !res.IsError || !strings.Contains(resultString(res), "deleting is not allowed") {
		t.Fatalf("denied call = %v %q; want isError naming the reason", res.IsError, resultString(res))
	}

	calls := h.rec.kind("mcp.call")
	if len(calls) != 2 {
		t.Fatalf("audit has %d mcp.call records, want 2 (allowed and denied): %v", len(calls), calls)
	}
	if calls[0]["args_sha256"] != digestOf(map[string]any{"text": "hi there"}) || calls[0]["effect"] != "allow" {
		t.Errorf("allowed call record = %v", calls[0])
	}
	if calls[1]["effect"] != "deny" || calls[1]["tool"] != "forbidden" {
		t.Errorf("denied call record = %v", calls[1])
	}
	results := h.rec.await(t, "mcp.result", 1)
	if len(results) != 1 || results[0]["status"] != "ok" {
		t.Fatalf("result records = %v", results)
	}
	echoID := action.NewID(1, 0, idOf(h.dec, "echo"))
	o, ok := h.dec.outcome(t, echoID)
	if !ok || o.Status != "ok" {
		t.Errorf("outcome of the echo call = %+v, %v", o, ok)
	}

	// What the gateway does not govern passes through.
	pr, err := h.session.GetPrompt(context.Background(), &sdk.GetPromptParams{Name: "greet"})
	if err != nil || len(pr.Messages) != 1 {
		t.Fatalf("prompts/get through the gateway: %v %v", pr, err)
	}
	rr, err := h.session.ReadResource(context.Background(), &sdk.ReadResourceParams{URI: "test://readme"})
	if err != nil || rr.Contents[0].Text != "read me" {
		t.Fatalf("resources/read through the gateway: %v %v", rr, err)
	}
	if _, err := h.session.CallTool(context.Background(), &sdk.CallToolParams{Name: "no_such_tool"}); err != nil {
		t.Fatalf("unknown tool: %v", err)
	}
}

// calls drops the argument-less probes with which tools/list asks whether a
// tool is denied outright.
func calls(as []action.Action) []action.Action {
	var out []action.Action
	for _, a := range as {
		if a.Args != nil {
			out = append(out, a)
		}
	}
	return out
}

// idOf finds the sequence number the test decider gave the first
// pre_tool_call of tool.
func idOf(d *testDecider, tool string) uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i, a := range d.actions {
		if a.Point == action.PreToolCall && a.Tool.Name == tool && a.Args != nil {
			return uint64(i + 1)
		}
	}
	return 0
}

func TestApprovalTicketAndRetry(t *testing.T) {
	h := startStdio(t, "clean", nil, nil)
	res := h.call(t, "pay", map[string]any{"amount": 500})
	text := resultString(res)
	if !res.IsError || !strings.Contains(text, "apr_") || !strings.Contains(text, "retry") {
		t.Fatalf("call needing approval = %v %q; want the ticket and how to retry", res.IsError, text)
	}
	ticket := regexp.MustCompile(`apr_\d+`).FindString(text)
	// Retried before anyone approved: still waiting, and told to retry
	// once approved, not never to retry.
	res = h.call(t, "pay", map[string]any{"amount": 500})
	if text := resultString(res); !res.IsError || !strings.Contains(text, "still waits for approval ticket "+ticket) ||
		!strings.Contains(text, "retry exactly the same call") || strings.Contains(text, "Do not retry") {
		t.Fatalf("early retry = %v %q", res.IsError, text)
	}
	h.dec.Approve(context.Background(), ticket, "bob", "")
	res = h.call(t, "pay", map[string]any{"amount": 500})
	if res.IsError || resultString(res) != "paid 500" {
		t.Fatalf("retry after approval = %v %q", res.IsError, resultString(res))
	}
	retries := h.dec.seen(action.PreToolCall, "pay")
	if retries[len(retries)-1].ApprovalID != ticket {
		t.Errorf("the retry was decided without its ticket: %+v", retries[len(retries)-1])
	}
	// The ticket approved the call: its result is decided without it, or
	// the engine would try to redeem it again, for the wrong point.
	for _, post := range h.dec.seen(action.PostToolCall, "pay") {
		if post.ApprovalID != "" {
			t.Errorf("the result was decided under ticket %s", post.ApprovalID)
		}
	}
}

// A person who declines is asked again when the call is made again: the
// declined ticket, which nobody else could approve here, is not kept for
// the call (else the retry would only be told it is still pending).
func TestDeclinedElicitationAsksAgain(t *testing.T) {
	asked := make(chan string, 2)
	answer := []bool{false, true}
	h := startStdio(t, "clean", func(c *Config) { c.ElicitApprovals, c.ElicitApprover = true, "os-user:alice" }, &sdk.ClientOptions{
		ElicitationHandler: func(ctx context.Context, r *sdk.ElicitRequest) (*sdk.ElicitResult, error) {
			asked <- r.Params.Message
			yes := answer[0]
			answer = answer[1:]
			return &sdk.ElicitResult{Action: "accept", Content: map[string]any{"approve": yes}}, nil
		},
	})
	if res := h.call(t, "pay", map[string]any{"amount": 700}); !res.IsError {
		t.Fatalf("a declined call went through: %q", resultString(res))
	}
	if res := h.call(t, "pay", map[string]any{"amount": 700}); res.IsError || resultString(res) != "paid 700" {
		t.Fatalf("the call made again = %v %q; want the person asked again, and approving", res.IsError, resultString(res))
	}
	if len(asked) != 2 {
		t.Fatalf("the person was asked %d times; want twice", len(asked))
	}
}

// Remembered tickets live where Config.Tickets keeps them: a gateway
// restarted over the same TicketFile, serving the same session id, lets
// the approved call through when it is made again; another session's
// identical call is not decided under it.
func TestApprovalTicketRememberedAcrossRestarts(t *testing.T) {
	file := filepath.Join(t.TempDir(), "tickets.json")
	dec := newTestDecider()
	serve := func(session string) *harness {
		tickets, err := OpenTicketFile(file)
		if err != nil {
			t.Fatal(err)
		}
		return startSession(t, session, func(c *Config) { c.Decider, c.Tickets = dec, tickets })
	}
	h := serve("desk")
	res := h.call(t, "pay", map[string]any{"amount": 500})
	ticket, _ := res.Meta["agentgov/approval_id"].(string)
	if !res.IsError || ticket == "" {
		t.Fatalf("call needing approval = %q %v", resultString(res), res.Meta)
	}
	key := "pay " + digestOf(map[string]any{"amount": int64(500)})
	if got, _ := OpenTicketFile(file); got.Ticket("desk", key) != ticket {
		t.Fatalf("the ticket file does not remember %s for the call", ticket)
	}
	h.session.Close()
	dec.Approve(context.Background(), ticket, "bob", "")

	if res := serve("elsewhere").call(t, "pay", map[string]any{"amount": 500}); !res.IsError {
		t.Fatalf("another session's call went through under the ticket: %q", resultString(res))
	}
	if res := serve("desk").call(t, "pay", map[string]any{"amount": 500}); res.IsError || resultString(res) != "paid 500" {
		t.Fatalf("the approved call after a restart = %v %q", res.IsError, resultString(res))
	}
	if got, _ := OpenTicketFile(file); got.Ticket("desk", key) != "" {
		t.Errorf("a used ticket is still remembered")
	}
}

// On stdio the client is a person's desktop, the person someone other
// than the agent: they may approve a call when asked, and the approval
// records who answered and how.
func TestApprovalThroughElicitation(t *testing.T) {
	asked := make(chan string, 1)
	h := startStdio(t, "clean", func(c *Config) { c.ElicitApprovals, c.ElicitApprover = true, "os-user:alice" }, &sdk.ClientOptions{
		ElicitationHandler: func(ctx context.Context, r *sdk.ElicitRequest) (*sdk.ElicitResult, error) {
			asked <- r.Params.Message
			return &sdk.ElicitResult{Action: "accept", Content: map[string]any{"approve": true}}, nil
		},
	})
	res := h.call(t, "pay", map[string]any{"amount": 700})
	if res.IsError || resultString(res) != "paid 700" {
		t.Fatalf("call approved through elicitation = %v %q", res.IsError, resultString(res))
	}
	if msg := <-asked; !strings.Contains(msg, "test/pay") || !strings.Contains(msg, "amount: 700") {
		t.Errorf("the user was asked %q; want the tool and its arguments", msg)
	}
	by := h.dec.approvals()
	if len(by) != 1 {
		t.Fatalf("approvals = %v; want one", by)
	}
	for _, a := range by {
		if a[0] != "os-user:alice" || !strings.Contains(a[1], "via MCP elicitation on stdio") {
			t.Errorf("approved by %q (%q); want the person at the stdio client, via elicitation", a[0], a[1])
		}
	}
}

func TestDriftMidSessionQuarantinesTool(t *testing.T) {
	var alertsMu sync.Mutex
	alerts := map[string]string{}
	h := startStdio(t, "clean", func(c *Config) {
		c.Alert = func(_ context.Context, kind, summary string, fields map[string]any) {
			alertsMu.Lock()
			defer alertsMu.Unlock()
			if fields["tool"] == "echo" {
				alerts[kind] = summary
			}
		}
	}, nil)
	if res := h.call(t, "echo", map[string]any{"text": "before"}); res.IsError {
		t.Fatalf("echo before the change: %q", resultString(res))
	}
	if res := h.call(t, "mutate", nil); res.IsError {
		t.Fatalf("mutate: %q", resultString(res))
	}
	<-h.changed // the upstream announced notifications/tools/list_changed
	res := h.call(t, "echo", map[string]any{"text": 1, "extra": "x"})
	text := resultString(res)
	if !res.IsError || !strings.Contains(text, "quarantined") || !strings.Contains(text, "parameter text changed type from string to number") {
		t.Fatalf("call to the drifted tool = %v %q; want a denial naming the change", res.IsError, text)
	}
	if len(calls(h.dec.seen(action.PreToolCall, "echo"))) != 1 {
		t.Errorf("a quarantined tool's call reached the engine")
	}
	drift := h.rec.kind("mcp.drift")
	var found bool
	for _, d := range drift {
		if d["tool"] == "echo" && d["level"] == "critical" && strings.Contains(d["what"].(string), "changed type from string to number") {
			found = true
		}
	}
	if !found {
		t.Fatalf("audit drift records = %v; want one naming the type change", drift)
	}
	// A person hears of it: the drift and the quarantine are alerts.
	alertsMu.Lock()
	if !strings.Contains(alerts["drift"], "changed type from string to number") || !strings.Contains(alerts["quarantine"], "echo") {
		t.Errorf("alerts = %v; want a drift and a quarantine of echo", alerts)
	}
	alertsMu.Unlock()
	if names := strings.Join(toolNames(t, h.session), ","); strings.Contains(names, "echo") {
		t.Errorf("tools/list still offers the quarantined tool: %s", names)
	}
}

func TestResultsAreRedactedOrWithheld(t *testing.T) {
	h := startStdio(t, "clean", nil, nil)
	res := h.call(t, "leak", nil)
	text := resultString(res)
	if strings.Contains(text, "AKIAIOSFODNN7EXAMPLE") || strings.Contains(text, "jane.doe@example.com") || !strings.Contains(text, "[REDACTED") || !strings.Contains(text, "eu-west-1") {
		t.Fatalf("leaky result reached the client as %q", text)
	}
	res = h.call(t, "echo", map[string]any{"text": "the TOPSECRET plan"})
	if !res.IsError || strings.Contains(resultString(res), "plan") || !strings.Contains(resultString(res), "no-topsecret") {
		t.Fatalf("result the policy denies = %v %q; want it withheld with the reason", res.IsError, resultString(res))
	}
}

// A tool whose name is another server's, where the tools of both reach
// the client in one namespace (a shared Registry), is quarantined.
func TestPoisonedAndShadowingToolsAreQuarantined(t *testing.T) {
	h := startStdio(t, "poisoned", func(c *Config) {
		c.Registry = NewRegistry()
		c.Registry.set("mail", []string{"send_email"})
	}, nil)
	names := strings.Join(toolNames(t, h.session), ",")
	if strings.Contains(names, "add") || strings.Contains(names, "send_email") {
		t.Fatalf("tools/list shows %s; the poisoned and the shadowing tool must be hidden", names)
	}
	if !strings.Contains(names, "echo") {
		t.Fatalf("tools/list shows %s; clean tools must stay", names)
	}
	res := h.call(t, "add", map[string]any{"a": 1, "b": 2})
	if !res.IsError || !strings.Contains(resultString(res), "poisoned") {
		t.Fatalf("call to the poisoned tool = %v %q", res.IsError, resultString(res))
	}
	kinds := map[string]bool{}
	for _, f := range h.rec.kind("mcp.finding") {
		kinds[f["tool"].(string)+":"+f["kind"].(string)] = true
	}
	if !kinds["add:poisoning"] || !kinds["send_email:shadowing"] {
		t.Fatalf("audited findings = %v", kinds)
	}
}

func TestUpstreamDeathMidCall(t *testing.T) {
	h := startStdio(t, "clean", nil, nil)
	_, err := h.session.CallTool(context.Background(), &sdk.CallToolParams{Name: "crash"})
	if err == nil || !strings.Contains(err.Error(), "closed the connection") {
		t.Fatalf("call whose upstream died = %v; want an error saying so", err)
	}
	// The gateway restarts the upstream and goes on serving.
	res := h.call(t, "echo", map[string]any{"text": "still here"})
	if res.IsError || resultString(res) != "still here" {
		t.Fatalf("call after the upstream died = %v %q", res.IsError, resultString(res))
	}
	results := h.rec.await(t, "mcp.result", 2)
	if len(results) == 0 || results[0]["status"] != "error" {
		t.Errorf("the died call's result record = %v", results[0])
	}
}

func TestAuditFailureDeniesCalls(t *testing.T) {
	h := startStdio(t, "clean", nil, nil)
	h.rec.mu.Lock()
	h.rec.fail = io.ErrClosedPipe
	h.rec.mu.Unlock()
	res := h.call(t, "echo", map[string]any{"text": "x"})
	if !res.IsError || !strings.Contains(resultString(res), "audit log") {
		t.Fatalf("call with a broken audit log = %v %q", res.IsError, resultString(res))
	}
}

func digestOf(args map[string]any) string {
	d, _, _ := action.ArgsDigest(args)
	return d
}

// Two gateways for two servers that happen to offer the same tools (two
// filesystem servers), each served to its own client, pinned in one lock:
// neither quarantines the other's tools, since no client sees both under
// the same names. The lock records both.
func TestTwoServersSharingToolNamesDoNotQuarantineEachOther(t *testing.T) {
	pins, err := pin.OpenPins(filepath.Join(t.TempDir(), "mcp.lock"))
	if err != nil {
		t.Fatal(err)
	}
	share := func(c *Config) { c.Pins = pins }
	dial := func() Dialer {
		d, err := wire.Command(upstreamArgv(t), upstreamEnv("clean"), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	a := startDial(t, "files-a", dial(), share, nil)
	b := startDial(t, "files-b", dial(), share, nil)
	for _, h := range []*harness{a, b, a} {
		if names := strings.Join(toolNames(t, h.session), ","); !strings.Contains(names, "echo") {
			t.Fatalf("%s lists %s; want echo", h.g.Server(), names)
		}
		if res := h.call(t, "echo", map[string]any{"text": "hi"}); res.IsError {
			t.Fatalf("%s: echo = %q", h.g.Server(), resultString(res))
		}
		if f := h.rec.kind("mcp.finding"); len(f) != 0 {
			t.Fatalf("%s audited findings %v", h.g.Server(), f)
		}
	}
	l, err := pin.ReadLock(pins.Path())
	if err != nil || len(l.Servers["files-a"]) == 0 || len(l.Servers["files-b"]) == 0 {
		t.Fatalf("the lock holds %v (%v); want both servers pinned", l, err)
	}
}
