package mcp

import (
	"context"
	"fmt"
	"strings"
	"testing"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentgov/agentgov/action"
)

// askingGateway is a stdio gateway whose person declines every question,
// passing each on to asked.
func askingGateway(t *testing.T) (*harness, chan string) {
	t.Helper()
	asked := make(chan string, 4)
	h := startStdio(t, "clean", func(c *Config) { c.ElicitApprovals, c.ElicitApprover = true, "os-user:alice" }, &sdk.ClientOptions{
		ElicitationHandler: func(ctx context.Context, r *sdk.ElicitRequest) (*sdk.ElicitResult, error) {
			asked <- r.Params.Message
			return &sdk.ElicitResult{Action: "decline"}, nil
		},
	})
	return h, asked
}

// The person asked to approve a payment must see whom it pays. Padding
// one argument used to push the others past the 2,000 bytes the question
// showed; now every argument is on a line of its own, each summarised.
func TestElicitationShowsEveryArgument(t *testing.T) {
	pad := strings.Repeat("x", 5000)
	for _, tc := range []struct {
		name string
		args map[string]any
		want []string
	}{
		{"padded neighbour", map[string]any{"amount": 700, "memo": pad, "recipient": "mallory-9"},
			[]string{`recipient: "mallory-9"`, `amount: 700`, `memo: "xxxx`, `(5000 bytes in all)`}},
		{"padded and nested", map[string]any{"amount": 700, "payment": map[string]any{"a_memo": pad, "to": "mallory-9"}},
			[]string{`payment.to: "mallory-9"`, `payment.a_memo: "xxxx`}},
		{"padded key", map[string]any{"amount": 700, strings.Repeat("k", 3000): "v", "to": "mallory-9"},
			[]string{`to: "mallory-9"`, `(3000 bytes in all)`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, asked := askingGateway(t)
			res := h.call(t, "pay", tc.args)
			if !res.IsError || !strings.Contains(resultString(res), "needs a person's approval") {
				t.Fatalf("a declined payment = %v %q", res.IsError, resultString(res))
			}
			msg := <-asked
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("the question %q does not show %q", msg, w)
				}
			}
			if len(msg) > 2000 {
				t.Errorf("the question is %d bytes; the padding should be summarised", len(msg))
			}
		})
	}
}

// A value cannot fake a line of its own, nor hide characters: controls,
// format characters (bidi overrides, zero-width) are escaped.
func TestElicitationEscapesWhatCouldMislead(t *testing.T) {
	h, asked := askingGateway(t)
	h.call(t, "pay", map[string]any{"amount": 700, "note": "ok\n  recipient: \"friend\"", "recipient": "mal\u202eyrol\u200b"})
	msg := <-asked
	for _, line := range strings.Split(msg, "\n") {
		if strings.TrimSpace(line) == `recipient: "friend"` {
			t.Fatalf("a value faked a line of the question: %q", msg)
		}
	}
	if strings.ContainsAny(msg, "\u202e\u200b") || !strings.Contains(msg, `recipient: "mal\u202eyrol\u200b"`) {
		t.Fatalf("invisible characters reached the question unescaped: %q", msg)
	}
}

// A call with more arguments than a person can read is not put to them:
// its ticket waits for an approver, who sees the whole action.
func TestElicitationNotAskedForTooManyArguments(t *testing.T) {
	h, asked := askingGateway(t)
	args := map[string]any{"amount": 700}
	for i := range 150 {
		args[fmt.Sprintf("line_%03d", i)] = "x"
	}
	res := h.call(t, "pay", args)
	if !res.IsError || !strings.Contains(resultString(res), "agentgov approvals approve") {
		t.Fatalf("a payment with 151 arguments = %v %q; want its ticket", res.IsError, resultString(res))
	}
	select {
	case msg := <-asked:
		t.Fatalf("the person was asked about a call they cannot read through: %.200q", msg)
	default:
	}
}

func TestDescribeArgs(t *testing.T) {
	got, ok := describeArgs(map[string]any{
		"amount": int64(700), "rate": 0.25, "ok": true, "none": nil,
		"to":   []any{"a", map[string]any{"iban": "GB29"}},
		"meta": map[string]any{}, "list": []any{}, "odd key": "v",
	})
	want := `Arguments (9):
  amount: 700
  list: []
  meta: {}
  none: null
  "odd key": "v"
  ok: true
  rate: 0.25
  to[0]: "a"
  to[1].iban: "GB29"`
	if !ok || got != want {
		t.Fatalf("describeArgs =\n%s\nwant\n%s", got, want)
	}
}

// A tool's error text goes into the audit log's mcp.result record and the
// engine's outcome: whatever secret it holds is masked first, as the
// engine masks its decision records.
func TestErrorTextIsMaskedInTheAuditLog(t *testing.T) {
	h := startStdio(t, "clean", nil, nil)
	res := h.call(t, "fail", nil)
	if !res.IsError {
		t.Fatalf("the failing tool = %q", resultString(res))
	}
	results := h.rec.await(t, "mcp.result", 1)
	if len(results) != 1 {
		t.Fatalf("result records = %v", results)
	}
	if e := fmt.Sprint(results[0]["error"]); strings.Contains(e, "AKIAIOSFODNN7EXAMPLE") || !strings.Contains(e, "[REDACTED") {
		t.Fatalf("mcp.result error = %q; want the key masked", e)
	}
	o, ok := h.dec.outcome(t, action.NewID(1, 0, idOf(h.dec, "fail")))
	if !ok || strings.Contains(o.Error, "AKIAIOSFODNN7EXAMPLE") {
		t.Fatalf("outcome = %+v; want the key masked there too", o)
	}
}

// Every record the gateway writes itself passes the detectors, whatever
// field the secret is in: here the client names tools after a key and an
// e-mail address (the gateway refuses those calls itself and records
// them, reasons quoting the names included).
func TestNoGatewayRecordHoldsASecretInClear(t *testing.T) {
	const key = "AKIAIOSFODNN7EXAMPLE"
	const mail = "jane.doe@example.com"
	h := startStdio(t, "clean", nil, nil)
	if res := h.call(t, key, nil); !res.IsError {
		t.Fatalf("a call of a tool the upstream lacks: %q", resultString(res))
	}
	if res := h.call(t, mail, nil); !res.IsError {
		t.Fatalf("a call of a tool the upstream lacks: %q", resultString(res))
	}
	calls := h.rec.await(t, "mcp.call", 2)
	if got := fmt.Sprint(calls); !strings.Contains(got, "[REDACTED") {
		t.Fatalf("mcp.call records = %v; want the tool name masked", got)
	}
	h.rec.mu.Lock()
	defer h.rec.mu.Unlock()
	for _, r := range h.rec.records {
		if strings.Contains(string(r.Record), key) || strings.Contains(string(r.Record), mail) {
			t.Errorf("%s record holds a secret in clear: %s", r.Kind, r.Record)
		}
	}
}
