package mcp

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/chaos"
)

// withChaos puts the experiments in front of the gateway's upstream; their
// faults are audited in rec.
func withChaos(t *testing.T, rec *memRecorder, exps ...chaos.Experiment) func(*Config) {
	t.Helper()
	chaos.Fill(exps)
	if err := chaos.Validate(exps); err != nil {
		t.Fatal(err)
	}
	in := chaos.New(exps, chaos.Options{Audit: rec, Rand: func() float64 { return 0 }})
	return func(c *Config) { c.Chaos = in }
}

// outcomes returns the outcomes recorded so far, waiting until there are n.
func (d *testDecider) awaitOutcomes(t *testing.T, n int) []action.Outcome {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		d.mu.Lock()
		var out []action.Outcome
		for _, o := range d.outcomes {
			out = append(out, o)
		}
		d.mu.Unlock()
		if len(out) >= n || time.Now().After(deadline) {
			return out
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// An error experiment answers the call with a tool error the model can
// read, naming the experiment, without reaching the upstream; the outcome
// is an error, as a failing tool's is, and the fault is audited with the
// call's decision.
func TestChaosErrorAnswersAToolErrorAndSettlesAFailure(t *testing.T) {
	faults := &memRecorder{}
	h := startStdio(t, "clean", withChaos(t, faults, chaos.Experiment{
		ID: "echo-down", Match: chaos.Match{Tools: []string{"test/echo"}}, Fault: chaos.Error, Probability: 1,
		Error: &chaos.ErrorSpec{Message: "service unavailable", Code: 503},
	}), nil)
	res := h.call(t, "echo", map[string]any{"text": "hello"})
	text := resultString(res)
	if !res.IsError || strings.Contains(text, "hello") ||
		!strings.Contains(text, "service unavailable") || !strings.Contains(text, "chaos experiment echo-down") || !strings.Contains(text, "503") {
		t.Fatalf("result %v %q, want the injected error, not the echo", res.IsError, text)
	}
	if res.Meta["agentgov/chaos"] != "echo-down" {
		t.Errorf("meta %v", res.Meta)
	}
	os := h.dec.awaitOutcomes(t, 1)
	if len(os) != 1 || os[0].Status != "error" || !strings.Contains(os[0].Error, "service unavailable") {
		t.Fatalf("outcomes %+v, want one error", os)
	}
	recs := faults.await(t, "chaos.fault", 1)
	if len(recs) != 1 || recs[0]["experiment"] != "echo-down" || recs[0]["fault"] != "error" || recs[0]["tool"] != "echo" ||
		recs[0]["server"] != "test" || recs[0]["agent"] != "tester" || recs[0]["decision"] == "" {
		t.Fatalf("fault records %v", recs)
	}
	results := h.rec.await(t, "mcp.result", 1)
	if len(results) != 1 || results[0]["status"] != "error" || results[0]["decision"] != recs[0]["decision"] {
		t.Fatalf("result records %v", results)
	}
	// Tools the experiment does not match go through.
	if res := h.call(t, "pay", map[string]any{"amount": 3}); res.IsError || resultString(res) != "paid 3" {
		t.Fatalf("unmatched tool: %q", resultString(res))
	}
}

// A drop leaves the call without an answer of the upstream's: it fails as
// a call whose upstream closed the connection does.
func TestChaosDropFailsTheCallAsAClosedUpstream(t *testing.T) {
	faults := &memRecorder{}
	h := startStdio(t, "clean", withChaos(t, faults, chaos.Experiment{
		ID: "cut", Match: chaos.Match{Servers: []string{"test"}}, Fault: chaos.Drop, Probability: 1,
	}), nil)
	_, err := h.session.CallTool(context.Background(), &sdk.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "x"}})
	if err == nil || !strings.Contains(err.Error(), "closed the connection") || !strings.Contains(err.Error(), "chaos experiment cut") {
		t.Fatalf("dropped call: %v", err)
	}
	if os := h.dec.awaitOutcomes(t, 1); len(os) != 1 || os[0].Status != "error" {
		t.Fatalf("outcomes %+v", os)
	}
	if recs := faults.await(t, "chaos.fault", 1); len(recs) != 1 || recs[0]["fault"] != "drop" {
		t.Fatalf("fault records %v", recs)
	}
	// Other requests than tools/call are not touched.
	if _, err := h.session.ListTools(context.Background(), nil); err != nil {
		t.Fatalf("list tools: %v", err)
	}
}

// A latency fault holds the call before it is forwarded: a call behind it
// overtakes it, and the held call never reaches the upstream when the
// client cancels it first. A short one goes through and succeeds.
func TestChaosLatencyHoldsTheCallUntilItsContextEnds(t *testing.T) {
	faults := &memRecorder{}
	h := startStdio(t, "clean", withChaos(t, faults,
		chaos.Experiment{ID: "stall", Match: chaos.Match{Tools: []string{"wait"}}, Fault: chaos.Latency, Probability: 1, LatencyMS: int64(chaos.MaxLatency / time.Millisecond)},
		chaos.Experiment{ID: "slow-echo", Match: chaos.Match{Tools: []string{"echo"}}, Fault: chaos.Latency, Probability: 1, LatencyMS: 1},
	), nil)
	path := filepath.Join(t.TempDir(), "gate")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := h.session.CallTool(ctx, &sdk.CallToolParams{Name: "wait", Arguments: map[string]any{"path": path}})
		done <- err
	}()
	if recs := faults.await(t, "chaos.fault", 1); len(recs) != 1 || recs[0]["experiment"] != "stall" {
		t.Fatalf("fault records %v", recs)
	}
	if res := h.call(t, "echo", map[string]any{"text": "overtakes"}); res.IsError || resultString(res) != "overtakes" {
		t.Fatalf("echo behind the held call: %q", resultString(res))
	}
	if _, err := os.Stat(path + ".started"); err == nil {
		t.Fatal("the held call reached the upstream before the call behind it was answered")
	}
	select {
	case err := <-done:
		t.Fatalf("the held call was answered: %v", err)
	default:
	}
	// The client cancels it: the wait ends (the session drains at the end
	// of the test only once it has), and it is never sent.
	cancel()
	if err := <-done; err == nil {
		t.Fatal("the held call succeeded after it was cancelled")
	}
	h.session.Close()
	if _, err := os.Stat(path + ".started"); err == nil {
		t.Fatal("the held call reached the upstream")
	}
	if recs := faults.kind("chaos.fault"); len(recs) != 2 || recs[1]["experiment"] != "slow-echo" {
		t.Fatalf("fault records %v", recs)
	}
}
