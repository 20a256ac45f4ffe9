package a2agateway

import (
	"context"
	"slices"
	"testing"

	"github.com/agentgov/agentgov/action"
)

const (
	replyAccount = "DE89370400440532013000"
	replyContact = "billing-desk@remit-example.net"
)

// payFrom decides, in an agent's session, a payment to account.
func (h *harness) payFrom(t *testing.T, agent, session, account string) action.Decision {
	t.Helper()
	d, err := h.eng.Decide(context.Background(), action.Action{
		Agent: action.Agent{ID: agent}, Session: session, Point: action.PreToolCall,
		Tool: action.Tool{Name: "pay"}, Args: map[string]any{"iban": account, "amount": 1250},
	})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// A reply let through is untrusted content of the caller's session, from
// source agent:NAME: its text parts and the values of its data parts. A
// later call in that session whose account came from the reply is judged
// by the provenance rule, and its decision says where the account came
// from. The session is the caller's header; the same call in another
// session, or by another agent naming the same session, is not affected.
func TestReplyIsUntrustedContentOfTheCallersSession(t *testing.T) {
	h := start(t, nil, nil)
	out := h.rpcIn(t, "caller", "s1", "message/send", map[string]any{"message": map[string]any{
		"kind": "message", "messageId": "m1", "role": "user",
		"parts": []any{map[string]any{"kind": "text", "text": "invoice " + replyAccount + " " + replyContact}}}})
	if _, ok := out[0]["result"]; !ok {
		t.Fatalf("invoice: %v", out)
	}
	v := h.ledger("caller", "s1")
	if !v.Tainted() || !v.Untrusted(replyAccount) || !v.Untrusted(replyContact) {
		t.Fatalf("the reply is not untrusted content of s1: tainted %v, account %v, contact (a data part) %v",
			v.Tainted(), v.Untrusted(replyAccount), v.Untrusted(replyContact))
	}
	if got := v.Sources(replyContact); !slices.Equal(got, []string{"agent:billing"}) {
		t.Errorf("sources of the contact = %v", got)
	}
	d := h.payFrom(t, "caller", "s1", replyAccount)
	if d.Effect != action.RequireApproval || !slices.Contains(d.Rules, "payee-from-elsewhere") {
		t.Fatalf("a payment to the reply's account: %s %v", d.Effect, d.Rules)
	}
	if got := d.Provenance["args.iban"]; !slices.Equal(got, []string{"agent:billing"}) {
		t.Errorf("decision provenance = %v, want args.iban from agent:billing", d.Provenance)
	}
	if d := h.payFrom(t, "caller", "s2", replyAccount); d.Effect != action.Allow {
		t.Errorf("another session of the caller: %s %v", d.Effect, d.Reasons)
	}
	if d := h.payFrom(t, "other", "s1", replyAccount); d.Effect != action.Allow {
		t.Errorf("another agent naming session s1: %s %v", d.Effect, d.Reasons)
	}
}

// Without the header, the conversation is the session: the message's
// contextId, else the one the upstream's reply opens.
func TestReplyProvenanceFollowsTheConversation(t *testing.T) {
	h := start(t, nil, nil)
	h.rpc(t, "caller", "message/send", map[string]any{"message": map[string]any{
		"kind": "message", "messageId": "m1", "contextId": "c9", "role": "user",
		"parts": []any{map[string]any{"kind": "text", "text": "invoice " + replyAccount + " " + replyContact}}}})
	if d := h.payFrom(t, "caller", "a2a-c9", replyAccount); d.Effect != action.RequireApproval {
		t.Errorf("in the message's conversation: %s %v", d.Effect, d.Reasons)
	}

	out := h.rpc(t, "caller", "message/send", map[string]any{"message": map[string]any{
		"kind": "message", "messageId": "m2", "role": "user",
		"parts": []any{map[string]any{"kind": "text", "text": "invoice " + replyAccount + " " + replyContact}}}})
	res, _ := out[0]["result"].(map[string]any)
	ctxID, _ := res["contextId"].(string)
	if ctxID == "" || ctxID == "c9" {
		t.Fatalf("the upstream opened no conversation: %v", out)
	}
	if d := h.payFrom(t, "caller", "a2a-"+ctxID, replyAccount); d.Effect != action.RequireApproval {
		t.Errorf("in the conversation the reply opened: %s %v", d.Effect, d.Reasons)
	}
	replies := h.rec.kind("a2a.reply")
	if last := replies[len(replies)-1]; last["session"] != "a2a-"+ctxID {
		t.Errorf("the reply was recorded in session %v", last["session"])
	}
}

// A streamed artifact is recorded whole: an account split across its
// chunks is still found to come from the agent.
func TestStreamedArtifactIsRecordedWhole(t *testing.T) {
	h := start(t, nil, nil)
	evs := h.rpcIn(t, "caller", "s3", "message/stream", map[string]any{"message": map[string]any{
		"kind": "message", "messageId": "m1", "role": "user",
		"parts": []any{map[string]any{"kind": "text", "text": "task " + replyAccount}}}})
	if len(evs) < 3 {
		t.Fatalf("stream: %v", evs)
	}
	if got := h.ledger("caller", "s3").Sources(replyAccount); !slices.Contains(got, "agent:billing") {
		t.Errorf("sources of the account split across chunks = %v", got)
	}
}
