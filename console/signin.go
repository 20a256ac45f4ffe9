package console

import (
	"net/http"
	"strings"

	"github.com/agentgov/agentgov/approval"
	"github.com/agentgov/agentgov/client"
)

func (c *Console) apiClient(token string) (*client.Client, error) {
	return client.New("http://console.invalid", token,
		client.WithHTTPClient(&http.Client{Transport: inProcess{api: c.opt.API}}),
		client.WithUserAgent("agentgov-console"))
}

func (c *Console) loginForm(w http.ResponseWriter, r *http.Request) {
	if c.sessions.get(r) != nil {
		http.Redirect(w, r, "/ui/approvals", http.StatusSeeOther)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	c.page(w, r, nil, http.StatusOK, "login.html", map[string]any{"Title": "Sign in", "Next": safeNext(r.URL.Query().Get("next"))})
}

// login accepts approver and admin tokens. The API itself tells which a
// token is: an agent's token may not list approvals, and only an admin's
// may list kill switches.
func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	token := strings.TrimSpace(r.PostFormValue("token"))
	next := safeNext(r.PostFormValue("next"))
	fail := func(status int, msg string) {
		c.page(w, r, nil, status, "login.html", map[string]any{"Title": "Sign in", "Error": msg, "Next": next})
	}
	if token == "" {
		fail(http.StatusBadRequest, "Enter a token.")
		return
	}
	api, err := c.apiClient(token)
	if err != nil {
		fail(http.StatusBadRequest, "That is not a token.")
		return
	}
	cx, cancel := ctx(r)
	defer cancel()
	if _, err := api.Approvals(cx, approval.Pending); err != nil {
		switch {
		case client.IsCode(err, "unauthorized"):
			fail(http.StatusUnauthorized, "This token is not known to the server.")
		case client.IsCode(err, "forbidden"):
			fail(http.StatusForbidden, "Agent credentials cannot sign in to the console: use an approver or admin token.")
		default:
			fail(http.StatusServiceUnavailable, "The server could not check the token: "+apiError(err))
		}
		return
	}
	role := "approver"
	if _, err := api.Kills(cx); err == nil {
		role = "admin"
	}
	s := c.sessions.create(role, api)
	setCookie(w, r, s.id, int(c.opt.SessionTTL.Seconds()))
	c.opt.Logger.Info("console sign-in", "role", role)
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request, s *session) {
	c.sessions.end(s.id)
	setCookie(w, r, "", -1)
	http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
}

// safeNext keeps a redirect after sign-in inside the console.
func safeNext(p string) string {
	if !strings.HasPrefix(p, "/ui/") || strings.HasPrefix(p, "/ui//") || strings.ContainsAny(p, "\\\r\n") {
		return "/ui/approvals"
	}
	return p
}
