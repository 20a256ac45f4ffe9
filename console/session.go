package console

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"sync"
	"time"

	"github.com/agentgov/agentgov/client"
)

// A session is one signed-in person: the token they signed in with stays
// on the server, inside the client that speaks for them; the browser holds
// only a random session id, in an HttpOnly, SameSite=Strict cookie.
type session struct {
	id      string
	csrf    string
	role    string // "admin" or "approver"
	api     *client.Client
	created time.Time
	seen    time.Time
}

// sessions are kept in memory: a restart signs everyone out, and behind a
// load balancer a person's requests must reach the replica they signed in
// on (sticky sessions).
type sessions struct {
	mu   sync.Mutex
	byID map[string]*session
	ttl  time.Duration // from sign-in, whatever the activity
	idle time.Duration // without a request
	now  func() time.Time
}

func newSessions(ttl, idle time.Duration) *sessions {
	return &sessions{byID: map[string]*session{}, ttl: ttl, idle: idle, now: time.Now}
}

func randomID() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic("console: no randomness: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func (ss *sessions) create(role string, api *client.Client) *session {
	now := ss.now()
	s := &session{id: randomID(), csrf: randomID(), role: role, api: api, created: now, seen: now}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	// Sweep expired sessions on sign-in: the map stays bounded by the
	// sessions alive within one TTL.
	for id, o := range ss.byID {
		if ss.expired(o, now) {
			delete(ss.byID, id)
		}
	}
	ss.byID[s.id] = s
	return s
}

func (ss *sessions) expired(s *session, now time.Time) bool {
	return now.Sub(s.created) > ss.ttl || now.Sub(s.seen) > ss.idle
}

// get returns the live session the request's cookie names, and marks it
// used.
func (ss *sessions) get(r *http.Request) *session {
	c, err := r.Cookie(cookieName(r))
	if err != nil || c.Value == "" {
		return nil
	}
	now := ss.now()
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s := ss.byID[c.Value]
	if s == nil {
		return nil
	}
	if ss.expired(s, now) {
		delete(ss.byID, s.id)
		return nil
	}
	s.seen = now
	return s
}

// alive says s has neither ended nor expired, without marking it used: a
// live page's stream lasts as long as its session, and keeps no session
// alive by itself.
func (ss *sessions) alive(s *session) bool {
	now := ss.now()
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.byID[s.id] != s {
		return false
	}
	if ss.expired(s, now) {
		delete(ss.byID, s.id)
		return false
	}
	return true
}

func (ss *sessions) end(id string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	delete(ss.byID, id)
}

// cookieName is __Host- prefixed over TLS, which browsers accept only for
// Secure, host-only cookies with Path=/.
func cookieName(r *http.Request) string {
	if r.TLS != nil {
		return "__Host-agentgov-console"
	}
	return "agentgov-console"
}

func setCookie(w http.ResponseWriter, r *http.Request, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name:     cookieName(r),
		Value:    value,
		Path:     "/",
		MaxAge:   maxAge,
		HttpOnly: true,
		Secure:   r.TLS != nil,
		SameSite: http.SameSiteStrictMode,
	})
}

// validCSRF compares the form's token with the session's in constant time.
func (s *session) validCSRF(r *http.Request) bool {
	got := r.PostFormValue("csrf")
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(s.csrf)) == 1
}

// Role is "admin" or "approver", as the pages show it.
func (s *session) Role() string { return s.role }
