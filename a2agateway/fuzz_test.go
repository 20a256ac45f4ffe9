package a2agateway

import (
	"encoding/json"
	"testing"

	"github.com/a2aproject/a2a-go/a2a"
)

// The params of a caller's message are untrusted input: whatever they
// hold, reading them either fails with an error or yields a message whose
// every part was accounted for, never a panic.
func FuzzDecodeSend(f *testing.F) {
	for _, s := range []string{
		`{"message":{"kind":"message","messageId":"m","role":"user","parts":[{"kind":"text","text":"hi"}]}}`,
		`{"message":{"kind":"message","messageId":"m","role":"user","parts":[{"kind":"data","data":{"a":1}},{"kind":"data","data":{"a":2}}]}}`,
		`{"message":{"kind":"message","messageId":"m","role":"user","parts":[{"kind":"file","file":{"bytes":"aGVsbG8="}}],"metadata":{"agentgov.approval_id":"apr_1"}}}`,
		`{"message":{"role":"agent","parts":[]}}`,
		`{"message":null}`, `[]`, `{"message":{"parts":[{"kind":"file","file":{"bytes":"***"}}],"role":"user"}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		p, _, e := decodeSend(json.RawMessage(raw))
		if e != nil {
			return
		}
		if p.Message == nil || p.Message.Role != a2a.MessageRoleUser {
			t.Fatalf("accepted %s", raw)
		}
		if _, ok := p.Message.Metadata[MetaApprovalID]; ok {
			t.Fatalf("the ticket stayed in the metadata forwarded: %s", raw)
		}
		messageInput(p.Message, p.Metadata, 1<<10)
	})
}

// An upstream's events are untrusted input too.
func FuzzReplyInput(f *testing.F) {
	for _, s := range []string{
		`{"kind":"message","messageId":"r","role":"agent","parts":[{"kind":"text","text":"ok"}]}`,
		`{"kind":"task","id":"t","contextId":"c","status":{"state":"completed","message":{"role":"agent","parts":[{"kind":"text","text":"x"}]}},"artifacts":[{"artifactId":"a","parts":[{"kind":"data","data":{"k":[1,2]}}]}]}`,
		`{"kind":"artifact-update","taskId":"t","contextId":"c","artifact":{"artifactId":"a","parts":[{"kind":"file","file":{"uri":"http://x"}}]}}`,
		`{"kind":"status-update","taskId":"t","contextId":"c","final":true,"status":{"state":"failed"}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		ev, err := a2a.UnmarshalEventJSON(raw)
		if err != nil {
			return
		}
		replyInput(ev, 1<<10, 1<<12)
	})
}
