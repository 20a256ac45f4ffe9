package console_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/chaos"
	"github.com/agentgov/agentgov/config"
	"github.com/agentgov/agentgov/stack"
	"github.com/agentgov/agentgov/stack/stacktest"
)

func hash(tok string) string { s := sha256.Sum256([]byte(tok)); return hex.EncodeToString(s[:]) }

const (
	adminTok    = "console-admin"
	approverTok = "console-fin"
	agentTok    = "console-agent"
	mcpAgentTok = "console-mcp-agent"
)

// serve runs a whole server (the stack, as `agentgov serve` builds it) on
// a loopback port and returns its URL.
func serve(t *testing.T) string {
	t.Helper()
	return serveWith(t, nil)
}

// serveWith is serve with the configuration changed by tweak first.
func serveWith(t *testing.T, tweak func(*config.Config)) string {
	t.Helper()
	cfg := &config.Config{Data: t.TempDir(), Tokens: []config.Token{
		{Name: "ops", Role: config.Admin, SHA256: hash(adminTok)},
		{Name: "fin", Role: config.Approver, Groups: []string{"finance"}, SHA256: hash(approverTok)},
		{Name: "a1", Role: config.AgentRole, Agent: "a1", Principal: action.Principal{User: "alice", Team: "t", Org: "acme"}, SHA256: hash(agentTok)},
	}}
	cfg.Audit.CheckpointInterval = 50 * time.Millisecond
	if tweak != nil {
		tweak(cfg)
	}
	return stacktest.Serve(t, cfg, stack.Options{})
}

// browser is a cookie-keeping client that does not follow redirects, so
// each answer can be read as it is.
type browser struct {
	t    *testing.T
	base string
	hc   *http.Client
}

func newBrowser(t *testing.T, base string) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, base: base, hc: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (b *browser) do(method, path string, form url.Values, header ...string) (*http.Response, string) {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, b.base+path, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := b.hc.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer res.Body.Close()
	out, _ := io.ReadAll(res.Body)
	return res, string(out)
}

func (b *browser) signIn(token string) *http.Response {
	res, _ := b.do("POST", "/ui/login", url.Values{"token": {token}}, "Origin", b.base, "Sec-Fetch-Site", "same-origin")
	return res
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func (b *browser) csrf(path string) string {
	b.t.Helper()
	_, page := b.do("GET", path, nil)
	m := csrfField.FindStringSubmatch(page)
	if m == nil {
		b.t.Fatalf("no CSRF token on %s", path)
	}
	return m[1]
}

func api(t *testing.T, base, method, path, token, body string) map[string]any {
	t.Helper()
	req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var m map[string]any
	json.NewDecoder(res.Body).Decode(&m)
	return m
}

func TestOnlyApproversAndAdminsSignIn(t *testing.T) {
	base := serve(t)
	for tok, want := range map[string]int{agentTok: 403, "no-such-token": 401, "": 400} {
		b := newBrowser(t, base)
		if res := b.signIn(tok); res.StatusCode != want {
			t.Errorf("sign in with %q: %d, want %d", tok, res.StatusCode, want)
		}
		if res, _ := b.do("GET", "/ui/approvals", nil); res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(res.Header.Get("Location"), "/ui/login") {
			t.Errorf("after a refused sign-in with %q the queue answers %d %s", tok, res.StatusCode, res.Header.Get("Location"))
		}
	}
	b := newBrowser(t, base)
	res := b.signIn(approverTok)
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/ui/approvals" {
		t.Fatalf("approver sign-in: %d %s", res.StatusCode, res.Header.Get("Location"))
	}
	c := res.Cookies()[0]
	if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || strings.Contains(c.Value, approverTok) {
		t.Fatalf("session cookie %+v", c)
	}
	if res, _ := b.do("GET", "/ui/agents", nil); res.StatusCode != http.StatusForbidden {
		t.Fatalf("an approver opens an admin page: %d", res.StatusCode)
	}
}

// A request from another site, or without the session's CSRF token, never
// changes state.
func TestNoStateChangeFromAnotherOriginOrWithoutTheFormToken(t *testing.T) {
	base := serve(t)
	d := api(t, base, "POST", "/v1/decide", agentTok, `{"tool":{"name":"send_money"},"args":{"amount":5000}}`)
	ticket := d["approval"].(map[string]any)["id"].(string)
	b := newBrowser(t, base)
	b.signIn(approverTok)
	token := b.csrf("/ui/approvals")
	approve := "/ui/approvals/" + ticket + "/approve"
	for name, h := range map[string][]string{
		"another site":     {"Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site"},
		"an opaque origin": {"Origin", "null"},
		"a sibling site":   {"Sec-Fetch-Site", "same-site"},
	} {
		if res, _ := b.do("POST", approve, url.Values{"csrf": {token}, "note": {"x"}}, h...); res.StatusCode != http.StatusForbidden {
			t.Errorf("approve from %s: %d", name, res.StatusCode)
		}
	}
	for name, form := range map[string]url.Values{"no token": {"note": {"x"}}, "a wrong token": {"csrf": {"forged"}, "note": {"x"}}} {
		if res, _ := b.do("POST", approve, form); res.StatusCode != http.StatusForbidden {
			t.Errorf("approve with %s: %d", name, res.StatusCode)
		}
	}
	if st := api(t, base, "GET", "/v1/approvals/"+ticket, approverTok, "")["status"]; st != "pending" {
		t.Fatalf("the ticket after refused requests: %v", st)
	}
	if res, _ := b.do("POST", approve, url.Values{"csrf": {token}, "note": {"checked"}}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("a same-origin approve with the token: %d", res.StatusCode)
	}
	got := api(t, base, "GET", "/v1/approvals/"+ticket, approverTok, "")
	if got["status"] != "approved" || got["decided_by"] != "fin" || got["note"] != "checked" {
		t.Fatalf("the ticket approved in the console: %v", got)
	}
}

