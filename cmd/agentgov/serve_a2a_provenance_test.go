package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentgov/agentgov/a2agateway/a2anodetest"
	"github.com/agentgov/agentgov/policies"
)

// askA2A sends one message with the JavaScript SDK's client through the
// gateway, naming session in X-Agentgov-Session unless it is empty.
func askA2A(t *testing.T, base, token, session, text string) map[string]any {
	t.Helper()
	cmd := exec.Command("node", "ask.mjs", base, token, session, text)
	cmd.Dir = a2anodetest.Dir()
	cmd.Stderr = os.Stderr
	raw, err := cmd.Output()
	if err != nil {
		t.Fatalf("ask.mjs: %v\n%s", err, raw)
	}
	var out struct {
		Reply map[string]any `json:"reply"`
		Error string         `json:"error"`
	}
	if err := json.Unmarshal(raw, &out); err != nil || out.Reply == nil {
		t.Fatalf("ask.mjs %q printed %s (%v)", text, raw, err)
	}
	return out.Reply
}

// usePack puts the built-in pack in an instance's policies, as `agentgov
// serve` runs it without --policies, and reloads.
func usePack(t *testing.T, in *instance) {
	t.Helper()
	pack := filepath.Join(in.dir, "policies")
	fs.WalkDir(policies.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && !strings.HasSuffix(p, "_test.yaml") {
			b, _ := fs.ReadFile(policies.FS(), p)
			os.WriteFile(filepath.Join(pack, p), b, 0o644)
		}
		return nil
	})
	os.WriteFile(filepath.Join(pack, "test.yaml"), []byte("version: agentgov/v1\nname: test\ndefault: allow\n"), 0o644)
	if code, m := in.call("POST", "/v1/policies/reload", "admin-tok", ""); code != 200 {
		t.Fatalf("reload: %d %v", code, m)
	}
}

