package console_test

import (
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/agentgov/agentgov/chaos"
	"github.com/agentgov/agentgov/config"
)

var off = false

func withChaos(c *config.Config) {
	c.Chaos = []chaos.Experiment{
		{ID: "slow-search", Match: chaos.Match{Tools: []string{"search"}}, Fault: "latency", Probability: 0.25, LatencyMS: 200},
		{ID: "gpt-down", Match: chaos.Match{Models: []string{"gpt-*"}}, Fault: "error", Probability: 1, Error: &chaos.ErrorSpec{Message: "overloaded", Code: 503}},
		{ID: "last-year", Fault: "drop", Probability: 0.5, Match: chaos.Match{Servers: []string{"docs"}},
			From: &chaos.Time{Time: time.Date(2025, 1, 1, 9, 0, 0, 0, time.UTC)}, Until: &chaos.Time{Time: time.Date(2025, 1, 1, 17, 0, 0, 0, time.UTC)}},
		{ID: "parked", Fault: "drop", Probability: 1, Match: chaos.Match{Tools: []string{"docs/*"}}, Enabled: &off},
	}
}

// chaosRow is the row of experiment id in the page's chaos table.
func chaosRow(page, id string) string {
	return regexp.MustCompile(`(?s)<tr id="chaos-` + regexp.QuoteMeta(id) + `">.*?</tr>`).FindString(page)
}

