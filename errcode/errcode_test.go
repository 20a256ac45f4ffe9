package errcode_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/agentgov/agentgov/errcode"
	"github.com/agentgov/agentgov/errcode/errcodetest"
)

func TestEveryCodeHasAStatusAnRPCCodeAndProviderTypes(t *testing.T) {
	seen := map[errcode.Code]bool{}
	for _, c := range errcode.Codes() {
		if seen[c] {
			t.Errorf("%s listed twice", c)
		}
		seen[c] = true
		if !c.Known() {
			t.Errorf("%s is listed but not in the table", c)
		}
		if http.StatusText(c.Status()) == "" || c.Status() < 400 {
			t.Errorf("%s: status %d is not an error status", c, c.Status())
		}
		switch c.RPC() {
		case errcode.RPCInvalidRequest, errcode.RPCRefused, errcode.RPCInternal:
		default:
			t.Errorf("%s: JSON-RPC code %d is not one the gateway answers with", c, c.RPC())
		}
		if c.OpenAIType() == "" || c.AnthropicType() == "" || c.Meaning() == "" {
			t.Errorf("%s: missing a provider type or its meaning", c)
		}
		// Server failures may be retried; a refusal never: it would be the
		// same a second later, and retrying it spends budget. An open
		// circuit is a 503 (the upstream is unavailable, as Envoy answers
		// for its breakers) but a refusal all the same: retried at once it
		// only hits the circuit again.
		if c == errcode.CircuitOpen {
			if c.Retryable() || c.RPC() != errcode.RPCRefused || c.Status() != 503 {
				t.Errorf("circuit_open: %d, %d, retry %v", c.Status(), c.RPC(), c.Retryable())
			}
			continue
		}
		if c.Retryable() != (c.Status() >= 500) {
			t.Errorf("%s: retryable %v for status %d", c, c.Retryable(), c.Status())
		}
		if c.Status() >= 500 && c.RPC() != errcode.RPCInternal {
			t.Errorf("%s: a server failure is JSON-RPC %d, want internal", c, c.RPC())
		}
	}
	if errcode.Code("nonsense").Status() != 500 || errcode.Code("nonsense").Known() {
		t.Error("an unknown code must read as internal")
	}
}

func TestFromStatusReadsBackEveryStatus(t *testing.T) {
	for _, c := range errcode.Codes() {
		if got := errcode.FromStatus(c.Status()); got.Status() != c.Status() {
			t.Errorf("status %d of %s reads back as %s (status %d)", c.Status(), c, got, got.Status())
		}
	}
	if errcode.FromStatus(599) != errcode.Internal || errcode.FromStatus(418) != errcode.BadRequest {
		t.Error("statuses outside the table must read as the most general code of their class")
	}
}

func TestErrorKeepsItsCodeThroughWrapping(t *testing.T) {
	cause := errcode.Errorf(errcode.Forbidden, "a %s token may not", "admin")
	err := errcode.Wrap(errcode.Unavailable, "store down", cause)
	if errcode.Of(err) != errcode.Unavailable {
		t.Fatalf("code %s", errcode.Of(err))
	}
	if e, ok := errcode.As(err.Unwrap()); !ok || e.Code != errcode.Forbidden || e.Message != "a admin token may not" {
		t.Fatalf("cause %+v", e)
	}
	if errcode.Of(http.ErrBodyNotAllowed) != errcode.Internal {
		t.Fatal("an error without a code must be internal")
	}
}

type inner struct {
	Name string `json:"name"`
}

type body struct {
	Tool    inner             `json:"tool"`
	Count   int64             `json:"count"`
	Ratio   float64           `json:"ratio"`
	Tags    []string          `json:"tags"`
	Labels  map[string]string `json:"labels"`
	On      bool              `json:"on"`
	At      time.Time         `json:"at"`
	Pointer *inner            `json:"pointer"`
}

func TestDescribeJSONSpeaksJSONNotGo(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{"tool": "x"}`, "tool: cannot be a JSON string (want an object)"},
		{`{"tool": {"name": 5}}`, "tool.name: cannot be a JSON number (want a string)"},
		{`{"count": "5"}`, "count: cannot be a JSON string (want an integer)"},
		{`{"count": 1.5}`, "count: cannot be a JSON number 1.5 (want an integer)"},
		{`{"ratio": []}`, "ratio: cannot be a JSON array (want a number)"},
		{`{"tags": {}}`, "tags: cannot be a JSON object (want an array)"},
		{`{"labels": []}`, "labels: cannot be a JSON array (want an object)"},
		{`{"on": 1}`, "on: cannot be a JSON number (want true or false)"},
		{`{"pointer": 1}`, "pointer: cannot be a JSON number (want an object)"},
		{`[]`, "the body: cannot be a JSON array (want an object)"},
		{`{"tool": `, "malformed JSON: the body ends before the JSON does"},
		{`{"tool" 1}`, "malformed JSON at byte 9: invalid character '1' after object key"},
		{``, "the body is empty: want a JSON object"},
		{`{"nope": 1}`, "nope: unknown field"},
	} {
		var b body
		dec := json.NewDecoder(strings.NewReader(tc.in))
		dec.DisallowUnknownFields()
		err := dec.Decode(&b)
		if err == nil {
			t.Errorf("%s: decoded", tc.in)
			continue
		}
		got := errcode.DescribeJSON(err)
		if got != tc.want {
			t.Errorf("%s:\n got %q\nwant %q", tc.in, got, tc.want)
		}
		if g := errcodetest.GoTypeName(got); g != "" {
			t.Errorf("%s: %q shows the Go type %q", tc.in, got, g)
		}
	}
}

func TestGoTypeNameFindsWhatEncodingJSONWouldSay(t *testing.T) {
	for _, msg := range []string{
		"tool: cannot be a JSON string (want action.Tool)",
		"json: cannot unmarshal string into Go struct field Action.tool of type action.Tool",
		"n: wrong type: got a JSON string, want int64",
		"messages: want []json.RawMessage",
		"thinking: want struct { BudgetTokens int64 }",
		"labels: want map[string]string",
	} {
		if errcodetest.GoTypeName(msg) == "" {
			t.Errorf("%q: no Go type name found", msg)
		}
	}
	for _, msg := range []string{
		"tool: cannot be a JSON string (want an object)",
		"model \"gpt-4o-mini\" is not in the model catalogue",
		"request body larger than 1048576 bytes",
		"use api.github.com, not example.com",
		"args.path: unknown field",
	} {
		if g := errcodetest.GoTypeName(msg); g != "" {
			t.Errorf("%q: %q read as a Go type name", msg, g)
		}
	}
}
