package server_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"
)

// routeRoles is the /v1 route table of docs/api.md: who may call each
// route. "agent" routes that name an agent or its objects name a1's own.
type routeRoles struct {
	method, path, body string
	roles              []string // admin, approver, agent; "none" for anyone
}

func v1Routes(decision string) []routeRoles {
	all := []string{"admin", "approver", "agent"}
	adm := []string{"admin"}
	appr := []string{"admin", "approver"}
	agt := []string{"admin", "agent"}
	return []routeRoles{
		{"POST", "/v1/decide", `{"agent":{"id":"a1"},"tool":{"name":"read_file"}}`, agt},
		{"GET", "/v1/decisions/" + decision, "", agt},
		{"POST", "/v1/decisions/" + decision + "/outcome", `{"status":"ok"}`, agt},
		{"GET", "/v1/approvals", "", appr},
		{"GET", "/v1/approvals/apr_none", "", all},
		{"POST", "/v1/approvals/apr_none/approve", "", appr},
		{"POST", "/v1/approvals/apr_none/deny", "", appr},
		{"POST", "/v1/sessions", `{"id":"s-roles","agent":"a1"}`, agt},
		{"GET", "/v1/sessions/s-none?agent=a1", "", agt},
		{"POST", "/v1/sessions/s-none/pause?agent=a1", "", agt},
		{"POST", "/v1/sessions/s-none/resume?agent=a1", "", agt},
		{"POST", "/v1/sessions/s-none/close?agent=a1", "", agt},
		{"GET", "/v1/sessions/s-none/reward?agent=a1", "", adm},
		{"POST", "/v1/kill", `{}`, adm},
		{"GET", "/v1/kill", "", adm},
		{"DELETE", "/v1/kill/kill_none", "", adm},
		{"GET", "/v1/audit", "", adm},
		{"GET", "/v1/audit/checkpoint", "", adm},
		{"GET", "/v1/audit/proof/0", "", adm},
		{"GET", "/v1/audit/consistency?from=1&to=1", "", adm},
		{"GET", "/v1/policies", "", adm},
		{"POST", "/v1/policies/reload", "", adm},
		{"POST", "/v1/budgets", `{}`, adm},
		{"GET", "/v1/budgets", "", adm},
		{"GET", "/v1/budgets/b-none", "", adm},
		{"PUT", "/v1/budgets/b-none", `{}`, adm},
		{"DELETE", "/v1/budgets/b-none", "", adm},
		{"GET", "/v1/usage", "", adm},
		{"GET", "/v1/agents/a1/trust", "", all},
		{"GET", "/v1/agents/a1/anomaly", "", all},
		{"POST", "/v1/agents/a1/elevate", `{}`, agt},
		{"POST", "/v1/agents", `{}`, adm},
		{"GET", "/v1/agents", "", adm},
		{"GET", "/v1/agents/a1", "", adm},
		{"DELETE", "/v1/agents/a-none", "", adm},
		{"POST", "/v1/delegations", `{}`, []string{"agent"}},
		{"GET", "/v1/slos", "", appr},
		{"GET", "/v1/breakers", "", appr},
		{"GET", "/v1/incidents", "", appr},
		{"GET", "/v1/incidents/inc_none", "", appr},
		{"POST", "/v1/incidents/inc_none/close", "", adm},
		{"GET", "/v1/chaos", "", adm},
		{"POST", "/v1/chaos/x/enable", "", adm},
		{"POST", "/v1/chaos/x/disable", "", adm},
		{"GET", "/v1/mcp/servers", "", appr},
		{"POST", "/v1/mcp/servers/fs/tools/t/repin", `{}`, adm},
		{"GET", "/healthz", "", []string{"none"}},
		{"GET", "/readyz", "", []string{"none"}},
		{"GET", "/metrics", "", []string{"none"}},
	}
}

var roleTokens = map[string]string{"admin": "admin-tok", "approver": "fin-tok", "agent": "a1-tok", "none": "", "wrong": "not-a-token"}

// noRedirects is a client that shows a redirect rather than following it.
var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func (e *env) raw(method, path, token, body string) int {
	e.t.Helper()
	req, _ := http.NewRequest(method, e.url+path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := noRedirects.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestEveryRouteRefusesAWeakerRole walks the route table of docs/api.md
// with every role, no token and an unknown one: a role the table does not
// name gets 403, no credential or an unknown one 401, and a role it names
// is let through to the handler (which may still say 400, 404 or 409).
func TestEveryRouteRefusesAWeakerRole(t *testing.T) {
	e := start(t, withRegistry(t))
	_, d := e.call("POST", "/v1/decide", "a1-tok", `{"tool":{"name":"read_file"}}`)
	decision, _ := d["id"].(string)
	for _, rt := range v1Routes(decision) {
		open := slices.Contains(rt.roles, "none")
		for _, role := range []string{"admin", "approver", "agent", "none", "wrong"} {
			code := e.raw(rt.method, rt.path, roleTokens[role], rt.body)
			switch {
			case open:
				if code != 200 {
					t.Errorf("%s %s as %s: %d, want 200 for anyone", rt.method, rt.path, role, code)
				}
			case role == "none" || role == "wrong":
				if code != 401 {
					t.Errorf("%s %s as %s: %d, want 401", rt.method, rt.path, role, code)
				}
			case !slices.Contains(rt.roles, role):
				if code != 403 {
					t.Errorf("%s %s as %s: %d, want 403", rt.method, rt.path, role, code)
				}
			case code == 401 || code == 403 || code == 405:
				t.Errorf("%s %s as %s: %d, want the handler's answer", rt.method, rt.path, role, code)
			}
		}
	}
}

// The same check is not walked around by how the path or method is
// spelled: HEAD for GET, a trailing slash, a doubled or dot segment, an
// encoded slash, the method in lower case. None of them reaches an
// admin's route with an agent's or an approver's token.
func TestRouteSpellingsDoNotWalkAroundRoles(t *testing.T) {
	e := start(t, withRegistry(t))
	for _, rt := range v1Routes("dec_none") {
		if !slices.Equal(rt.roles, []string{"admin"}) {
			continue
		}
		path, _, _ := strings.Cut(rt.path, "?")
		variants := []struct{ method, path string }{
			{rt.method, path + "/"},
			{rt.method, strings.Replace(path, "/v1/", "/v1//", 1)},
			{rt.method, strings.Replace(path, "/v1/", "/v1/./", 1)},
			{rt.method, strings.Replace(path, "/v1/", "/v1/x/../", 1)},
			{rt.method, "/v1%2F" + strings.TrimPrefix(path, "/v1/")},
			{strings.ToLower(rt.method), path},
		}
		if rt.method == "GET" {
			variants = append(variants, struct{ method, path string }{"HEAD", path})
		}
		for _, v := range variants {
			for _, role := range []string{"agent", "approver"} {
				if code := e.raw(v.method, v.path, roleTokens[role], rt.body); code < 300 {
					t.Errorf("%s %s as %s: %d", v.method, v.path, role, code)
				}
			}
		}
	}
}
