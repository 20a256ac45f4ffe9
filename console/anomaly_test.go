package console_test

import (
	"regexp"
	"strings"
	"testing"

	"github.com/agentgov/agentgov/config"
)

// agentRow is the row of agent id in the agents table.
func agentRow(page, id string) string {
	return regexp.MustCompile(`(?s)<tr><th scope="row"><a href="/ui/decisions\?agent=` + regexp.QuoteMeta(id) + `">.*?</tr>`).FindString(page)
}

// The agents page shows what the anomaly detector remembers of each
// agent: warm or not, its rate z-score, entropy and band, and the tools
// it was allowed, as GET /v1/agents/{id}/anomaly answers.
func TestAgentsPageShowsAnomalyBaselines(t *testing.T) {
	base := serve(t)
	for _, tool := range []string{"search", "read", "search"} {
		api(t, base, "POST", "/v1/decide", agentTok, `{"tool":{"name":"`+tool+`"},"args":{"q":"x"}}`)
	}
	if reg := api(t, base, "POST", "/v1/agents", adminTok, `{"id":"idle-3","type":"assistant","keys":[{"kid":"k1","public_key":"`+pubKey(t)+`"}]}`); reg["id"] != "idle-3" {
		t.Fatalf("register: %v", reg)
	}
	bl := api(t, base, "GET", "/v1/agents/a1/anomaly", adminTok, "")
	b := newBrowser(t, base)
	b.signIn(adminTok)
	res, page := b.do("GET", "/ui/agents", nil)
	if res.StatusCode != 200 {
		t.Fatalf("agents: %d", res.StatusCode)
	}
	row := agentRow(page, "a1")
	cell := regexp.MustCompile(`(?s)<td class="anomaly">.*?</td>`).FindString(row)
	if bl["warm"] != false || bl["tools_allowed"] != 2.0 {
		t.Fatalf("the baseline the page reads: %v", bl)
	}
	for _, want := range []string{"<strong>warming up</strong>", "rate z <strong>0.00</strong>", "3 calls now", "entropy <strong>", "no band yet (", "2 tools allowed"} {
		if !strings.Contains(cell, want) {
			t.Errorf("the anomaly of a1 lacks %q:\n%s", want, row)
		}
	}
	// A registered agent that never acted has no baseline yet.
	if idle := agentRow(page, "idle-3"); !strings.Contains(idle, `<td class="anomaly">no baseline yet</td>`) {
		t.Errorf("the row of an agent that never acted:\n%s", idle)
	}
	if strings.Contains(page, "Anomaly detection: not enabled") {
		t.Error("the page says detection is off while it is on")
	}
}

// A server with anomaly detection off says so, per agent and once above
// the table.
func TestAgentsPageSaysAnomalyDetectionIsOff(t *testing.T) {
	base := serveWith(t, func(c *config.Config) { c.Anomaly.Disabled = true })
	api(t, base, "POST", "/v1/decide", agentTok, `{"tool":{"name":"search"},"args":{"q":"x"}}`)
	b := newBrowser(t, base)
	b.signIn(adminTok)
	_, page := b.do("GET", "/ui/agents", nil)
	if !strings.Contains(page, "Anomaly detection: not enabled on this server.") {
		t.Error("the page does not say detection is off")
	}
	if row := agentRow(page, "a1"); !strings.Contains(row, `<td class="anomaly">not enabled</td>`) {
		t.Errorf("the row of a1:\n%s", row)
	}
}
