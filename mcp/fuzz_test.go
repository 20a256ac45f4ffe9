package mcp

import (
	"encoding/json"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
)

// FuzzCallResult checks that the gateway reads every tools/call result as
// the map-based reading it replaced did.
func FuzzCallResult(f *testing.F) {
	for _, r := range callResults {
		f.Add(r)
	}
	f.Fuzz(func(t *testing.T, in string) {
		if !json.Valid([]byte(in)) {
			return
		}
		want, wantErr, ok := resultTextByMaps(json.RawMessage(in))
		res, err := parseCallResult(json.RawMessage(in))
		if (err == nil) != ok {
			t.Fatalf("%s: error %v, the maps say ok=%v", in, err, ok)
		}
		if err == nil && (res.contentText() != want || res.IsError != wantErr) {
			t.Fatalf("%s: text %q isError %v; want %q %v", in, res.contentText(), res.IsError, want, wantErr)
		}
		if err == nil {
			if missed := unreadStrings(json.RawMessage(in), res); len(missed) > 0 {
				t.Fatalf("%s: masking would change %q, which the decision does not read", in, missed)
			}
		}
	})
}

// FuzzGovernedParams feeds arbitrary params to the reading of a resource
// read or a prompt: whatever they hold, the request is decided on the
// exact keys a server reads ("uri", "name", "arguments") or refused, and
// what is decided on is what the params say under those keys.
func FuzzGovernedParams(f *testing.F) {
	f.Add(methodResourcesRead, `{"uri":"file:///etc/passwd"}`)
	f.Add(methodResourcesRead, `{"URI":"file:///etc/shadow","uri":"test://ok"}`)
	f.Add(methodPromptsGet, `{"name":"greet","arguments":{"lang":"fr"},"_meta":{"agentgov/approval_id":"apr_1"}}`)
	f.Add(methodResourcesSubscribe, `null`)
	f.Fuzz(func(t *testing.T, method, params string) {
		switch method {
		case methodResourcesRead, methodResourcesSubscribe, methodPromptsGet:
		default:
			return
		}
		if !json.Valid([]byte(params)) {
			return
		}
		g, err := parseGoverned(&jsonrpc.Request{Method: method, Params: json.RawMessage(params)})
		if err != nil {
			return
		}
		var exact map[string]json.RawMessage
		if json.Unmarshal([]byte(params), &exact) != nil {
			t.Fatalf("%s %s: params that are not an object were decided on: %v", method, params, g.args)
		}
		key := "uri"
		if method == methodPromptsGet {
			key = "name"
		}
		var want string
		if json.Unmarshal(exact[key], &want) != nil || g.args[key] != want || want == "" {
			t.Fatalf("%s %s: decided on %s=%v; the params say %s", method, params, key, g.args[key], exact[key])
		}
	})
}
