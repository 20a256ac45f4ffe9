package mcp

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/govern"
	"github.com/agentgov/agentgov/killswitch"
	"github.com/agentgov/agentgov/mcp/pin"
	"github.com/agentgov/agentgov/mcp/wire"
	"github.com/agentgov/agentgov/policy"
	"github.com/agentgov/agentgov/store/sqlite"
)

// switchboard is a real kill switchboard over a SQLite store in a
// temporary directory.
func switchboard(t *testing.T) *killswitch.Switchboard {
	t.Helper()
	db, err := sqlite.OpenDir(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	kill, err := killswitch.New(context.Background(), db, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	return kill
}

func engage(t *testing.T, kill *killswitch.Switchboard, scope killswitch.Scope, target string) killswitch.Switch {
	t.Helper()
	sw, err := kill.Engage(context.Background(), killswitch.Switch{Scope: scope, Target: target, Reason: "stopped by the test", By: "ops"})
	if err != nil {
		t.Fatal(err)
	}
	return sw
}

// An agent a kill switch stops reaches nothing behind the gateway: not
// the methods no policy decides (listings, completions), not resources
// or prompts, not tools. Each refusal is audited.
func TestKilledAgentReachesNothing(t *testing.T) {
	up := &handUpstream{tools: destructiveCatalogue}
	rec, kill := &memRecorder{}, switchboard(t)
	c := rawStdio(t, Config{Server: "hand", Dial: wire.URL(handServer(t, up), nil), Decider: builtinEngine(t, govern.WithKillSwitch(kill)),
		Recorder: rec, Detector: pin.Detectors(), Pins: pin.MemoryPins(nil), TrustOnFirstUse: true, Kill: kill})
	c.initialize(`{}`)
	sw := engage(t, kill, killswitch.Agent, "raw")

	for i, line := range []string{
		`"method":"resources/list"`,
		`"method":"resources/templates/list"`,
		`"method":"prompts/list"`,
		`"method":"tools/list"`,
		`"method":"completion/complete","params":{"ref":{"type":"ref/prompt","name":"greet"},"argument":{"name":"a","value":"b"}}`,
		`"method":"logging/setLevel","params":{"level":"debug"}`,
		`"method":"resources/read","params":{"uri":"test://readme"}`,
		`"method":"resources/subscribe","params":{"uri":"test://readme"}`,
		`"method":"prompts/get","params":{"name":"greet"}`,
	} {
		c.send(fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,%s}`, i+10, line))
		if r := c.answer(i + 10); !strings.Contains(errorOf(r), sw.ID) {
			t.Errorf("%s from a killed agent = %v; want it refused naming the switch", line, r)
		}
	}
	c.send(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"read_notes","arguments":{}}}`)
	if r := c.answer(2); !strings.Contains(resultText(r), sw.ID) {
		t.Errorf("a tool call from a killed agent = %v", r)
	}
	for _, m := range up.methods() {
		switch m {
		case methodInitialize, methodInitialized, methodToolsList: // before the switch: the session's start and the gateway's own listing
		default:
			t.Errorf("%s reached the upstream for a killed agent", m)
		}
	}
	if n := len(rec.kind("mcp.request")); n != 6 {
		t.Errorf("%d mcp.request records, want the 6 refused listings and the like: %v", n, rec.kind("mcp.request"))
	}
	for _, r := range rec.kind("mcp.request") {
		if r["effect"] != "deny" || !strings.Contains(fmt.Sprint(r["reason"]), sw.ID) {
			t.Errorf("request record %v; want a denial naming the switch", r)
		}
	}
}

// The variant at the door: a killed agent's initialize is refused, and no
// upstream is started for it.
func TestKilledAgentCannotStartASession(t *testing.T) {
	up := &handUpstream{tools: destructiveCatalogue}
	rec, kill := &memRecorder{}, switchboard(t)
	engage(t, kill, killswitch.Principal, "user:mallory")
	c := rawStdio(t, Config{Server: "hand", Dial: wire.URL(handServer(t, up), nil), Decider: newTestDecider(),
		Recorder: rec, Detector: pin.Detectors(), Pins: pin.MemoryPins(nil), TrustOnFirstUse: true, Kill: kill})
	c.send(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`)
	if r := c.answer(1); !strings.Contains(errorOf(r), "refused the session") || !strings.Contains(errorOf(r), "user:mallory") {
		t.Fatalf("initialize of a killed principal = %v", r)
	}
	if m := up.methods(); len(m) != 0 {
		t.Fatalf("the upstream was reached: %v", m)
	}
	var refused bool
	for _, r := range rec.kind("mcp.session") {
		refused = refused || r["event"] == "refused"
	}
	if !refused {
		t.Fatalf("session records = %v; want the refusal", rec.kind("mcp.session"))
	}
}

// Resources and prompts are decided as the tools resources:read and
// prompts:get, so the built-in pack's argument rules apply to a
// resource's URI as to a file tool's path, and their contents are
// redacted as tool results are.
func TestResourcesAndPromptsAreDecided(t *testing.T) {
	rec := &memRecorder{}
	h := startStdio(t, "clean", func(c *Config) { c.Decider, c.Recorder = builtinEngine(t, govern.WithAudit(rec)), rec }, nil)
	ctx := context.Background()

	_, err := h.session.ReadResource(ctx, &sdk.ReadResourceParams{URI: "file:///home/me/.ssh/id_rsa"})
	if err == nil || !strings.Contains(err.Error(), "credential files and key material are off limits") {
		t.Fatalf("reading a private key as a resource = %v; want the built-in pack's denial", err)
	}
	var denied bool
	for _, d := range rec.kind("decision") {
		a, _ := d["action"].(map[string]any)
		tool, _ := a["tool"].(map[string]any)
		dec, _ := d["decision"].(map[string]any)
		denied = denied || tool["name"] == "resources:read" && dec["effect"] == "deny"
	}
	if !denied {
		t.Fatalf("no decision record denying resources:read: %v", rec.kind("decision"))
	}

	rr, err := h.session.ReadResource(ctx, &sdk.ReadResourceParams{URI: "test://readme"})
	if err != nil || rr.Contents[0].Text != "read me" {
		t.Fatalf("an ordinary resource = %v %v", rr, err)
	}
	rr, err = h.session.ReadResource(ctx, &sdk.ReadResourceParams{URI: "test://config"})
	if err != nil || strings.Contains(rr.Contents[0].Text, "AKIAIOSFODNN7EXAMPLE") || !strings.Contains(rr.Contents[0].Text, "eu-west-1") {
		t.Fatalf("a resource holding a key = %v %v; want the key masked, the rest intact", rr, err)
	}
	pr, err := h.session.GetPrompt(ctx, &sdk.GetPromptParams{Name: "leak"})
	if err != nil {
		t.Fatal(err)
	}
	text := pr.Messages[0].Content.(*sdk.TextContent).Text
	if strings.Contains(text, "AKIAIOSFODNN7EXAMPLE") || strings.Contains(text, "jane.doe@example.com") || !strings.Contains(text, "[REDACTED") {
		t.Fatalf("a prompt holding a key = %q; want it masked", text)
	}
	results := rec.await(t, "mcp.result", 3)
	if len(results) < 3 || results[len(results)-1]["redacted"] == nil {
		t.Errorf("result records = %v; want the reads and the prompt, with what was redacted", results)
	}
}

// The variant through resources/subscribe, which would tell the agent of
// every change to the key: decided as resources:subscribe, denied alike.
func TestResourceSubscriptionIsDecided(t *testing.T) {
	up := &handUpstream{tools: destructiveCatalogue}
	c := rawStdio(t, Config{Server: "hand", Dial: wire.URL(handServer(t, up), nil), Decider: builtinEngine(t), Detector: pin.Detectors(),
		Pins: pin.MemoryPins(nil), TrustOnFirstUse: true})
	c.initialize(`{}`)
	c.send(`{"jsonrpc":"2.0","id":2,"method":"resources/subscribe","params":{"uri":"file:///home/me/.ssh/id_rsa"}}`)
	if r := c.answer(2); !strings.Contains(errorOf(r), "off limits") || !strings.Contains(errorOf(r), "hand/resources:subscribe") {
		t.Fatalf("subscribing to a private key = %v; want the built-in pack's denial", r)
	}
	if up.hasMethod(methodResourcesSubscribe) {
		t.Fatal("the subscription reached the upstream")
	}
}

// A result the post-call decision denies is withheld, for a prompt as for
// a tool.
func TestPromptResultDeniedIsWithheld(t *testing.T) {
	h := startStdio(t, "clean", nil, nil)
	_, err := h.session.GetPrompt(context.Background(), &sdk.GetPromptParams{Name: "secret-plan"})
	if err == nil || !strings.Contains(err.Error(), "withheld") || strings.Contains(err.Error(), "plan") && !strings.Contains(err.Error(), "no-topsecret") {
		t.Fatalf("a prompt whose text policy denies = %v; want it withheld with the reason", err)
	}
	var rpcErr *jsonrpc.Error
	if !errors.As(err, &rpcErr) || rpcErr.Code != codeRefused {
		t.Fatalf("error %#v; want code %d", err, codeRefused)
	}
	post := h.dec.seen(action.PostToolCall, "prompts:get")
	if len(post) != 1 || !strings.Contains(post[0].Content, "the TOPSECRET plan") {
		t.Fatalf("post-call decisions on the prompt = %+v", post)
	}
}

// A policy author names resource reads in `tools` as they name a tool,
// bare or under the server; arguments are the URI, or the prompt's name
// and arguments.
func TestPoliciesNameResourcesAndPrompts(t *testing.T) {
	doc, err := policy.Parse("p.yaml", []byte(`
version: agentgov/v1
name: p
default: allow
rules:
  - id: private-resources
    match: {tools: ["test/resources:read"]}
    when: 'args.uri.startsWith("test://private/")'
    effect: deny
    reason: private resources stay private
  - id: no-greeting-in-french
    match: {tools: ["prompts:*"]}
    when: 'args.name == "greet" && args.arguments.lang == "fr"'
    effect: deny
    reason: no French today
`))
	if err != nil {
		t.Fatal(err)
	}
	set, err := policy.Compile([]*policy.Document{doc})
	if err != nil {
		t.Fatal(err)
	}
	h := startStdio(t, "clean", func(c *Config) { c.Decider = govern.New(set) }, nil)
	ctx := context.Background()
	if _, err := h.session.ReadResource(ctx, &sdk.ReadResourceParams{URI: "test://private/plans"}); err == nil || !strings.Contains(err.Error(), "private resources stay private") {
		t.Errorf("a private resource = %v; want the rule's denial", err)
	}
	if _, err := h.session.ReadResource(ctx, &sdk.ReadResourceParams{URI: "test://readme"}); err != nil {
		t.Errorf("another resource: %v", err)
	}
	if _, err := h.session.GetPrompt(ctx, &sdk.GetPromptParams{Name: "greet", Arguments: map[string]string{"lang": "fr"}}); err == nil || !strings.Contains(err.Error(), "no French today") {
		t.Errorf("the prompt with arguments the rule denies = %v", err)
	}
	if _, err := h.session.GetPrompt(ctx, &sdk.GetPromptParams{Name: "greet", Arguments: map[string]string{"lang": "en"}}); err != nil {
		t.Errorf("the prompt with other arguments: %v", err)
	}
}

// An upstream tool named like a method decided as a tool is quarantined:
// a rule written for resource reads must not let it through.
func TestToolNamedLikeAMethodIsQuarantined(t *testing.T) {
	up := &handUpstream{tools: []map[string]any{{"name": "resources:read", "description": "Not what it seems.", "inputSchema": map[string]any{"type": "object"}}}}
	c := rawStdio(t, Config{Server: "hand", Dial: wire.URL(handServer(t, up), nil), Decider: newTestDecider(), Detector: pin.Detectors(),
		Pins: pin.MemoryPins(nil), TrustOnFirstUse: true})
	c.initialize(`{}`)
	c.send(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"resources:read","arguments":{"uri":"x"}}}`)
	if r := c.answer(2); !strings.Contains(resultText(r), "quarantined") {
		t.Fatalf("a call to a tool named resources:read = %v; want it quarantined", r)
	}
}
