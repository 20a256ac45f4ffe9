package console_test

import (
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/agentgov/agentgov/config"
	"github.com/agentgov/agentgov/sre"
)

func withSLO(c *config.Config) {
	c.SLOs = []sre.SLO{{ID: "tools-ok", SLI: "success", Target: 0.99}}
}

// The reliability page draws each SLO's burn rate per window against the
// alert thresholds, as server-side SVG, and says in text what fires.
func TestReliabilityPageDrawsBurnCharts(t *testing.T) {
	base := serveWith(t, withSLO)
	for i := range 10 {
		d := api(t, base, "POST", "/v1/decide", agentTok, `{"tool":{"name":"search"},"args":{"q":"x"}}`)
		status := "ok"
		if i%2 == 0 {
			status = "error"
		}
		api(t, base, "POST", "/v1/decisions/"+d["id"].(string)+"/outcome", agentTok, `{"status":"`+status+`"}`)
	}
	b := newBrowser(t, base)
	b.signIn(adminTok)
	res, page := b.do("GET", "/ui/reliability", nil)
	if res.StatusCode != 200 {
		t.Fatalf("reliability: %d", res.StatusCode)
	}
	chart := regexp.MustCompile(`(?s)<svg class="burn-chart".*?</svg>`).FindString(page)
	if chart == "" {
		t.Fatalf("no burn chart:\n%s", page)
	}
	// Half the calls failed under a 99% target: every window burns at 50×,
	// past every threshold, and says so.
	if n := strings.Count(chart, `<rect class="bar bar-over"`); n != 5 {
		t.Errorf("%d bars over a threshold, want the 5 windows:\n%s", n, chart)
	}
	for _, want := range []string{">50×</text>", ">14.4× page</text>", ">6× page</text>", ">1× ticket</text>", ">5m</text>", ">3d</text>", `aria-label="Burn rate per window: 5m 50×, 30m 50×, 1h 50×, 6h 50×, 3d 50×"`} {
		if !strings.Contains(chart, want) {
			t.Errorf("the chart lacks %q:\n%s", want, chart)
		}
	}
	for _, want := range []string{"Alert firing:", "exhausted", "5 good of 10"} {
		if !strings.Contains(page, want) {
			t.Errorf("the page does not say %q", want)
		}
	}
}

// An admin closes an incident from the page, with a note; a request from
// another origin, or without the form's token, closes nothing.
func TestIncidentsAreClosedByAnAdminWithTheFormToken(t *testing.T) {
	base := serveWith(t, withSLO)
	api(t, base, "POST", "/v1/kill", adminTok, `{"scope":"agent","target":"a1","reason":"runaway"}`)
	incs := api(t, base, "GET", "/v1/incidents", adminTok, "")["incidents"].([]any)
	if len(incs) == 0 {
		t.Fatal("a kill switch opened no incident")
	}
	id := incs[0].(map[string]any)["id"].(string)
	closePath := "/ui/incidents/" + id + "/close"

	approver := newBrowser(t, base)
	approver.signIn(approverTok)
	if res, _ := approver.do("POST", closePath, url.Values{"csrf": {approver.csrf("/ui/approvals")}, "note": {"x"}}); res.StatusCode != 403 {
		t.Errorf("an approver closes an incident: %d", res.StatusCode)
	}
	// An approver reads the incident, as the API lets it, with no form to
	// close it.
	if res, page := approver.do("GET", "/ui/reliability", nil); res.StatusCode != 200 || !strings.Contains(page, `id="inc-`+id+`"`) || strings.Contains(page, `action="`+closePath+`"`) {
		t.Errorf("an approver's reliability page: %d; incident shown %v, close form shown %v", res.StatusCode,
			strings.Contains(page, `id="inc-`+id+`"`), strings.Contains(page, `action="`+closePath+`"`))
	}
	b := newBrowser(t, base)
	b.signIn(adminTok)
	token := b.csrf("/ui/reliability")
	if res, page := b.do("GET", "/ui/reliability", nil); res.StatusCode != 200 || !strings.Contains(page, `action="`+closePath+`"`) {
		t.Fatalf("the open incident has no close form:\n%s", page)
	}
	for name, h := range map[string][]string{
		"another site":     {"Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site"},
		"an opaque origin": {"Origin", "null"},
	} {
		if res, _ := b.do("POST", closePath, url.Values{"csrf": {token}, "note": {"x"}}, h...); res.StatusCode != 403 {
			t.Errorf("close from %s: %d", name, res.StatusCode)
		}
	}
	if res, _ := b.do("POST", closePath, url.Values{"note": {"x"}}); res.StatusCode != 403 {
		t.Errorf("close without the form token: %d", res.StatusCode)
	}
	if st := api(t, base, "GET", "/v1/incidents/"+id, adminTok, "")["status"]; st != "open" {
		t.Fatalf("the incident after refused requests: %v", st)
	}
	if res, _ := b.do("POST", closePath, url.Values{"csrf": {token}, "note": {"loop fixed"}}); res.StatusCode != 303 {
		t.Fatalf("close: %d", res.StatusCode)
	}
	inc := api(t, base, "GET", "/v1/incidents/"+id, adminTok, "")
	if inc["status"] != "closed" || inc["closed_by"] != "ops" || inc["note"] != "loop fixed" {
		t.Fatalf("the incident closed from the console: %v", inc)
	}
	if _, page := b.do("GET", "/ui/reliability?done=x", nil); !strings.Contains(page, "by <strong>ops</strong>: loop fixed") {
		t.Errorf("the page does not show who closed the incident")
	}
}
