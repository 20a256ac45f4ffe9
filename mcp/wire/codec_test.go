package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
)

// codecCases are frames the gateway's codec must read and write exactly as
// the SDK's does: ordinary traffic and the corners of the wire format.
var codecCases = []string{
	`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`,
	`{"jsonrpc":"2.0","id":"a-1","method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"}}}`,
	`{"jsonrpc":"2.0","method":"notifications/initialized"}`,
	`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":7,"reason":"gone"}}`,
	`{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"hello world"}]}}`,
	`{"jsonrpc":"2.0","id":"x","error":{"code":-32601,"message":"Method not found"}}`,
	`{"jsonrpc":"2.0","id":2,"error":{"code":-32000,"message":"boom","data":{"why": [1, 2]}}}`,
	`{"jsonrpc":"2.0","id":3,"result":{},"error":{"code":1,"message":"both"}}`,
	`{"jsonrpc":"2.0","id":4,"result":null}`,
	`{"jsonrpc":"2.0","id":4,"method":"m","params":null}`,
	`{"jsonrpc":"2.0","id":null,"method":"m"}`,
	`{"jsonrpc":"2.0","id":null,"result":{}}`,
	`{"jsonrpc":"2.0","result":{}}`,
	`{"jsonrpc":"2.0","id":0,"method":""}`,
	`{"jsonrpc":"2.0","id":1.9,"method":"m"}`,
	`{"jsonrpc":"2.0","id":-1e3,"method":"m"}`,
	`{"jsonrpc":"2.0","id":1e400,"method":"m"}`,
	`{"jsonrpc":"2.0","id":9007199254740993,"method":"m"}`,
	`{"jsonrpc":"2.0","id":true,"method":"m"}`,
	`{"jsonrpc":"2.0","id":{},"method":"m"}`,
	`{"jsonrpc":"2.0","id":[1],"method":"m"}`,
	`{"jsonrpc":"2.0","id":true,"id":5,"method":"m"}`,
	`{"jsonrpc":"2.0","id":"\u00e9\n\"q\"","method":"m"}`,
	`{"jsonrpc":"2.0","id":1,"method":"caf\u00e9 <&> \u2028"}`,
	`{"jsonrpc":"2.0","id":1,"method":"café"}`,
	`{"jsonrpc":"2.0","id":1,"method":null}`,
	`{"jsonrpc":"2.0","id":1,"method":5}`,
	`{"jsonrpc":"2.0","id":1,"method":"a","method":"b"}`,
	`{"jsonrpc":"1.0","id":1,"method":"m"}`,
	`{"jsonrpc":2,"id":1,"method":"m"}`,
	`{"jsonrpc":"2.0","jsonrpc":null,"id":1,"method":"m"}`,
	`{"JSONRPC":"2.0","id":1,"method":"m"}`,
	`{"jsonrpc":"2.0","ID":1,"METHOD":"m"}`,
	`{"json\u0072pc":"2.0","i\u0064":1,"method":"m"}`,
	`{"id":3,"method":"tools/list"}`,
	`{"jsonrpc":"2.0","id":1,"error":null}`,
	`{"jsonrpc":"2.0","id":1,"error":"bad"}`,
	`{"jsonrpc":"2.0","id":1,"error":{"code":1.5,"message":"m"}}`,
	`{"jsonrpc":"2.0","id":1,"error":{"code":"1","message":"m"}}`,
	`{"jsonrpc":"2.0","id":1,"error":{"code":1,"message":2}}`,
	`{"jsonrpc":"2.0","id":1,"error":{"Code":1,"Message":"m"}}`,
	`{"jsonrpc":"2.0","id":1,"error":{"code":1},"error":{"message":"merged"}}`,
	`{"jsonrpc":"2.0","id":1,"error":{"code":1,"message":"m","data":null}}`,
	`  {  "jsonrpc" : "2.0" , "id" : 1 , "method" : "m" , "params" : { "a" : [ 1 , "b c" ] , "s" : "x\ty" }  }  `,
	`{"jsonrpc":"2.0","id":1,"method":"m","params":[1,2,3],"extra":{"ignored":true}}`,
	`{"jsonrpc":"2.0","id":1,"method":"m","params":"<script>&amp;"}`,
	`{"jsonrpc":"2.0","id":1,"method":"m","params":{"s":"\u2028\u003c"}}`,
	"{\"jsonrpc\":\"2.0\",\"id\":\"\xff\",\"method\":\"a\xffb\",\"params\":{\"s\":\"\xfe\"}}",
	"{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":1,\"message\":\"\xc3\"}}",
	`[]`, `[1]`, `"str"`, `5`, `null`, `true`, `{}`,
	`{"jsonrpc":"2.0","id":1,"method":"m","params":` + strings.Repeat("[", 999) + strings.Repeat("]", 999) + `}`,
	`{"jsonrpc":"2.0","id":1,"method":"m","params":` + strings.Repeat("[", 1000) + strings.Repeat("]", 1000) + `}`,
}

func TestCodecMatchesSDK(t *testing.T) {
	for _, c := range codecCases {
		compareWithSDK(t, []byte(c))
	}
}

