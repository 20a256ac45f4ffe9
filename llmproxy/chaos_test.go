package llmproxy

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentgov/agentgov/chaos"
)

// chaosRig is a rig whose calls meet the experiments; their faults are
// audited in rec.
func chaosRig(t *testing.T, rec *faultLog, exps ...chaos.Experiment) *rig {
	t.Helper()
	chaos.Fill(exps)
	if err := chaos.Validate(exps); err != nil {
		t.Fatal(err)
	}
	in := chaos.New(exps, chaos.Options{Audit: rec, Rand: func() float64 { return 0 }})
	return newRig(t, func(c *Config) { c.Chaos = injector{in} })
}

// injector puts a chaos.Injector in front of the proxy, as the server does.
type injector struct{ in *chaos.Injector }

func (i injector) Inject(ctx context.Context, c ChaosCall) (ChaosFault, bool) {
	f, ok := i.in.Inject(ctx, chaos.Call{Model: c.Model, Agent: c.Agent, Session: c.Session, Decision: c.Decision})
	return ChaosFault{Experiment: f.Experiment, Kind: f.Kind, Wait: f.Wait, Message: f.Message, Code: f.Code}, ok
}

// faultLog keeps the kinds of the audit records appended to it.
type faultLog struct {
	mu    sync.Mutex
	kinds []string
}

func (l *faultLog) Append(_ context.Context, kind string, _ any) (uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.kinds = append(l.kinds, kind)
	return uint64(len(l.kinds)), nil
}

// awaitKind waits for n records of kind.
func (l *faultLog) awaitKind(t *testing.T, kind string, n int) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := 0
		l.mu.Lock()
		for _, k := range l.kinds {
			if k == kind {
				got++
			}
		}
		l.mu.Unlock()
		if got >= n || time.Now().After(deadline) {
			return got
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// An error experiment answers with the provider's own 5xx error body, in
// the caller's dialect, without calling the provider; the outcome is a
// failed call, not billed, and the fault is audited.
func TestChaosErrorAnswersAProviderShaped5xx(t *testing.T) {
	rec := &faultLog{}
	r := chaosRig(t, rec,
		chaos.Experiment{ID: "gpt-outage", Match: chaos.Match{Models: []string{"gpt-4o*"}}, Fault: chaos.Error, Probability: 1,
			Error: &chaos.ErrorSpec{Message: "The server is overloaded", Code: 503}},
		chaos.Experiment{ID: "claude-overloaded", Match: chaos.Match{Models: []string{"claude-*"}}, Fault: chaos.Error, Probability: 1,
			Error: &chaos.ErrorSpec{Code: 529}},
	)
	res := r.do("POST", "/llm/v1/chat/completions", chatBody)
	if res.status != 503 || res.header.Get(HeaderChaos) != "gpt-outage" {
		t.Fatalf("status %d, chaos %q: %s", res.status, res.header.Get(HeaderChaos), res.body)
	}
	e, _ := decodeJSON(t, res.body)["error"].(map[string]any)
	if e["message"] != "The server is overloaded" || e["type"] != "server_error" {
		t.Fatalf("OpenAI error body %s", res.body)
	}
	if n := len(r.up.seen()); n != 0 {
		t.Fatalf("the provider got %d calls", n)
	}
	o := r.dec.outcome(t, res.header.Get(HeaderDecision))
	if o.Status != "error" || o.CostUSD != 0 || !strings.Contains(o.Error, "upstream answered 503 (chaos experiment gpt-outage)") {
		t.Fatalf("outcome %+v", o)
	}
	body := `{"model":"claude-haiku-4-5","max_tokens":256,"messages":[{"role":"user","content":"hello"}]}`
	res = r.do("POST", "/llm/anthropic/v1/messages", body, "Authorization", "", "X-Api-Key", agentToken)
	m := decodeJSON(t, res.body)
	ae, _ := m["error"].(map[string]any)
	if res.status != 529 || m["type"] != "error" || ae["type"] != "overloaded_error" || !strings.Contains(ae["message"].(string), "chaos experiment claude-overloaded") {
		t.Fatalf("Anthropic error %d %s", res.status, res.body)
	}
	if n := rec.awaitKind(t, "chaos.fault", 2); n != 2 {
		t.Fatalf("%d fault records, want 2", n)
	}
}

// A drop answers as the proxy does when the provider drops the connection:
// 502, upstream unreachable, and the provider never called.
func TestChaosDropAnswersAsAnUnreachableProvider(t *testing.T) {
	rec := &faultLog{}
	r := chaosRig(t, rec, chaos.Experiment{ID: "cut", Match: chaos.Match{Models: []string{"*"}}, Fault: chaos.Drop, Probability: 1})
	res := r.do("POST", "/llm/v1/chat/completions", chatBody)
	e, _ := decodeJSON(t, res.body)["error"].(map[string]any)
	if res.status != http.StatusBadGateway || e["code"] != "upstream_unreachable" || res.header.Get(HeaderChaos) != "cut" {
		t.Fatalf("dropped call %d %s", res.status, res.body)
	}
	if n := len(r.up.seen()); n != 0 {
		t.Fatalf("the provider got %d calls", n)
	}
	if o := r.dec.outcome(t, res.header.Get(HeaderDecision)); o.Status != "error" || o.CostUSD != 0 || !strings.Contains(o.Error, "dropped by chaos experiment cut") {
		t.Fatalf("outcome %+v", o)
	}
}

// A latency fault holds the call before it is forwarded: a call to another
// model overtakes it, and the held call is never forwarded when its caller
// gives up first. A short one is forwarded and succeeds.
func TestChaosLatencyHoldsTheCallUntilItsCallerGivesUp(t *testing.T) {
	rec := &faultLog{}
	r := chaosRig(t, rec,
		chaos.Experiment{ID: "stall", Match: chaos.Match{Models: []string{"gpt-4o-mini"}}, Fault: chaos.Latency, Probability: 1, LatencyMS: chaos.MaxLatency.Milliseconds()},
		chaos.Experiment{ID: "blip", Match: chaos.Match{Models: []string{"claude-*"}}, Fault: chaos.Latency, Probability: 1, LatencyMS: 1},
	)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, "POST", r.proxyURL+"/llm/v1/chat/completions", strings.NewReader(chatBody))
		req.Header.Set("Authorization", "Bearer "+agentToken)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	if n := rec.awaitKind(t, "chaos.fault", 1); n != 1 {
		t.Fatal("the held call's fault was not audited")
	}
	body := `{"model":"claude-haiku-4-5","max_tokens":256,"messages":[{"role":"user","content":"hello"}]}`
	res := r.do("POST", "/llm/anthropic/v1/messages", body, "Authorization", "", "X-Api-Key", agentToken)
	if res.status != 200 || res.header.Get(HeaderChaos) != "blip" {
		t.Fatalf("the call behind it: %d %s", res.status, res.body)
	}
	if seen := r.up.seen(); len(seen) != 1 || !strings.Contains(seen[0].Path, "messages") {
		t.Fatalf("the provider saw %+v, want only the call behind the held one", seen)
	}
	select {
	case err := <-done:
		t.Fatalf("the held call was answered: %v", err)
	default:
	}
	cancel()
	if err := <-done; err == nil {
		t.Fatal("the held call succeeded after its caller gave up")
	}
	deadline := time.Now().Add(10 * time.Second)
	for r.dec.outcomeCount() < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	r.dec.mu.Lock()
	cancelled := 0
	for _, o := range r.dec.outcomes {
		if o.Status == "error" && strings.Contains(o.Error, "caller went away") {
			cancelled++
		}
	}
	r.dec.mu.Unlock()
	if cancelled != 1 {
		t.Fatalf("outcomes %+v, want the held call settled as abandoned", r.dec.outcomes)
	}
	if n := len(r.up.seen()); n != 1 {
		t.Fatalf("the held call reached the provider (%d calls)", n)
	}
}

