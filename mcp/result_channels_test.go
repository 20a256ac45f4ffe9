package mcp

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"

	"github.com/agentgov/agentgov/mcp/pin"
	"github.com/agentgov/agentgov/mcp/wire"
)

// leakyUpstream answers a call of the tool "leak" with the result, or
// JSON-RPC error, named by its argument "as", and a resources/read with an
// error carrying its uri: a server putting what the detectors and the
// post-call decision must see where a gateway reading only text blocks
// would not look.
func leakyUpstream(t *testing.T, results map[string]string) *stdioPeer {
	t.Helper()
	up := &handUpstream{tools: []map[string]any{{"name": "leak", "inputSchema": map[string]any{"type": "object"}}}}
	up.hook = func(ev *handEvents, req *jsonrpc.Request) bool {
		switch req.Method {
		case methodToolsCall:
			var p struct {
				Arguments struct {
					As string `json:"as"`
				} `json:"arguments"`
			}
			json.Unmarshal(req.Params, &p)
			raw := results[p.Arguments.As]
			if strings.HasPrefix(raw, `{"error":`) {
				var e struct {
					Error *jsonrpc.Error `json:"error"`
				}
				if err := json.Unmarshal([]byte(raw), &e); err != nil {
					panic(err)
				}
				ev.send(&jsonrpc.Response{ID: req.ID, Error: e.Error})
				return true
			}
			ev.send(&jsonrpc.Response{ID: req.ID, Result: json.RawMessage(raw)})
			return true
		case methodResourcesRead:
			var p struct {
				URI string `json:"uri"`
			}
			json.Unmarshal(req.Params, &p)
			ev.send(&jsonrpc.Response{ID: req.ID, Error: &jsonrpc.Error{Code: -32002, Message: "cannot read: " + p.URI, Data: json.RawMessage(`{"uri":"` + p.URI + `"}`)}})
			return true
		}
		return false
	}
	c := rawStdio(t, Config{Server: "hand", Dial: wire.URL(handServer(t, up), nil), Decider: newTestDecider(), Recorder: &memRecorder{},
		Detector: pin.Detectors(), Pins: pin.MemoryPins(nil), TrustOnFirstUse: true, RedactResults: true})
	c.initialize(`{}`)
	return c
}

const leakedKey = "AKIAIOSFODNN7EXAMPLE"

// Every string of a tool result that reaches the client is read by the
// post-call decision and masked: the result's _meta, a resource link's
// name and description, a block's annotations, an embedded resource's
// _meta, not only the text blocks and structured content.
func TestNoPartOfAToolResultEscapesTheDecisionOrTheMask(t *testing.T) {
	results := map[string]string{
		"meta":        `{"content":[{"type":"text","text":"done"}],"_meta":{"note":"key ` + leakedKey + `"}}`,
		"link":        `{"content":[{"type":"resource_link","uri":"file:///x","name":"x","description":"key ` + leakedKey + `"}]}`,
		"annotations": `{"content":[{"type":"text","text":"done","annotations":{"audience":["assistant"],"note":"` + leakedKey + `"}}]}`,
		"embedded":    `{"content":[{"type":"resource","resource":{"uri":"file:///` + leakedKey + `","text":"done","_meta":{"k":"` + leakedKey + `"}}}]}`,
		"image":       `{"content":[{"type":"image","mimeType":"image/png","data":"iVBORw0KGgo=","alt":"` + leakedKey + `"}]}`,
		"deny-meta":   `{"content":[{"type":"text","text":"done"}],"_meta":{"note":"TOPSECRET plans"}}`,
		"deny-link":   `{"content":[{"type":"resource_link","uri":"file:///x","name":"TOPSECRET plans"}]}`,
	}
	c := leakyUpstream(t, results)
	for i, as := range []string{"meta", "link", "annotations", "embedded", "image", "deny-meta", "deny-link"} {
		c.send(fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"leak","arguments":{"as":%q}}}`, i+1, as))
		r := c.answer(i + 1)
		got, _ := json.Marshal(r)
		if strings.Contains(string(got), leakedKey) || strings.Contains(string(got), "TOPSECRET plans") {
			t.Errorf("%s: the client got %s", as, got)
		}
		if strings.HasPrefix(as, "deny-") && !strings.Contains(resultText(r), "withheld") {
			t.Errorf("%s: the result was not withheld: %s", as, got)
		}
	}
	// An image's base64 data is neither read nor changed.
	c.send(`{"jsonrpc":"2.0","id":"img","method":"tools/call","params":{"name":"leak","arguments":{"as":"image"}}}`)
	if got, _ := json.Marshal(c.answer("img")); !strings.Contains(string(got), "iVBORw0KGgo=") {
		t.Errorf("the image's data was changed: %s", got)
	}
}

// An upstream answering a call with a JSON-RPC error instead of a result
// gets no other way to the client: the error's message and data are
// decided on and masked like a result.
func TestAnErrorAnsweringACallIsDecidedAndMasked(t *testing.T) {
	results := map[string]string{
		"message": `{"error":{"code":-32000,"message":"cannot connect with key ` + leakedKey + `"}}`,
		"data":    `{"error":{"code":-32000,"message":"failed","data":{"detail":"key ` + leakedKey + `"}}}`,
		"deny":    `{"error":{"code":-32000,"message":"failed","data":{"detail":"TOPSECRET plans"}}}`,
	}
	c := leakyUpstream(t, results)
	for i, as := range []string{"message", "data", "deny"} {
		c.send(fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"leak","arguments":{"as":%q}}}`, i+1, as))
		r := c.answer(i + 1)
		got, _ := json.Marshal(r)
		if strings.Contains(string(got), leakedKey) || strings.Contains(string(got), "TOPSECRET plans") {
			t.Errorf("%s: the client got %s", as, got)
		}
		if as == "deny" && !strings.Contains(string(got), "withheld") {
			t.Errorf("deny: the error was not withheld: %s", got)
		}
	}
	// The same of a resource read's error.
	c.send(`{"jsonrpc":"2.0","id":"res","method":"resources/read","params":{"uri":"notes://` + leakedKey + `"}}`)
	if got, _ := json.Marshal(c.answer("res")); strings.Contains(string(got), leakedKey) {
		t.Errorf("resources/read: the client got %s", got)
	}
}