// compareWithSDK checks that DecodeMessage reads data as jsonrpc.DecodeMessage
// does, and that what it read encodes to the SDK's bytes.
func compareWithSDK(t *testing.T, data []byte) {
	t.Helper()
	got, err := DecodeMessage(data)
	if !json.Valid(data) {
		// Not JSON: a parse error, whatever the SDK's decoder makes of it.
		var fe *FrameError
		if !errors.As(err, &fe) || fe.Code != jsonrpc.CodeParseError {
			t.Errorf("%q: got %v, %v; want a parse error", data, got, err)
		}
		return
	}
	want, werr := jsonrpc.DecodeMessage(data)
	if werr != nil {
		var fe *FrameError
		if !errors.As(err, &fe) || fe.Code != jsonrpc.CodeInvalidRequest {
			t.Errorf("%q: got %#v, %v; the SDK refuses it (%v)", data, got, err, werr)
		}
		return
	}
	if err != nil {
		t.Errorf("%q: got %v; the SDK reads %#v", data, err, want)
		return
	}
	if d := messageDiff(got, want); d != "" {
		t.Errorf("%q: %s", data, d)
	}
	enc, err := EncodeMessage(got)
	wenc, werr := jsonrpc.EncodeMessage(got)
	if (err == nil) != (werr == nil) || !bytes.Equal(enc, wenc) {
		t.Errorf("%q encodes to %s (%v); the SDK's %s (%v)", data, enc, err, wenc, werr)
	}
}

func messageDiff(got, want jsonrpc.Message) string {
	switch w := want.(type) {
	case *jsonrpc.Request:
		g, ok := got.(*jsonrpc.Request)
		switch {
		case !ok:
			return "not a request"
		case g.ID != w.ID:
			return "id " + jsonOf(g.ID.Raw()) + ", want " + jsonOf(w.ID.Raw())
		case g.Method != w.Method:
			return "method " + g.Method + ", want " + w.Method
		case !bytes.Equal(g.Params, w.Params):
			return "params " + string(g.Params) + ", want " + string(w.Params)
		}
	case *jsonrpc.Response:
		g, ok := got.(*jsonrpc.Response)
		switch {
		case !ok:
			return "not a response"
		case g.ID != w.ID:
			return "id " + jsonOf(g.ID.Raw()) + ", want " + jsonOf(w.ID.Raw())
		case !bytes.Equal(g.Result, w.Result):
			return "result " + string(g.Result) + ", want " + string(w.Result)
		case (g.Error == nil) != (w.Error == nil):
			return "error " + jsonOf(g.Error) + ", want " + jsonOf(w.Error)
		case g.Error != nil:
			ge, we := g.Error.(*jsonrpc.Error), w.Error.(*jsonrpc.Error)
			if ge.Code != we.Code || ge.Message != we.Message || !bytes.Equal(ge.Data, we.Data) {
				return "error " + jsonOf(ge) + ", want " + jsonOf(we)
			}
		}
	}
	return ""
}

func jsonOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestEncodeMatchesSDK covers messages the gateway builds itself.
func TestEncodeMatchesSDK(t *testing.T) {
	id, _ := jsonrpc.MakeID("agentgov-1")
	num, _ := jsonrpc.MakeID(float64(42))
	for _, m := range []jsonrpc.Message{
		&jsonrpc.Request{ID: id, Method: "tools/list", Params: json.RawMessage(`{}`)},
		&jsonrpc.Request{Method: "notifications/initialized"},
		&jsonrpc.Response{ID: num, Result: json.RawMessage(`{"content":[{"type":"text","text":"a\nb"}]}`)},
		&jsonrpc.Response{ID: num, Error: &jsonrpc.Error{Code: -32603, Message: "upstream \"x\" <closed>"}},
		&jsonrpc.Response{ID: num, Error: errors.New("plain")},
		&jsonrpc.Response{ID: num, Error: errors.Join(errors.New("outer"), &jsonrpc.Error{Code: 7, Message: "inner"})},
		&jsonrpc.Response{ID: num},
		&jsonrpc.Request{ID: num, Method: "m", Params: json.RawMessage("{\n  \"pretty\": [1, 2]\n}")},
	} {
		got, err := EncodeMessage(m)
		want, werr := jsonrpc.EncodeMessage(m)
		if err != nil || werr != nil || !bytes.Equal(got, want) {
			t.Errorf("%#v encodes to %s (%v); the SDK's %s (%v)", m, got, err, want, werr)
		}
	}
	if _, err := EncodeMessage(&jsonrpc.Request{ID: num, Method: "m", Params: json.RawMessage(`{"broken"`)}); err == nil {
		t.Error("invalid params encoded without an error")
	}
}

func BenchmarkDecodeMessage(b *testing.B) {
	line := []byte(`{"jsonrpc":"2.0","id":12,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hello"},"_meta":{"progressToken":3}}}`)
	b.Run("gateway", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := DecodeMessage(line); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("sdk", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := jsonrpc.DecodeMessage(line); err != nil {
				b.Fatal(err)
			}
		}
	})
}
