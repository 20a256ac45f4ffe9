package server_test

import (
	"testing"
)

// A client spraying unknown tokens is refused every time, but it cannot
// grow the audit log at the rate it sends: past the first refusals of a
// minute from one address, the rest are counted, and the count is in the
// next refusal that is audited.
func TestSprayedTokensAreRefusedWithoutFloodingTheAuditLog(t *testing.T) {
	e := start(t)
	for i := range 120 {
		if code, m := e.call("POST", "/v1/decide", "guess-"+string(rune('a'+i%26)), `{"tool":{"name":"read_file"}}`); code != 401 {
			t.Fatalf("guess %d: %d %v, want 401", i, code, m)
		}
	}
	got := e.entries("credential_refused")
	if len(got) != 20 {
		t.Fatalf("%d refusals audited of 120 from one address, want the first 20", len(got))
	}
	for _, r := range got {
		if r["reason"] != "unknown_token" || r["source"] != "127.0.0.1" {
			t.Fatalf("a refusal's entry: %v", r)
		}
	}
	// The token of a known agent still works from the same address.
	if code, m := e.call("POST", "/v1/decide", "a1-tok", `{"tool":{"name":"read_file"}}`); code != 200 {
		t.Fatalf("a known token after the spray: %d %v", code, m)
	}
}
