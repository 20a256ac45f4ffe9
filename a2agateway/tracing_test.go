package a2agateway

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/agentgov/agentgov/calltrace"
	"github.com/agentgov/agentgov/calltrace/calltracetest"
)

// With a tracer, a message to the agent is a span invoke_agent {agent} in
// the caller's trace; the agent receives the span's traceparent; a
// refused message's span ends with the JSON-RPC code the caller got.
func TestMessageSpanJoinsTheCallersTraceAndReachesTheAgent(t *testing.T) {
	agent := startUpstream(t, &executor{release: make(chan struct{})})
	target, _ := url.Parse(agent.URL)
	var mu sync.Mutex
	var got []string
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			mu.Lock()
			got = append(got, r.Header.Get("Traceparent"))
			mu.Unlock()
		}
		httputil.NewSingleHostReverseProxy(target).ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	tr := &calltracetest.Recorder{}
	h := start(t, front, func(c *Config) { c.Tracer = tr })

	caller := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	send := func(agent, text string) map[string]any {
		t.Helper()
		body := fmt.Sprintf(`{"jsonrpc":"2.0","id":1,"method":"message/send","params":{"message":{"kind":"message","messageId":"m1","role":"user","parts":[{"kind":"text","text":%q}]}}}`, text)
		req, _ := http.NewRequest(http.MethodPost, h.url(), strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer agent:"+agent)
		req.Header.Set("Traceparent", caller)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var v map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	if v := send("caller", "echo traced"); v["error"] != nil {
		t.Fatalf("send: %v", v)
	}
	spans := tr.All()
	if len(spans) != 1 {
		t.Fatalf("spans %+v", spans)
	}
	s := spans[0]
	if s.Call.Operation != calltrace.Agent || s.Call.Name != "billing" || s.Call.TraceParent != caller || s.Call.Address != "127.0.0.1" {
		t.Errorf("call %+v", s.Call)
	}
	if s.Ends != 1 || s.Ended.ErrorType != "" {
		t.Errorf("ended %d times with %+v", s.Ends, s.Ended)
	}
	mu.Lock()
	if len(got) != 1 || got[0] != s.TraceParent() {
		t.Errorf("the agent received traceparent %q, want the span's %q", got, s.TraceParent())
	}
	mu.Unlock()

	v := send("mallory", "echo nope")
	code, _, _ := rpcErr(t, v)
	spans = tr.All()
	if len(spans) != 2 || spans[1].Ends != 1 || spans[1].Ended.ErrorType != fmt.Sprint(int64(code)) || spans[1].Ended.Error == "" {
		t.Errorf("refused message: code %v, spans %+v", code, spans)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 {
		t.Errorf("a refused message reached the agent")
	}
}

// A stream's span ends with the JSON-RPC code of the error event the
// stream ended with (here a reply withheld for the credential it carries);
// a stream that ends with the task's turn ends its span without one.
func TestStreamSpanEndsWithTheErrorItEndedWith(t *testing.T) {
	tr := &calltracetest.Recorder{}
	h := start(t, nil, func(c *Config) { c.Tracer = tr })
	stream := func(text string) []map[string]any {
		return h.rpc(t, "caller", "message/stream", map[string]any{"message": map[string]any{
			"kind": "message", "messageId": "m-" + text[:4], "role": "user", "parts": []any{map[string]any{"kind": "text", "text": text}}}})
	}
	out := stream("task the quarterly report")
	if _, isErr := out[len(out)-1]["error"]; isErr {
		t.Fatalf("the clean stream ended with an error: %v", out[len(out)-1])
	}
	out = stream("task " + fakeToken)
	code, _, _ := rpcErr(t, out[len(out)-1])
	spans := tr.All()
	if len(spans) != 2 {
		t.Fatalf("spans %+v", spans)
	}
	if spans[0].Ends != 1 || spans[0].Ended.ErrorType != "" {
		t.Errorf("the clean stream's span ended %d times with %+v", spans[0].Ends, spans[0].Ended)
	}
	if spans[1].Ends != 1 || spans[1].Ended.ErrorType != fmt.Sprint(int64(code)) || !strings.Contains(spans[1].Ended.Error, "credential") {
		t.Errorf("the withheld stream's span: code %v, ended %d times with %+v", code, spans[1].Ends, spans[1].Ended)
	}
}
