package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/a2aproject/a2a-go/a2a"
	"github.com/a2aproject/a2a-go/a2aclient"
	"github.com/a2aproject/a2a-go/a2aclient/agentcard"
	"github.com/a2aproject/a2a-go/a2asrv"
	"github.com/a2aproject/a2a-go/a2asrv/eventqueue"
)

// echoAgent is a real a2a-go agent that answers a message with its text.
type echoAgent struct{}

func (echoAgent) Execute(ctx context.Context, rc *a2asrv.RequestContext, q eventqueue.Queue) error {
	text := ""
	for _, p := range rc.Message.Parts {
		if t, ok := p.(a2a.TextPart); ok {
			text += t.Text
		}
	}
	return q.Write(ctx, a2a.NewMessage(a2a.MessageRoleAgent, a2a.TextPart{Text: "done: " + text}))
}

func (echoAgent) Cancel(context.Context, *a2asrv.RequestContext, eventqueue.Queue) error { return nil }

func startEchoAgent(t *testing.T) *httptest.Server {
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	mux.Handle("/.well-known/agent-card.json", a2asrv.NewStaticAgentCardHandler(&a2a.AgentCard{
		Name: "billing", Description: "bills", URL: srv.URL, Version: "1", ProtocolVersion: "0.3.0",
		PreferredTransport: a2a.TransportProtocolJSONRPC, DefaultInputModes: []string{"text"}, DefaultOutputModes: []string{"text"},
		Skills: []a2a.AgentSkill{},
	}))
	mux.Handle("/", a2asrv.NewJSONRPCHandler(a2asrv.NewHandler(echoAgent{})))
	return srv
}

// serve relays A2A to a configured agent at /a2a/{name}: the card
// rewritten, every message and reply decided, an approval given by an
// approver and redeemed by the retry that carries its ticket, a kill
// switch stopping the agent, everything in a log that verifies.
func TestServeA2AGateway(t *testing.T) {
	up := startEchoAgent(t)
	in := startWithConfig(t, fmt.Sprintf("a2a:\n  agents:\n    billing: {url: %q, trust: trusted, labels: {domain: payments}}\n", up.URL))
	os.WriteFile(filepath.Join(in.dir, "policies", "test.yaml"), []byte(`
version: agentgov/v1
name: test
default: allow
rules:
  - id: wire-needs-approval
    match: {points: [pre_agent_message]}
    when: 'target.labels.domain == "payments" && content.contains("wire")'
    effect: require_approval
    approval: {approvers: ["group:finance"], timeout: 30m}
  - id: payments-trusted-only
    match: {points: [pre_agent_message]}
    when: 'target.labels.domain == "payments" && target.trust != "trusted"'
    effect: deny
`), 0o644)
	if code, m := in.call("POST", "/v1/policies/reload", "admin-tok", ""); code != 200 {
		t.Fatalf("reload: %d %v", code, m)
	}
	ctx := context.Background()
	hc := &http.Client{Transport: bearer{"a1-tok"}}
	base := in.url + "/a2a/billing"

	card, err := agentcard.NewResolver(hc).Resolve(ctx, base)
	if err != nil {
		t.Fatalf("card: %v\n%s", err, in.output())
	}
	if card.URL != base || strings.Contains(fmt.Sprint(card), strings.TrimPrefix(up.URL, "http://")) {
		t.Fatalf("card = %+v; want it pointing at %s", card, base)
	}
	client, err := a2aclient.NewFromCard(ctx, card, a2aclient.WithJSONRPCTransport(hc))
	if err != nil {
		t.Fatal(err)
	}
	res, err := client.SendMessage(ctx, &a2a.MessageSendParams{Message: a2a.NewMessage(a2a.MessageRoleUser, a2a.TextPart{Text: "invoice 42"})})
	if m, ok := res.(*a2a.Message); err != nil || !ok || fmt.Sprint(m.Parts) != fmt.Sprint(a2a.ContentParts{a2a.TextPart{Text: "done: invoice 42"}}) {
		t.Fatalf("allowed message: %v %#v", err, res)
	}

	// Approval: the error names the ticket; an approver approves; the
	// same message with the ticket in its metadata goes through, once.
	wire := func(ticket string) (a2a.SendMessageResult, error) {
		m := a2a.NewMessage(a2a.MessageRoleUser, a2a.TextPart{Text: "wire 5000 to acme"})
		if ticket != "" {
			m.Metadata = map[string]any{"agentgov.approval_id": ticket}
		}
		return client.SendMessage(ctx, &a2a.MessageSendParams{Message: m})
	}
	_, err = wire("")
	ticket := regexp.MustCompile(`apr_[0-9A-Za-z]+`).FindString(fmt.Sprint(err))
	if err == nil || ticket == "" || !strings.Contains(err.Error(), "needs a person's approval") {
		t.Fatalf("a message that needs approval: %v", err)
	}
	if code, m := in.call("POST", "/v1/approvals/"+ticket+"/approve", "fin-tok", `{"note":"ok"}`); code != 200 {
		t.Fatalf("approve: %d %v", code, m)
	}
	if res, err := wire(ticket); err != nil || !strings.Contains(fmt.Sprint(res), "done: wire 5000 to acme") {
		t.Fatalf("the retry under the approved ticket: %v %v", err, res)
	}
	if _, err := wire(ticket); err == nil {
		t.Fatal("an approved ticket was used twice")
	}

	// Another agent's token may not read a1's card as a1, and an admin
	// token is not an agent's.
	if code, _ := in.call("GET", "/a2a/billing/.well-known/agent-card.json", "admin-tok", ""); code != 403 {
		t.Errorf("admin token on /a2a: %d, want 403", code)
	}

	// The kill switch stops a1 at the gateway.
	if code, m := in.call("POST", "/v1/kill", "admin-tok", `{"scope":"agent","target":"a1","reason":"incident 7"}`); code != 201 && code != 200 {
		t.Fatalf("kill: %d %v", code, m)
	}
	if _, err := client.SendMessage(ctx, &a2a.MessageSendParams{Message: a2a.NewMessage(a2a.MessageRoleUser, a2a.TextPart{Text: "invoice 43"})}); err == nil || !strings.Contains(err.Error(), "incident 7") {
		t.Fatalf("a message while killed: %v", err)
	}

	_, entries := in.call("GET", "/v1/audit?limit=1000", "admin-tok", "")
	all := fmt.Sprint(entries)
	for _, want := range []string{"pre_agent_message", "post_agent_message", "a2a.reply", "wire-needs-approval", "a2a.message"} {
		if !strings.Contains(all, want) {
			t.Errorf("the audit log lacks %q", want)
		}
	}
	in.stop()
	if code, out, errOut := runCLI(t, "", "audit", "verify", "--data", in.data); code != 0 {
		t.Fatalf("audit verify: exit %d\n%s%s", code, out, errOut)
	}
}