// The reliability page lists the chaos experiments, their state in words;
// an admin switches one off through a confirmation step with a reason,
// and the switch is audited with the admin's token name. Another origin,
// a missing form token or an approver switch nothing.
func TestChaosExperimentsAreSwitchedByAnAdminAfterConfirmation(t *testing.T) {
	base := serveWith(t, withChaos)
	b := newBrowser(t, base)
	b.signIn(adminTok)
	res, page := b.do("GET", "/ui/reliability", nil)
	if res.StatusCode != 200 {
		t.Fatalf("reliability: %d", res.StatusCode)
	}
	slow := chaosRow(page, "slow-search")
	for _, want := range []string{">slow-search</th>", "latency, after 200 ms", "25%", "tools search", "always", "on, injecting", "<td>0</td>", `name="to" value="off"`, "Disable slow-search…</button>"} {
		if !strings.Contains(slow, want) {
			t.Errorf("the row of slow-search lacks %q:\n%s", want, slow)
		}
	}
	if down := chaosRow(page, "gpt-down"); !strings.Contains(down, "error (503 overloaded)") || !strings.Contains(down, "models gpt-*") || !strings.Contains(down, "100%") {
		t.Errorf("the row of gpt-down:\n%s", down)
	}
	// Outside its window, or switched off in the configuration: said in
	// words, with the button that changes it.
	if past := chaosRow(page, "last-year"); !strings.Contains(past, "from 2025-01-01 09:00:00Z until 2025-01-01 17:00:00Z") || !strings.Contains(past, "on, outside its window") || !strings.Contains(past, "servers docs") {
		t.Errorf("the row of last-year:\n%s", past)
	}
	if parked := chaosRow(page, "parked"); !strings.Contains(parked, `<strong class="chaos-state">off</strong>`) || !strings.Contains(parked, "Enable parked…</button>") {
		t.Errorf("the row of parked:\n%s", parked)
	}
	token := csrfField.FindStringSubmatch(page)[1]
	offForm := url.Values{"csrf": {token}, "to": {"off"}}

	// The first step only asks.
	res, confirm := b.do("POST", "/ui/chaos/slow-search/switch", offForm)
	if res.StatusCode != 200 || !strings.Contains(confirm, "Confirm: switch slow-search off") || !strings.Contains(confirm, `<label for="reason">Reason</label>`) {
		t.Fatalf("the confirmation: %d\n%s", res.StatusCode, confirm)
	}
	enabled := func() bool {
		for _, e := range api(t, base, "GET", "/v1/chaos", adminTok, "")["experiments"].([]any) {
			if e := e.(map[string]any); e["id"] == "slow-search" {
				return e["enabled"].(bool)
			}
		}
		t.Fatal("slow-search is not listed")
		return false
	}
	if !enabled() {
		t.Fatal("the experiment was switched before the confirmation")
	}

	// No reason, another origin, no token, an approver: nothing changes.
	if res, _ := b.do("POST", "/ui/chaos/slow-search/switch/confirm", offForm); res.StatusCode != 400 {
		t.Errorf("confirm without a reason: %d", res.StatusCode)
	}
	withReason := url.Values{"csrf": {token}, "to": {"off"}, "reason": {"game day over"}}
	for name, h := range map[string][]string{
		"another site":     {"Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site"},
		"an opaque origin": {"Origin", "null"},
	} {
		if res, _ := b.do("POST", "/ui/chaos/slow-search/switch/confirm", withReason, h...); res.StatusCode != 403 {
			t.Errorf("confirm from %s: %d", name, res.StatusCode)
		}
	}
	if res, _ := b.do("POST", "/ui/chaos/slow-search/switch/confirm", url.Values{"to": {"off"}, "reason": {"x"}}); res.StatusCode != 403 {
		t.Errorf("confirm without the form token: %d", res.StatusCode)
	}
	approver := newBrowser(t, base)
	approver.signIn(approverTok)
	approverForm := url.Values{"csrf": {approver.csrf("/ui/approvals")}, "to": {"off"}, "reason": {"x"}}
	for _, p := range []string{"/ui/chaos/slow-search/switch", "/ui/chaos/slow-search/switch/confirm"} {
		if res, _ := approver.do("POST", p, approverForm); res.StatusCode != 403 {
			t.Errorf("an approver posts to %s: %d", p, res.StatusCode)
		}
	}
	// An approver reads the reliability page, as the API lets it, but
	// the chaos experiments (admin-only in the API) are not on it.
	if res, page := approver.do("GET", "/ui/reliability", nil); res.StatusCode != 200 || strings.Contains(page, "/ui/chaos/") || strings.Contains(page, "slow-search") {
		t.Errorf("an approver's reliability page: %d, chaos shown: %v", res.StatusCode, strings.Contains(page, "slow-search"))
	}
	if !enabled() {
		t.Fatal("a refused request switched the experiment off")
	}
	// A form naming no direction, or an unknown experiment, is refused.
	if res, _ := b.do("POST", "/ui/chaos/slow-search/switch", url.Values{"csrf": {token}, "to": {"sideways"}}); res.StatusCode != 400 {
		t.Errorf("a switch to neither on nor off: %d", res.StatusCode)
	}
	if res, _ := b.do("POST", "/ui/chaos/nope/switch/confirm", url.Values{"csrf": {token}, "to": {"off"}, "reason": {"x"}}); res.StatusCode != 409 {
		t.Errorf("switching an unknown experiment: %d", res.StatusCode)
	}

	res, _ = b.do("POST", "/ui/chaos/slow-search/switch/confirm", withReason)
	if res.StatusCode != 303 || !strings.Contains(res.Header.Get("Location"), "switched+off") {
		t.Fatalf("confirm: %d %s", res.StatusCode, res.Header.Get("Location"))
	}
	if enabled() {
		t.Fatal("the confirmed switch left the experiment on")
	}
	_, page = b.do("GET", "/ui/reliability", nil)
	if slow := chaosRow(page, "slow-search"); !strings.Contains(slow, `<strong class="chaos-state">off</strong>`) || !strings.Contains(slow, "Enable slow-search…</button>") {
		t.Errorf("the row after the switch:\n%s", slow)
	}
	if down := chaosRow(page, "gpt-down"); !strings.Contains(down, "on, injecting") {
		t.Errorf("the other experiment changed:\n%s", down)
	}

	found := false
	for _, e := range api(t, base, "GET", "/v1/audit?limit=1000", adminTok, "")["entries"].([]any) {
		e := e.(map[string]any)
		if e["kind"] != "chaos.switch" {
			continue
		}
		rec := e["record"].(map[string]any)
		if rec["experiment"] != "slow-search" || rec["by"] != "ops" || rec["reason"] != "game day over" || rec["enabled"] != false {
			t.Errorf("the switch's audit record: %v", rec)
		}
		found = true
	}
	if !found {
		t.Error("the switch is not in the audit log")
	}
}

// A server without chaos experiments says so.
func TestChaosNotConfigured(t *testing.T) {
	b := newBrowser(t, serve(t))
	b.signIn(adminTok)
	_, page := b.do("GET", "/ui/reliability", nil)
	section := regexp.MustCompile(`(?s)<section aria-labelledby="h-chaos">.*?</section>`).FindString(page)
	if !strings.Contains(section, "Not configured") || strings.Contains(section, "<table") {
		t.Errorf("the chaos section without experiments:\n%s", section)
	}
}