func TestSignOutEndsTheSession(t *testing.T) {
	base := serve(t)
	b := newBrowser(t, base)
	b.signIn(adminTok)
	token := b.csrf("/ui/approvals")
	if res, _ := b.do("POST", "/ui/logout", url.Values{"csrf": {token}}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign out: %d", res.StatusCode)
	}
	if res, _ := b.do("GET", "/ui/approvals", nil); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("the queue after sign-out: %d", res.StatusCode)
	}
}

func TestPagesAreLockedDown(t *testing.T) {
	base := serve(t)
	b := newBrowser(t, base)
	b.signIn(adminTok)
	api(t, base, "POST", "/v1/decide", agentTok, `{"tool":{"name":"read_file"},"args":{"path":"/tmp/x"}}`)
	for _, p := range []string{"/ui/login", "/ui/approvals", "/ui/decisions", "/ui/agents", "/ui/budgets", "/ui/reliability", "/ui/mcp", "/ui/audit", "/ui/audit/1"} {
		res, page := b.do("GET", p, nil)
		if p != "/ui/login" && res.StatusCode != 200 {
			t.Errorf("%s: %d\n%s", p, res.StatusCode, page)
			continue
		}
		csp := res.Header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "unsafe") {
			t.Errorf("%s: CSP %q", p, csp)
		}
		if m := regexp.MustCompile(`<script>|\sstyle="|\son[a-z]+="|(src|href|action)="https?://`).FindString(page); m != "" {
			t.Errorf("%s holds %q: an inline script, an inline style, a handler or a link to another origin", p, m)
		}
	}
	// Assets are named by their content and cached for good.
	_, page := b.do("GET", "/ui/approvals", nil)
	js := regexp.MustCompile(`/ui/static/app\.[0-9a-f]{12}\.js`).FindString(page)
	if res, _ := b.do("GET", js, nil); js == "" || res.StatusCode != 200 || !strings.Contains(res.Header.Get("Cache-Control"), "immutable") {
		t.Fatalf("script %q: %v", js, res.Header)
	}
}

// In a real browser: Debian's chromium driven by playwright-core.
func TestConsoleInABrowser(t *testing.T) {
	if _, err := os.Stat("/usr/bin/chromium"); err != nil {
		t.Skip("chromium is not installed (apt-get install chromium)")
	}
	if _, err := os.Stat("testdata/node/node_modules/playwright-core"); err != nil {
		t.Skip("npm packages not installed; run: npm ci --prefix console/testdata/node")
	}
	// An SLO that burns, and an MCP server whose tool drifted after it
	// was pinned, for the reliability and MCP pages. The MCP agent is a2:
	// the page kills a1 on the way.
	upstream, move := driftingUpstream(t)
	base := serveWith(t, func(c *config.Config) {
		withSLO(c)
		withMCP(t, upstream)(c)
		c.Chaos = []chaos.Experiment{{ID: "gpt-down", Match: chaos.Match{Models: []string{"gpt-*"}}, Fault: "error", Probability: 1}}
		c.Tokens = append(c.Tokens, config.Token{Name: "a2", Role: config.AgentRole, Agent: "a2", SHA256: hash(mcpAgentTok)})
	})
	for i := range 8 {
		d := api(t, base, "POST", "/v1/decide", agentTok, `{"tool":{"name":"search"},"args":{"q":"x"}}`)
		status := "ok"
		if i%4 == 0 {
			status = "error"
		}
		api(t, base, "POST", "/v1/decisions/"+d["id"].(string)+"/outcome", agentTok, `{"status":"`+status+`"}`)
	}
	move()
	cs := mcpSessionAs(t, base, mcpAgentTok)
	if refused, text := lookup(t, cs, "before"); !refused || !strings.Contains(text, "quarantined") {
		t.Fatalf("the drifted tool before the re-pin: refused %v, %s", refused, text)
	}
	shots := t.TempDir()
	if os.Getenv("AGENTGOV_UPDATE_SCREENSHOTS") != "" {
		shots, _ = filepath.Abs("../docs/console")
	}
	cmd := exec.Command("node", "browser.mjs")
	cmd.Dir = "testdata/node"
	cmd.Env = append(os.Environ(), "URL="+base, "ADMIN="+adminTok, "APPROVER="+approverTok, "AGENT="+agentTok, "AGENT_ID=a1", "SHOTS="+shots)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	t.Logf("%s", out)
	// The page switched the chaos experiment off, as the admin.
	if e := api(t, base, "GET", "/v1/chaos", adminTok, "")["experiments"].([]any)[0].(map[string]any); e["enabled"] != false {
		t.Errorf("the experiment switched off in the browser: %v", e)
	}
	// The page re-pinned the tool: the agent's next call goes through.
	if refused, text := lookup(t, cs, "after"); refused || text != "found after" {
		t.Fatalf("the next call after the re-pin in the browser: refused %v, %s", refused, text)
	}
}
