package mcp

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// resultTextByMaps is how the gateway read results before call_wire.go,
// kept as the reference the faster reading must agree with.
func resultTextByMaps(raw json.RawMessage) (string, bool, bool) {
	var result map[string]json.RawMessage
	if err := json.Unmarshal(raw, &result); err != nil {
		return "", false, false
	}
	var content []map[string]any
	_ = json.Unmarshal(result["content"], &content)
	var isError bool
	_ = json.Unmarshal(result["isError"], &isError)
	var b strings.Builder
	for _, c := range content {
		if t, ok := c["text"].(string); ok {
			if b.Len() > 0 {
				b.WriteByte('\n')
			}
			b.WriteString(t)
		}
		if r, ok := c["resource"].(map[string]any); ok {
			if t, ok := r["text"].(string); ok {
				b.WriteByte('\n')
				b.WriteString(t)
			}
		}
	}
	if s := result["structuredContent"]; len(s) > 0 && string(s) != "null" {
		b.WriteByte('\n')
		b.Write(s)
	}
	return b.String(), isError, true
}

var callResults = []string{
	`{"content":[{"type":"text","text":"hello"}]}`,
	`{"content":[{"type":"text","text":"a"},{"type":"text","text":"b\nc \u00e9"}],"isError":true}`,
	`{"content":[{"type":"resource","resource":{"uri":"x","text":"inside"}},{"type":"text","text":""},{"type":"text","text":"after"}]}`,
	`{"content":[{"type":"text","text":""},{"type":"resource","resource":{"text":"r"}}]}`,
	`{"content":[{"type":"image","data":"AAA"},5,"s",null,[1],{"text":7},{"text":"x","text":"y"}]}`,
	`{"content":[{"resource":{"text":"a"},"resource":null}],"structuredContent":{"k": [1, 2]}}`,
	`{"content":{"text":"not an array"},"isError":"true","structuredContent":null}`,
	`{"structuredContent":{"a":"b"},"isError":false,"isError":true}`,
	`{"Content":[{"text":"wrong case"}],"content":[{"Text":"wrong case"}]}`,
	`{}`, `null`, `[]`, `"s"`,
	`{"content":[{"type":"resource_link","uri":"u","name":"n","description":"d","annotations":{"audience":["user"]}}],"_meta":{"k":["v",{"w":"x"}]}}`,
	`{"content":[{"type":"image","data":"AAA","mimeType":"image/png"},{"type":"text","data":"shown","mimeType":{"m":"odd"}},{"type":{"t":"odd"}}]}`,
	`{"content":[{"type":"resource","resource":{"uri":"u","blob":"AAA","mimeType":"text/plain","_meta":{"k":"v"}}},{"resource":"flat"},{"text":{"t":"odd"}}]}`,
}

func TestCallResultReading(t *testing.T) {
	for _, raw := range callResults {
		want, wantErr, ok := resultTextByMaps(json.RawMessage(raw))
		res, err := parseCallResult(json.RawMessage(raw))
		if (err == nil) != ok {
			t.Errorf("%s: error %v, the maps say ok=%v", raw, err, ok)
			continue
		}
		if err != nil {
			continue
		}
		if got := res.contentText(); got != want || res.IsError != wantErr {
			t.Errorf("%s: text %q isError %v; want %q %v", raw, got, res.IsError, want, wantErr)
		}
		if missed := unreadStrings(json.RawMessage(raw), res); len(missed) > 0 {
			t.Errorf("%s: masking would change %q, which the decision does not read", raw, missed)
		}
	}
}

// unreadStrings are the strings of a result that masking visits but the
// reading of the result does not give the post-call decision: none may
// be, or a secret there would reach the client unseen.
func unreadStrings(raw json.RawMessage, res callResult) []string {
	var result map[string]json.RawMessage
	if json.Unmarshal(raw, &result) != nil {
		return nil
	}
	read := map[string]bool{}
	for _, t := range slices.Concat(res.Texts, res.Other) {
		read[t] = true
	}
	if res.hasStructured() {
		read[string(res.StructuredContent)] = true
	}
	var missed []string
	maskResult(result, func(t string) string {
		if !read[t] {
			missed = append(missed, t)
		}
		return t
	})
	return missed
}

func TestCallParamsReading(t *testing.T) {
	for _, tc := range []struct {
		raw, name, args, approval string
		fails                     bool
	}{
		{raw: `{"name":"echo","arguments":{"text":"hi"}}`, name: "echo", args: `{"text":"hi"}`},
		{raw: `{"name":"pay","arguments":{},"_meta":{"progressToken":1,"agentgov/approval_id":"apr_1"}}`, name: "pay", args: `{}`, approval: "apr_1"},
		{raw: `{"name":"pay","_meta":{"agentgov/approval_id":5}}`, name: "pay"},
		{raw: `{"name":"pay","_meta":{"agentgov/approval_id":"apr_1"},"_meta":null}`, name: "pay"},
		{raw: `{}`},
		{raw: `null`},
		{raw: `{"name":5}`, fails: true},
		{raw: `[1]`, fails: true},
		{raw: `{"name":"x","_meta":[]}`, fails: true},
		// The server reads exactly "name" and "arguments"; so must the gateway.
		{raw: `{"name":"forbidden","Name":"echo","arguments":{"path":"id_rsa"},"Arguments":{}}`, name: "forbidden", args: `{"path":"id_rsa"}`},
		{raw: `{"name":"a","name":"b"}`, name: "b"},
	} {
		p, err := parseCallParams(json.RawMessage(tc.raw))
		if (err != nil) != tc.fails {
			t.Errorf("%s: error %v", tc.raw, err)
			continue
		}
		if err != nil {
			continue
		}
		if p.Name != tc.name || string(p.Arguments) != tc.args || p.ApprovalID != tc.approval || p.HasApprovalID != (tc.approval != "") {
			t.Errorf("%s: read %+v", tc.raw, p)
		}
	}
}
