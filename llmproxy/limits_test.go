package llmproxy

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// A hostile or broken upstream answers without end. The proxy used to read
// a whole answer into memory, however large; it now relays at most its
// bound, refuses the rest in the provider's shape, and charges the call
// its reservation (the provider may bill what it wrote).
func TestAnUpstreamAnswerBeyondTheBoundIsNotRelayed(t *testing.T) {
	r := newRig(t, nil)
	r.proxy.maxAnswer = 4 << 10
	res := r.do("POST", "/llm/v1/chat/completions", `{"model":"gpt-4o-mini","max_tokens":20,"messages":[{"role":"user","content":"huge"}]}`)
	if res.status != 502 || !strings.Contains(string(res.body), "larger than 4096 bytes") || strings.Contains(string(res.body), "xxxx") {
		t.Fatalf("%d %.300s", res.status, res.body)
	}
	o := r.dec.outcome(t, res.header.Get(HeaderDecision))
	if o.Status != "error" || o.OutputTokens != 20 || !strings.Contains(o.Error, "larger than") {
		t.Errorf("outcome = %+v; want an error charged the reservation", o)
	}
}

// The variant in a stream: one event without end. The stream is cut there
// and settled as an error at the reservation, not held in memory.
func TestAStreamEventBeyondTheBoundCutsTheStream(t *testing.T) {
	r := newRig(t, nil)
	r.proxy.maxEvent = 4 << 10
	res := r.do("POST", "/llm/v1/chat/completions", `{"model":"gpt-4o-mini","max_tokens":20,"stream":true,"messages":[{"role":"user","content":"huge-event"}]}`)
	if res.status != 200 || !strings.Contains(string(res.body), "Hel") || strings.Contains(string(res.body), "xxxx") || strings.Contains(string(res.body), "[DONE]") {
		t.Fatalf("%d %.300s", res.status, res.body)
	}
	o := r.dec.outcome(t, res.header.Get(HeaderDecision))
	if o.Status != "error" || o.OutputTokens != 20 || !strings.Contains(o.Error, "event larger than 4096 bytes") {
		t.Errorf("outcome = %+v", o)
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

type stalledBody struct{ n int }

func (b *stalledBody) Read(p []byte) (int, error) {
	if b.n == 0 {
		b.n++
		return copy(p, `{"model":"gpt-4o-mini",`), nil
	}
	return 0, timeoutErr{}
}
func (b *stalledBody) Close() error { return nil }

// A body that stops arriving (the server's read deadline passed) is answered
// 408 in the provider's shape, and nothing is decided.
func TestABodyThatStopsArrivingIs408(t *testing.T) {
	r := newRig(t, nil)
	req := httptest.NewRequest("POST", "/llm/v1/chat/completions", nil)
	req.Body = &stalledBody{}
	req.Header.Set("Authorization", "Bearer "+agentToken)
	rec := httptest.NewRecorder()
	r.proxy.ServeHTTP(rec, req)
	if rec.Code != http.StatusRequestTimeout || !strings.Contains(rec.Body.String(), "did not arrive in time") {
		t.Errorf("%d %s", rec.Code, rec.Body)
	}
	if len(r.dec.decided()) != 0 {
		t.Error("a body that never arrived was decided")
	}
}
