package main

import (
	"fmt"
	"testing"
)

// Spend is kept in the data directory: what agents spent before a restart
// is still reported after it, budgets or none.
func TestUsageSurvivesARestart(t *testing.T) {
	in := startServer(t)
	for i, tok := range []string{"a1-tok", "a1-tok", "a2-tok"} {
		code, d := in.call("POST", "/v1/decide", tok, `{"tool":{"name":"read_file"},"args":{"path":"/tmp/x"}}`)
		if code != 200 || d["effect"] != "allow" {
			t.Fatalf("decide %d: %d %v", i, code, d)
		}
		body := fmt.Sprintf(`{"status":"ok","tokens":%d,"cost_usd":0.5}`, 100*(i+1))
		if code, m := in.call("POST", "/v1/decisions/"+d["id"].(string)+"/outcome", tok, body); code != 200 {
			t.Fatalf("outcome %d: %d %v", i, code, m)
		}
	}
	before := usageLine(t, in)
	if before != "1.5 600 3 | a1 1 300 2 | a2 0.5 300 1" {
		t.Fatalf("before the restart: %s", before)
	}
	in.stop()
	in.start()
	if after := usageLine(t, in); after != before {
		t.Fatalf("after the restart: %s, before: %s", after, before)
	}
}

// usageLine is all-time spend, total and by agent, as one line.
func usageLine(t *testing.T, in *instance) string {
	t.Helper()
	code, m := in.call("GET", "/v1/usage?period=all&group_by=agent", "admin-tok", "")
	if code != 200 {
		t.Fatalf("usage: %d %v", code, m)
	}
	sp := m["spend"].(map[string]any)
	tot := sp["total"].(map[string]any)
	line := fmt.Sprint(tot["cost_usd"], " ", tot["tokens"], " ", tot["calls"])
	for _, g := range sp["groups"].([]any) {
		g := g.(map[string]any)
		s := g["spent"].(map[string]any)
		line += fmt.Sprint(" | ", g["agent"], " ", s["cost_usd"], " ", s["tokens"], " ", s["calls"])
	}
	return line
}