// An experiment whose window has passed, or not yet come, injects nothing:
// the call is forwarded and answered by the provider.
func TestChaosOutsideItsWindowInjectsNothing(t *testing.T) {
	rec := &faultLog{}
	now := time.Now()
	r := chaosRig(t, rec,
		chaos.Experiment{ID: "past", Match: chaos.Match{Models: []string{"*"}}, Fault: chaos.Drop, Probability: 1,
			From: &chaos.Time{Time: now.Add(-2 * time.Hour)}, Until: &chaos.Time{Time: now.Add(-time.Hour)}},
		chaos.Experiment{ID: "future", Match: chaos.Match{Models: []string{"*"}}, Fault: chaos.Drop, Probability: 1,
			From: &chaos.Time{Time: now.Add(time.Hour)}},
	)
	res := r.do("POST", "/llm/v1/chat/completions", chatBody)
	if res.status != 200 || res.header.Get(HeaderChaos) != "" {
		t.Fatalf("outside the windows: %d %q %s", res.status, res.header.Get(HeaderChaos), res.body)
	}
	if n := len(r.up.seen()); n != 1 {
		t.Fatalf("the provider got %d calls, want 1", n)
	}
	if n := rec.awaitKind(t, "chaos.fault", 0); n != 0 {
		t.Fatalf("%d faults recorded", n)
	}
}

// An error fault with a wait fails only after it; a caller that gives up
// during the wait gets nothing, and the call is settled as abandoned,
// never forwarded.
func TestChaosErrorAfterAWaitHonoursTheCaller(t *testing.T) {
	rec := &faultLog{}
	r := chaosRig(t, rec, chaos.Experiment{ID: "timeout", Match: chaos.Match{Models: []string{"*"}}, Fault: chaos.Error, Probability: 1,
		LatencyMS: chaos.MaxLatency.Milliseconds(), Error: &chaos.ErrorSpec{Message: "gateway timeout", Code: 504}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, "POST", r.proxyURL+"/llm/v1/chat/completions", strings.NewReader(chatBody))
		req.Header.Set("Authorization", "Bearer "+agentToken)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	if n := rec.awaitKind(t, "chaos.fault", 1); n != 1 {
		t.Fatal("the fault was not audited")
	}
	select {
	case err := <-done:
		t.Fatalf("answered before its wait: %v", err)
	default:
	}
	cancel()
	if err := <-done; err == nil {
		t.Fatal("the caller that gave up got an answer")
	}
	deadline := time.Now().Add(10 * time.Second)
	for r.dec.outcomeCount() < 1 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	r.dec.mu.Lock()
	defer r.dec.mu.Unlock()
	for _, o := range r.dec.outcomes {
		if o.Status != "error" || !strings.Contains(o.Error, "caller went away") {
			t.Fatalf("outcome %+v, want the abandoned call", o)
		}
	}
	if len(r.dec.outcomes) != 1 || len(r.up.seen()) != 0 {
		t.Fatalf("%d outcomes, %d provider calls", len(r.dec.outcomes), len(r.up.seen()))
	}
}
