// Package console is the web console at /ui: where people approve tickets,
// watch decisions, stop agents and check the audit log. It is a client of
// the HTTP API like any other (it calls the API's handler in process, with
// the signed-in person's token), so it can do nothing the API would not let
// that person do, and everything it changes is audited by the API.
package console

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"path"
	"strings"
	"time"
	"unicode"

	"github.com/agentgov/agentgov/client"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Options configure the console.
type Options struct {
	// API is the server's whole HTTP API; the console calls it in process.
	API http.Handler
	// SessionTTL bounds a session from sign-in (default 8h); SessionIdle
	// ends one unused for that long (default 30m).
	SessionTTL, SessionIdle time.Duration
	// Poll is how often live pages look for news (default 1s).
	Poll   time.Duration
	Logger *slog.Logger
}

// Console serves /ui.
type Console struct {
	opt      Options
	sessions *sessions
	tmpl     map[string]*template.Template
	assets   map[string]asset // by hashed name
	assetURL map[string]string
	mux      *http.ServeMux
}

type asset struct {
	body        []byte
	contentType string
}

// New builds the console.
func New(opt Options) (*Console, error) {
	if opt.API == nil {
		return nil, errors.New("console: no API handler")
	}
	if opt.SessionTTL <= 0 {
		opt.SessionTTL = 8 * time.Hour
	}
	if opt.SessionIdle <= 0 {
		opt.SessionIdle = 30 * time.Minute
	}
	if opt.Poll <= 0 {
		opt.Poll = time.Second
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Console{opt: opt, sessions: newSessions(opt.SessionTTL, opt.SessionIdle), assets: map[string]asset{}, assetURL: map[string]string{}}
	if err := c.loadAssets(); err != nil {
		return nil, err
	}
	if err := c.loadTemplates(); err != nil {
		return nil, err
	}
	c.routes()
	return c, nil
}

// loadAssets names each static file by its content hash, so it can be
// cached for a year and a new release is fetched at once.
func (c *Console) loadAssets() error {
	return fs.WalkDir(staticFS, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := staticFS.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		base := path.Base(p)
		ext := path.Ext(base)
		hashed := strings.TrimSuffix(base, ext) + "." + hex.EncodeToString(sum[:6]) + ext
		ct := map[string]string{".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".svg": "image/svg+xml"}[ext]
		c.assets[hashed] = asset{body: b, contentType: ct}
		c.assetURL[base] = "/ui/static/" + hashed
		return nil
	})
}

func (c *Console) loadTemplates() error {
	funcs := template.FuncMap{
		"asset":      func(name string) string { return c.assetURL[name] },
		"ago":        ago,
		"when":       func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") },
		"pretty":     pretty,
		"join":       strings.Join,
		"pct":        func(f float64) string { return fmt.Sprintf("%.0f%%", f*100) },
		"width":      func(f float64) string { return fmt.Sprintf("%.1f", min(f, 1)*100) },
		"chartWidth": func(n int) int { return max(n*12, 12) },
		"sub":        func(a, b float64) float64 { return a - b },
		"mul100":     func(f float64) float64 { return f * 100 },
		"short":      short,
		"shown":      shown,
	}
	pages, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return err
	}
	c.tmpl = map[string]*template.Template{}
	for _, p := range pages {
		name := path.Base(p)
		if name == "layout.html" {
			continue
		}
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", p)
		if err != nil {
			return fmt.Errorf("console: template %s: %w", name, err)
		}
		c.tmpl[name] = t
	}
	return nil
}

// Handler serves every path under /ui.
func (c *Console) Handler() http.Handler {
	// A request from another origin never changes state: Go's
	// cross-origin protection refuses non-safe methods whose
	// Sec-Fetch-Site or Origin says another site (Origin: null included),
	// and every form also carries the session's CSRF token.
	cop := http.NewCrossOriginProtection()
	return securityHeaders(cop.Handler(c.mux))
}

func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		// same-origin, not no-referrer: with no-referrer a browser sends
		// "Origin: null" on form posts, which the origin checks refuse.
		h.Set("Referrer-Policy", "same-origin")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		next.ServeHTTP(w, r)
	})
}

