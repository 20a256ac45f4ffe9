package mcp

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/agentgov/agentgov/errcode"
	"github.com/agentgov/agentgov/mcp/pin"
)

// A tool that drifted is shown with the difference from its pin; a person
// re-pins it after review, the re-pin is audited, and the session's next
// call goes through.
func TestRepinAfterReviewLetsTheNextCallThrough(t *testing.T) {
	h := startStdio(t, "clean", nil, nil)
	if rv := h.g.Review(); rv.Drift || len(rv.Tools) != 0 && rv.Tools[0].State != ToolUnlisted {
		t.Fatalf("before any listing: %+v", rv)
	}
	if res := h.call(t, "echo", map[string]any{"text": "before"}); res.IsError {
		t.Fatalf("echo before the change: %q", resultString(res))
	}
	if _, err := h.g.Repin(context.Background(), RepinRequest{Tool: "echo", By: "ops", Reason: "looks fine"}); code(err) != errcode.Conflict || !strings.Contains(err.Error(), "has not drifted") {
		t.Fatalf("re-pin of a tool that did not drift: %v", err)
	}
	h.call(t, "mutate", nil)
	<-h.changed
	if res := h.call(t, "echo", map[string]any{"text": 1, "extra": "x"}); !res.IsError {
		t.Fatal("the drifted tool was callable before the re-pin")
	}

	rv := h.g.Review()
	var echo ToolReview
	for _, tr := range rv.Tools {
		if tr.Name == "echo" {
			echo = tr
		}
	}
	if !rv.Drift || rv.Quarantined != 1 || echo.State != ToolDrifted || echo.Quarantine == "" || echo.PinnedDigest == echo.CurrentDigest {
		t.Fatalf("review after the drift: %+v", rv)
	}
	var minus, plus string
	for _, l := range echo.Diff {
		switch l.Op {
		case "-":
			minus += l.Text
		case "+":
			plus += l.Text
		}
	}
	if !strings.Contains(minus, "the text to echo") || !strings.Contains(plus, `"type": "number"`) || !strings.Contains(plus, `"extra"`) {
		t.Fatalf("the diff does not show the schema change: -%s +%s", minus, plus)
	}

	for name, req := range map[string]RepinRequest{
		"no reason":       {Tool: "echo", By: "ops", Digest: echo.CurrentDigest},
		"a stale review":  {Tool: "echo", By: "ops", Reason: "ok", Digest: echo.PinnedDigest},
		"an unknown tool": {Tool: "nope", By: "ops", Reason: "ok"},
		"no tool named":   {By: "ops", Reason: "ok"},
	} {
		if _, err := h.g.Repin(context.Background(), req); err == nil {
			t.Errorf("re-pin with %s was accepted", name)
		}
	}
	if m, _ := h.pins.Server("test"); func() string { fp, _ := m["echo"].Fingerprint(); return fp }() != echo.PinnedDigest {
		t.Fatal("a refused re-pin changed the pin")
	}

	got, err := h.g.Repin(context.Background(), RepinRequest{Tool: "echo", By: "ops", Reason: "the number form is intended", Digest: echo.CurrentDigest})
	if err != nil || got.OldDigest != echo.PinnedDigest || got.NewDigest != echo.CurrentDigest {
		t.Fatalf("re-pin = %+v, %v", got, err)
	}
	recs := h.rec.kind("mcp.repin")
	if len(recs) != 1 || recs[0]["by"] != "ops" || recs[0]["reason"] != "the number form is intended" ||
		recs[0]["old_digest"] != echo.PinnedDigest || recs[0]["new_digest"] != echo.CurrentDigest || recs[0]["tool"] != "echo" {
		t.Fatalf("audit records of the re-pin: %v", recs)
	}
	if res := h.call(t, "echo", map[string]any{"text": 7, "extra": "x"}); res.IsError || resultString(res) != "7" {
		t.Fatalf("the next call after the re-pin: %v %q", res.IsError, resultString(res))
	}
	if rv := h.g.Review(); rv.Drift || rv.Quarantined != 0 {
		t.Fatalf("review after the re-pin: %+v", rv)
	}
}

// A signed lock is never re-pinned at run time, and a re-pin that cannot
// be audited changes nothing.
func TestRepinRefusedOnASignedLockOrWithoutAudit(t *testing.T) {
	l := &pin.Lock{}
	l.Pin("test", nil)
	h := startStdio(t, "clean", func(c *Config) { c.Pins = pin.SignedPins(l) }, nil)
	h.call(t, "echo", map[string]any{"text": "x"}) // quarantined: not pinned
	_, err := h.g.Repin(context.Background(), RepinRequest{Tool: "echo", By: "ops", Reason: "ok"})
	if code(err) != errcode.Conflict || !strings.Contains(err.Error(), "signed") {
		t.Fatalf("re-pin on a signed lock: %v", err)
	}
	if len(h.rec.kind("mcp.repin")) != 0 {
		t.Fatal("a refused re-pin was recorded as done")
	}

	h2 := startStdio(t, "clean", func(c *Config) { c.TrustOnFirstUse = false }, nil)
	h2.call(t, "echo", map[string]any{"text": "x"})
	h2.rec.mu.Lock()
	h2.rec.fail = errors.New("disk full")
	h2.rec.mu.Unlock()
	if _, err := h2.g.Repin(context.Background(), RepinRequest{Tool: "echo", By: "ops", Reason: "ok"}); code(err) != errcode.Unavailable {
		t.Fatalf("re-pin without an audit log: %v", err)
	}
	if _, ok := h2.pins.Server("test"); ok {
		t.Fatal("an unaudited re-pin changed the pins")
	}
}

func code(err error) errcode.Code {
	if e, ok := errcode.As(err); ok {
		return e.Code
	}
	return ""
}

// Two people re-pinning the same drift at once: one re-pin is made and
// audited, the other is told nothing drifted.
func TestConcurrentRepinsOfOneDriftMakeOne(t *testing.T) {
	h := startStdio(t, "clean", nil, nil)
	h.call(t, "echo", map[string]any{"text": "before"})
	h.call(t, "mutate", nil)
	<-h.changed
	h.call(t, "echo", map[string]any{"text": 1, "extra": "x"})
	errs := make(chan error, 2)
	for range 2 {
		go func() {
			_, err := h.g.Repin(context.Background(), RepinRequest{Tool: "echo", By: "ops", Reason: "reviewed"})
			errs <- err
		}()
	}
	e1, e2 := <-errs, <-errs
	if (e1 == nil) == (e2 == nil) {
		t.Fatalf("two concurrent re-pins: %v, %v; want one made and one refused", e1, e2)
	}
	if n := len(h.rec.kind("mcp.repin")); n != 1 {
		t.Fatalf("%d re-pins audited, want 1", n)
	}
}