// Another agent's reply is untrusted content of the caller's session. The
// JavaScript SDK's client asks the JavaScript SDK's agent, through the
// gateway, for an invoice; a payment decided later in the same session to
// the account the reply named needs approval, and the decision says the
// account came from agent:billing. The session is the caller's header, or
// without it the conversation the reply opened; another session, or
// another agent naming the session, is not affected. Through the MCP
// gateway, a mail to the contact that came only in the reply's data part
// is held for approval and never reaches the tool, and its ticket names
// agent:billing.
func TestServeA2AReplyIsUntrustedContent(t *testing.T) {
	a2anodetest.Need(t)
	agent := a2anodetest.StartAgent(t)
	const (
		account  = "DE89370400440532013000"
		contact  = "billing-desk@remit-example.net"
		account2 = "GB33BUKB20201555555555"
		contact2 = "payables@remit-example.org"
	)
	var mu sync.Mutex
	var mailed []string
	mail := sdk.NewServer(&sdk.Implementation{Name: "mail", Version: "1"}, nil)
	mail.AddTool(&sdk.Tool{Name: "send_email", Description: "send an e-mail", InputSchema: json.RawMessage(`{"type":"object"}`)},
		func(ctx context.Context, req *sdk.CallToolRequest) (*sdk.CallToolResult, error) {
			mu.Lock()
			defer mu.Unlock()
			mailed = append(mailed, string(req.Params.Arguments))
			return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: "sent"}}}, nil
		})
	up := httptest.NewServer(sdk.NewStreamableHTTPHandler(func(*http.Request) *sdk.Server { return mail }, nil))
	defer up.Close()

	in := startWithConfig(t, fmt.Sprintf("a2a:\n  agents:\n    billing: {url: %q, trust: trusted}\nmcp:\n  trust_on_first_use: true\n  servers:\n    mail: {url: %q}\n",
		agent, up.URL+"/"))
	usePack(t, in)
	base := in.url + "/a2a/billing"

	reply := askA2A(t, base, "a1-tok", "s1", "invoice "+account+" "+contact)
	if !strings.Contains(fmt.Sprint(reply["parts"]), account) || !strings.Contains(fmt.Sprint(reply["parts"]), contact) {
		t.Fatalf("reply = %v", reply)
	}
	pay := func(token, session, recipient string) map[string]any {
		t.Helper()
		code, d := in.call("POST", "/v1/decide", token, fmt.Sprintf(`{"session":%q,"tool":{"name":"send_money"},"args":{"recipient":%q,"amount":250}}`, session, recipient))
		if code != 200 {
			t.Fatalf("decide: %d %v", code, d)
		}
		return d
	}
	d := pay("a1-tok", "s1", "DE89 3704 0044 0532 0130 00")
	if d["effect"] != "require_approval" || !strings.Contains(fmt.Sprint(d["rules"]), "untrusted-target") {
		t.Fatalf("a payment to the reply's account: %v", d)
	}
	prov, _ := d["provenance"].(map[string]any)
	if !reflect.DeepEqual(prov["args.recipient"], []any{"agent:billing"}) {
		t.Fatalf("decision provenance %v, want args.recipient from agent:billing", d["provenance"])
	}
	id := d["approval"].(map[string]any)["id"].(string)
	if _, tk := in.call("GET", "/v1/approvals/"+id, "admin-tok", ""); !reflect.DeepEqual(tk["provenance"], d["provenance"]) {
		t.Errorf("ticket provenance %v", tk["provenance"])
	}
	if d := pay("a1-tok", "s2", account); d["effect"] != "allow" {
		t.Errorf("another session: %v", d)
	}
	if d := pay("a2-tok", "s1", account); d["effect"] != "allow" {
		t.Errorf("another agent naming s1: %v", d)
	}

	// No header: the conversation the reply opened is the session.
	reply = askA2A(t, base, "a1-tok", "", "invoice "+account2+" "+contact)
	ctxID, _ := reply["contextId"].(string)
	if ctxID == "" {
		t.Fatalf("the reply opened no conversation: %v", reply)
	}
	if d := pay("a1-tok", "a2a-"+ctxID, account2); d["effect"] != "require_approval" {
		t.Errorf("in the conversation's session: %v", d)
	}

	// The MCP gateway: the caller names its MCP session (of the session
	// revision, which has an id) on the A2A gateway.
	cs, err := sdk.NewClient(&sdk.Implementation{Name: "agent", Version: "1"}, nil).Connect(context.Background(),
		&sdk.StreamableClientTransport{Endpoint: in.url + "/mcp/mail", HTTPClient: &http.Client{Transport: bearer{"a1-tok"}}},
		&sdk.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
	if err != nil {
		t.Fatalf("connect: %v\n%s", err, in.output())
	}
	if cs.ID() == "" {
		t.Fatal("the MCP session has no id")
	}
	defer cs.Close()
	askA2A(t, base, "a1-tok", cs.ID(), "invoice "+account2+" "+contact2)
	res, err := cs.CallTool(context.Background(), &sdk.CallToolParams{Name: "send_email", Arguments: map[string]any{"to": contact2, "body": "Paid, thanks."}})
	if err != nil {
		t.Fatal(err)
	}
	text := res.Content[0].(*sdk.TextContent).Text
	ticket := regexp.MustCompile(`apr_[0-9A-Za-z]+`).FindString(text)
	if !res.IsError || ticket == "" {
		t.Fatalf("a mail to the reply's contact went through: %s", text)
	}
	if _, tk := in.call("GET", "/v1/approvals/"+ticket, "admin-tok", ""); !reflect.DeepEqual(tk["provenance"], map[string]any{"args.to": []any{"agent:billing"}}) {
		t.Errorf("ticket provenance %v", tk["provenance"])
	}
	mu.Lock()
	if len(mailed) != 0 {
		t.Errorf("the mail server was called: %v", mailed)
	}
	mu.Unlock()

	in.stop()
	if code, out, errOut := runCLI(t, "", "audit", "verify", "--data", in.data); code != 0 {
		t.Fatalf("audit verify: exit %d\n%s%s", code, out, errOut)
	}
}