func (c *Console) routes() {
	m := http.NewServeMux()
	m.HandleFunc("GET /ui/static/{name}", c.static)
	m.HandleFunc("GET /ui/login", c.loginForm)
	m.HandleFunc("POST /ui/login", c.login)
	m.HandleFunc("POST /ui/logout", c.signedIn(c.logout))
	m.HandleFunc("GET /ui/{$}", c.signedIn(func(w http.ResponseWriter, r *http.Request, s *session) {
		http.Redirect(w, r, "/ui/approvals", http.StatusSeeOther)
	}))
	m.HandleFunc("GET /ui", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/ui/", http.StatusSeeOther) })
	m.HandleFunc("GET /ui/approvals", c.signedIn(c.approvals))
	m.HandleFunc("GET /ui/approvals/list", c.signedIn(c.approvalsList))
	m.HandleFunc("POST /ui/approvals/{id}/{verb}", c.signedIn(c.decideTicket))
	m.HandleFunc("GET /ui/events/approvals", c.signedIn(c.approvalEvents))
	m.HandleFunc("GET /ui/decisions", c.admin(c.decisions))
	m.HandleFunc("GET /ui/events/decisions", c.admin(c.decisionEvents))
	m.HandleFunc("GET /ui/agents", c.admin(c.agents))
	m.HandleFunc("POST /ui/kill", c.admin(c.killConfirm))
	m.HandleFunc("POST /ui/kill/confirm", c.admin(c.kill))
	m.HandleFunc("POST /ui/kill/{id}/release", c.admin(c.release))
	m.HandleFunc("POST /ui/sessions/{verb}", c.admin(c.moveSession))
	m.HandleFunc("GET /ui/budgets", c.admin(c.budgets))
	// Approvers read reliability and MCP review as the API lets them;
	// changing anything there is for admins.
	m.HandleFunc("GET /ui/reliability", c.signedIn(c.reliability))
	m.HandleFunc("POST /ui/incidents/{id}/close", c.admin(c.closeIncident))
	m.HandleFunc("POST /ui/chaos/{id}/switch", c.admin(c.chaosConfirm))
	m.HandleFunc("POST /ui/chaos/{id}/switch/confirm", c.admin(c.chaosSwitch))
	m.HandleFunc("GET /ui/mcp", c.signedIn(c.mcp))
	m.HandleFunc("POST /ui/mcp/repin", c.admin(c.repinConfirm))
	m.HandleFunc("POST /ui/mcp/repin/confirm", c.admin(c.repin))
	m.HandleFunc("GET /ui/audit", c.admin(c.audit))
	m.HandleFunc("GET /ui/audit/{index}", c.admin(c.auditEntry))
	m.HandleFunc("GET /ui/audit/{index}/proof", c.admin(c.auditProof))
	m.HandleFunc("/ui/", func(w http.ResponseWriter, r *http.Request) {
		c.page(w, r, nil, http.StatusNotFound, "error.html", map[string]any{"Title": "Not found", "Message": "There is no page " + r.URL.Path + "."})
	})
	c.mux = m
}

func (c *Console) static(w http.ResponseWriter, r *http.Request) {
	a, ok := c.assets[r.PathValue("name")]
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", a.contentType)
	w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	w.Write(a.body)
}

type handler func(http.ResponseWriter, *http.Request, *session)

// signedIn runs h for a signed-in person; a state change also needs the
// session's CSRF token. Anyone else is sent to the sign-in page.
func (c *Console) signedIn(h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s := c.sessions.get(r)
		if s == nil {
			if r.Method != http.MethodGet || strings.HasPrefix(r.URL.Path, "/ui/events/") {
				http.Error(w, "signed out: sign in again at /ui/login", http.StatusUnauthorized)
				return
			}
			http.Redirect(w, r, "/ui/login?next="+urlQuery(r.URL.Path), http.StatusSeeOther)
			return
		}
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
			if !s.validCSRF(r) {
				c.page(w, r, s, http.StatusForbidden, "error.html", map[string]any{"Title": "Refused", "Message": "The form is stale or came from another site: reload the page and try again."})
				return
			}
		}
		w.Header().Set("Cache-Control", "no-store")
		h(w, r, s)
	}
}

// admin is signedIn for pages only admins may see.
func (c *Console) admin(h handler) http.HandlerFunc {
	return c.signedIn(func(w http.ResponseWriter, r *http.Request, s *session) {
		if s.role != "admin" {
			c.page(w, r, s, http.StatusForbidden, "error.html", map[string]any{"Title": "Admins only", "Message": "This page is for admin tokens; approvers see the approvals queue."})
			return
		}
		h(w, r, s)
	})
}

// page renders a whole page (or, for a template named *-part, a fragment).
func (c *Console) page(w http.ResponseWriter, r *http.Request, s *session, status int, name string, data map[string]any) {
	t, ok := c.tmpl[name]
	if !ok {
		http.Error(w, "console: no template "+name, http.StatusInternalServerError)
		return
	}
	if data == nil {
		data = map[string]any{}
	}
	data["Session"] = s
	if s != nil {
		data["CSRF"] = s.csrf
		data["Admin"] = s.role == "admin"
	}
	data["Path"] = r.URL.Path
	var b strings.Builder
	entry := "layout.html"
	if r.URL.Query().Get("part") == "1" {
		entry = "main"
	}
	if err := t.ExecuteTemplate(&b, entry, data); err != nil {
		c.opt.Logger.Error("console: render", "page", name, "err", err)
		http.Error(w, "console: could not render the page", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	fmt.Fprint(w, b.String())
}

// apiError is what a person reads when the API refused.
func apiError(err error) string {
	var e *client.Error
	if errors.As(err, &e) {
		return e.Message
	}
	return err.Error()
}

func ago(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	d := time.Since(t)
	future := d < 0
	if future {
		d = -d
	}
	var s string
	switch {
	case d < time.Minute:
		s = fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		s = fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		s = fmt.Sprintf("%dh", int(d.Hours()))
	default:
		s = fmt.Sprintf("%dd", int(d.Hours()/24))
	}
	if future {
		return "in " + s
	}
	return s + " ago"
}

// shown names the characters of an agent's (or an upstream's) string that
// a person cannot see or that reorder what they see: bidirectional
// controls, zero-width and other format characters, control characters,
// line and paragraph separators. Applied, they would let "evil-corp" read
// as "ACME" on the ticket an approver decides; named, they read
// "evil-corp[U+202E]...". Newlines and tabs are kept: they lay arguments
// out.
func shown(s string) string {
	if !strings.ContainsFunc(s, hiddenRune) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if hiddenRune(r) {
			fmt.Fprintf(&b, "[U+%04X]", r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func hiddenRune(r rune) bool {
	if r == '\n' || r == '\t' {
		return false
	}
	return unicode.IsControl(r) || unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp)
}

func urlQuery(s string) string { return template.URLQueryEscaper(s) }

// ctx bounds each page's calls to the API.
func ctx(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), 10*time.Second)
}
