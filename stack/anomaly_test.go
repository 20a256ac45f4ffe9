package stack

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentgov/agentgov/anomaly"
	"github.com/agentgov/agentgov/audit"
	"github.com/agentgov/agentgov/govern"
)

// testClock is a clock the test moves.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *testClock) Set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

const anomalyPolicyYAML = `version: agentgov/v1
name: watchful
default: allow
rules:
  - id: new-tools
    when: anomaly.new_tool
    effect: require_approval
    reason: a tool this agent has never used
`

// decideTool asks /v1/decide as agent a1 and returns the decision.
func decideTool(t *testing.T, url, tool string) map[string]any {
	t.Helper()
	req, _ := http.NewRequest("POST", url+"/v1/decide", strings.NewReader(`{"tool":{"name":"`+tool+`"}}`))
	req.Header.Set("Authorization", "Bearer agent-tok")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var d map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&d); err != nil || resp.StatusCode != 200 {
		t.Fatalf("decide %s: %d %v", tool, resp.StatusCode, err)
	}
	return d
}

// The server as `agentgov serve` runs it, on a clock the test moves: an
// agent's baseline, then a policy rule on anomaly.new_tool asking for
// approval (with the flag response auditing it and counting it in
// /metrics), then a burst whose isolate response engages the kill switch,
// audited, and lowers the agent's trust.
func TestAnomalyThroughTheServer(t *testing.T) {
	cfg := testConfig(t)
	os.WriteFile(filepath.Join(cfg.Policies, "open.yaml"), []byte(anomalyPolicyYAML), 0o644)
	cfg.MCP.Servers = nil
	cfg.Anomaly = anomaly.Config{WarmupIntervals: 3, RateZ: 4, Responses: []anomaly.Response{
		{When: "new_tool", Action: anomaly.ActFlag}, {When: "rate_z", Action: anomaly.ActIsolate},
	}}
	cfg.Fill()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	clk := &testClock{now: start}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	st, err := Open(context.Background(), cfg, Options{Clock: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	front, err := st.HTTP(ln, HTTPOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- st.Run(ctx, front) }()
	t.Cleanup(func() { stop(); <-done })
	url := "http://" + ln.Addr().String()
	for i := 0; ; i++ {
		if resp, err := http.Get(url + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if i == 500 {
			t.Fatal("the stack never became ready")
		}
		time.Sleep(10 * time.Millisecond)
	}

	// Three minutes of five calls each: the warm-up.
	for m := range 3 {
		for i := range 5 {
			clk.Set(start.Add(time.Duration(m)*time.Minute + time.Duration(i)*time.Second))
			if d := decideTool(t, url, "read_file"); d["effect"] != "allow" {
				t.Fatalf("baseline: %v", d)
			}
		}
	}
	clk.Set(start.Add(3 * time.Minute))
	d := decideTool(t, url, "send_mail")
	if d["effect"] != "require_approval" || d["flagged"] != nil && d["flagged"] != false || !strings.Contains(strings.Join(strs(d["rules"]), ","), "new-tools") || d["approval"] == nil {
		t.Fatalf("first use of a tool after the warm-up: %v", d)
	}
	entries, err := st.Audit.Entries(context.Background(), -1, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if e := lastOf(entries, "anomaly"); e == "" || !strings.Contains(e, `"anomaly":"new_tool"`) || !strings.Contains(e, `"tool":"send_mail"`) {
		t.Fatalf("anomaly entry %q", e)
	}
	if m := scrape(t, url); !strings.Contains(m, `agentgov_anomalies_total{kind="new_tool"} 1`) || !strings.Contains(m, "agentgov_anomaly_agents 1") {
		t.Fatalf("metrics lack the anomaly counters:\n%s", grepLines(m, "anomal"))
	}

	// The agent may read its own baseline, not another's.
	var b anomaly.Baseline
	if code := getJSON(t, url+"/v1/agents/a1/anomaly", &b); code != 200 || !b.Warm || b.Mean != 5 || b.Count != 1 || b.ToolsAllowed != 1 || b.ToolsRemembered != 2 {
		t.Fatalf("GET /v1/agents/a1/anomaly: %d %+v", code, b)
	}
	if code := getJSON(t, url+"/v1/agents/a2/anomaly", nil); code != 404 {
		t.Fatalf("another agent's baseline: %d", code)
	}

	// A burst in the fourth minute: past 5 + 4·√5 calls the agent is
	// isolated.
	var isolated map[string]any
	for i := range 30 {
		clk.Set(start.Add(3*time.Minute + time.Duration(i+1)*time.Second))
		if d := decideTool(t, url, "read_file"); d["effect"] == "deny" {
			isolated = d
			if i+1 != 13 { // send_mail counted too: 1 + 13 = 14 calls
				t.Fatalf("isolated at burst call %d: %v", i+1, d)
			}
			break
		}
	}
	if isolated == nil || !strings.Contains(strs(isolated["reasons"])[0], "anomaly rate_z") {
		t.Fatalf("the burst was not isolated: %v", isolated)
	}
	if d := decideTool(t, url, "read_file"); d["effect"] != "deny" || !strings.Contains(strs(d["reasons"])[0], "kill switch") {
		t.Fatalf("after isolation: %v", d)
	}
	entries, err = st.Audit.Entries(context.Background(), -1, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if k := lastOf(entries, "kill"); !strings.Contains(k, `"by":"anomaly"`) || !strings.Contains(k, `"target":"a1"`) || !strings.Contains(k, isolated["id"].(string)) {
		t.Fatalf("kill entry %q", k)
	}
	if err := st.Trust.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if score, _ := st.Trust.Score("a1"); score >= 500-10-2+1 {
		t.Fatalf("trust score %d, want lowered by the new tool and the burst", score)
	}
}

// getJSON GETs url as agent a1 and decodes the answer into v.
func getJSON(t *testing.T, url string, v any) int {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", "Bearer agent-tok")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if v != nil && resp.StatusCode == 200 {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatal(err)
		}
	}
	return resp.StatusCode
}

func strs(v any) []string {
	var out []string
	l, _ := v.([]any)
	for _, x := range l {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

func lastOf(es []audit.Entry, kind string) string {
	for i := len(es) - 1; i >= 0; i-- {
		if es[i].Kind == kind {
			return string(es[i].Record)
		}
	}
	return ""
}

func scrape(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func grepLines(s, word string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, word) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// An anomaly notice is an alert of kind anomaly, one per kind, agent and
// (for a new tool) tool within the dedupe window.
func TestAnomalyNoticeIsAnAlert(t *testing.T) {
	a, ok := alertOf(govern.Notice{Kind: "anomaly", Agent: "a1", Message: "anomaly new_tool: a1 has never been allowed to use tool fs/rm",
		Fields: map[string]any{"anomaly": "new_tool", "server": "fs", "tool": "rm"}})
	if !ok || a.Kind != "anomaly" || a.Severity != "medium" || a.DedupeKey != "anomaly:new_tool a1 fs/rm" || a.Details["agent"] != "a1" || !strings.Contains(a.Summary, "fs/rm") {
		t.Fatalf("alert %+v, %v", a, ok)
	}
	a, _ = alertOf(govern.Notice{Kind: "anomaly", Agent: "a1", Fields: map[string]any{"anomaly": "rate_z", "rate_z": 7.5}})
	if a.DedupeKey != "anomaly:rate_z a1" {
		t.Fatalf("alert %+v", a)
	}
}
