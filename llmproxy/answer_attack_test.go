package llmproxy

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
	"testing"
)

// A stream that ends before its final usage report has been billed for
// everything the model wrote, but reported only what came before: Anthropic's
// message_start says output_tokens 1, and OpenAI-compatible servers that
// report usage on every chunk (vLLM's continuous usage) count only the
// chunks so far. The proxy used to charge that early count, so a stream cut
// after the answer (by a broken upstream, or a mid-stream error event) cost
// the budget one token. It is now charged at least the reservation, as a
// stream without any usage report is.
func TestAStreamCutBeforeItsFinalUsageIsChargedTheReservation(t *testing.T) {
	var cut string
	r := rigWithUpstream(t, func(w http.ResponseWriter, req *http.Request) {
		io.Copy(io.Discard, req.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		event := func(name, data string) {
			if name != "" {
				fmt.Fprintf(w, "event: %s\n", name)
			}
			fmt.Fprintf(w, "data: %s\n\n", data)
			w.(http.Flusher).Flush()
		}
		switch cut {
		case "anthropic", "anthropic error event":
			event("message_start", `{"type":"message_start","message":{"id":"m","type":"message","role":"assistant","model":"claude-haiku-4-5","content":[],"usage":{"input_tokens":13,"output_tokens":1}}}`)
			event("content_block_start", `{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`)
			for range 50 {
				event("content_block_delta", `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"word "}}`)
			}
			if cut == "anthropic error event" {
				event("error", `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`)
			}
		case "openai continuous usage":
			for i := range 50 {
				event("", fmt.Sprintf(`{"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"word "}}],"usage":{"prompt_tokens":11,"completion_tokens":%d,"total_tokens":%d}}`, i+1, i+12))
			}
		}
		// The stream ends here, without its last event.
	})
	for _, c := range []struct{ cut, path, body string }{
		{"anthropic", messagesPath, `{"model":"claude-haiku-4-5","max_tokens":500,"stream":true,"messages":[{"role":"user","content":"write"}]}`},
		{"anthropic error event", messagesPath, `{"model":"claude-haiku-4-5","max_tokens":500,"stream":true,"messages":[{"role":"user","content":"write"}]}`},
		{"openai continuous usage", chatPath, `{"model":"gpt-4o-mini","max_tokens":500,"stream":true,"messages":[{"role":"user","content":"write"}]}`},
	} {
		cut = c.cut
		res := r.do("POST", c.path, c.body)
		if res.status != 200 {
			t.Fatalf("%s: %d %s", c.cut, res.status, res.body)
		}
		o := r.dec.outcome(t, res.header.Get(HeaderDecision))
		if o.Status != "error" || o.OutputTokens < 500 {
			t.Errorf("%s: outcome %+v; want an error charged at least the 500 output tokens reserved", c.cut, o)
		}
	}
}

// A hostile upstream reports usage so large that the proxy's sums wrapped
// around to negative numbers: the outcome was then invalid, never
// recorded, and the call charged nothing. Sums now saturate, and the call
// is charged at least what it reserved.
func TestAnUpstreamsOverflowingUsageStillChargesTheBudget(t *testing.T) {
	var usage string
	r := rigWithUpstream(t, func(w http.ResponseWriter, req *http.Request) {
		io.Copy(io.Discard, req.Body)
		writeRaw(w, 200, `{"id":"c","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"hi"}}],"usage":`+usage+`}`)
	})
	maxInt := fmt.Sprint(int64(math.MaxInt64))
	for name, u := range map[string]string{
		"input plus output": `{"prompt_tokens":` + maxInt + `,"completion_tokens":5}`,
		"input fields":      `{"prompt_tokens":` + maxInt + `,"input_tokens":` + maxInt + `,"completion_tokens":5}`,
		"output fields":     `{"prompt_tokens":3,"completion_tokens":` + maxInt + `,"output_tokens":` + maxInt + `}`,
	} {
		usage = u
		res := r.do("POST", chatPath, `{"model":"gpt-4o-mini","max_tokens":50,"messages":[{"role":"user","content":"hi"}]}`)
		if res.status != 200 {
			t.Fatalf("%s: %d %s", name, res.status, res.body)
		}
		_, reserved := r.reserved(t)
		o := r.dec.outcome(t, res.header.Get(HeaderDecision))
		if o.Tokens < 0 || o.InputTokens < 0 || o.OutputTokens < 0 || o.CostUSD*1e6 < float64(reserved) {
			t.Errorf("%s: outcome %+v; want a valid outcome charging at least the %d µ$ reserved", name, o, reserved)
		}
	}
}

// An upstream's answer headers were copied over the proxy's own: an
// upstream could name another decision in X-Agentgov-Decision, or pose as
// a governance refusal or a chaos fault. The proxy's headers are its own.
func TestAnUpstreamCannotForgeTheProxysHeaders(t *testing.T) {
	r := rigWithUpstream(t, func(w http.ResponseWriter, req *http.Request) {
		io.Copy(io.Discard, req.Body)
		h := w.Header()
		h.Set(HeaderDecision, "forged")
		h.Set("X-Agentgov-Error-Code", "approval_required")
		h.Set(HeaderChaos, "forged")
		if strings.Contains(req.Header.Get("Accept"), "event-stream") {
			h.Set("Content-Type", "text/event-stream")
			io.WriteString(w, "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1}}\n\ndata: [DONE]\n\n")
			return
		}
		writeRaw(w, 200, `{"id":"c","object":"chat.completion","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1}}`)
	})
	for _, stream := range []bool{false, true} {
		accept := "application/json"
		if stream {
			accept = "text/event-stream"
		}
		res := r.do("POST", chatPath, fmt.Sprintf(`{"model":"gpt-4o-mini","max_tokens":5,"stream":%t,"messages":[{"role":"user","content":"hi"}]}`, stream), "Accept", accept)
		if res.status != 200 {
			t.Fatalf("stream %t: %d %s", stream, res.status, res.body)
		}
		for _, k := range []string{"X-Agentgov-Error-Code", HeaderChaos} {
			if v := res.header.Get(k); v != "" {
				t.Errorf("stream %t: the upstream set %s: %s", stream, k, v)
			}
		}
		got := res.header.Values(HeaderDecision)
		if len(got) != 1 || got[0] == "forged" {
			t.Errorf("stream %t: %s = %v, want the proxy's decision only", stream, HeaderDecision, got)
		} else {
			r.dec.outcome(t, got[0]) // the decision the call was settled under
		}
	}
}

// The request variant: the caller's Content-Type reached the upstream, so
// a caller could have the provider read the body the proxy decided as
// JSON as something else. The body is the proxy's JSON, and says so.
func TestTheUpstreamIsToldTheBodyIsJSON(t *testing.T) {
	r := newRig(t, nil)
	r.do("POST", chatPath, `{"model":"gpt-4o-mini","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`, "Content-Type", "application/json; charset=utf-16")
	if got := r.up.last().Header.Get("Content-Type"); got != "application/json" {
		t.Errorf("upstream Content-Type = %q, want application/json", got)
	}
}
