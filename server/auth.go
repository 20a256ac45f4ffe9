package server

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/config"
	"github.com/agentgov/agentgov/errcode"
	"github.com/agentgov/agentgov/identity"
)

// caller is the authenticated identity of a request.
type caller struct {
	name      string
	role      config.Role
	agent     action.Agent
	principal action.Principal
	groups    []string
	// cred is what the caller proved itself with; for agents it is also
	// agent.Credential.
	cred *action.Credential
}

type callerKey struct{}

func callerOf(ctx context.Context) *caller {
	c, _ := ctx.Value(callerKey{}).(*caller)
	return c
}

// tokens maps the SHA-256 of each token to its caller. Tokens themselves are
// never held: a leaked configuration or memory dump does not leak them.
type tokens map[string]*caller

func newTokens(cfg []config.Token) tokens {
	t := tokens{}
	for _, tk := range cfg {
		c := &caller{name: tk.Name, role: tk.Role, principal: tk.Principal, groups: tk.Groups,
			cred: &action.Credential{Kind: action.CredentialToken, Subject: tk.Name}}
		if tk.Role == config.AgentRole {
			c.agent = action.Agent{ID: tk.Agent, Type: tk.AgentType, Labels: tk.Labels, Credential: c.cred}
		}
		t[strings.ToLower(tk.SHA256)] = c
	}
	return t
}

// HashToken is how a token is configured and kept: the hex SHA-256 of it.
func HashToken(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:])
}

// AdminTokenFile is where the first start keeps its generated admin token.
const AdminTokenFile = "admin.token"

// EnsureAdminToken returns the generated admin token of a data directory,
// creating it (mode 0600) on first start. created says whether it is new, so
// that the caller prints it once.
func EnsureAdminToken(dir string) (tok string, created bool, err error) {
	path := filepath.Join(dir, AdminTokenFile)
	b, err := os.ReadFile(path)
	if err == nil {
		return strings.TrimSpace(string(b)), false, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", false, fmt.Errorf("admin token: %w", err)
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", false, fmt.Errorf("admin token: %w", err)
	}
	tok = "agt_" + base64.RawURLEncoding.EncodeToString(raw[:])
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", false, fmt.Errorf("admin token: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", false, fmt.Errorf("admin token: %w", err)
	}
	if _, err := f.WriteString(tok + "\n"); err != nil {
		f.Close()
		return "", false, fmt.Errorf("admin token: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", false, fmt.Errorf("admin token: %w", err)
	}
	return tok, true, nil
}

func (s *Server) authenticate(r *http.Request) (*caller, error) {
	h := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || tok == "" {
		// The model proxy's SDKs send their key in these headers instead.
		tok = r.Header.Get("X-Api-Key")
		if tok == "" {
			return nil, errorf(errcode.Unauthorized, "missing bearer token")
		}
	}
	tok = strings.TrimSpace(tok)
	sum := sha256.Sum256([]byte(tok))
	c, ok := s.tokens[hex.EncodeToString(sum[:])]
	if !ok {
		if s.opt.Identity != nil && identity.IsCredential(tok) {
			return s.verifyCredential(r, tok, sum)
		}
		s.refused(r, &identity.Refusal{Reason: identity.UnknownToken, Kind: action.CredentialToken, Msg: "unknown token"})
		return nil, errorf(errcode.Unauthorized, "unknown token")
	}
	// A revoked agent loses its static tokens too: revocation refuses
	// every credential of the agent.
	if c.role == config.AgentRole && s.opt.Identity != nil {
		if at, revoked := s.opt.Identity.Registry().RevokedAt(c.agent.ID); revoked {
			rf := &identity.Refusal{Reason: identity.Revoked, Kind: action.CredentialToken, Subject: c.name,
				Msg: "agent " + c.agent.ID + " was revoked at " + at.Format(time.RFC3339)}
			s.refused(r, rf)
			return nil, errcode.Wrap(errcode.Unauthorized, rf.Error(), rf)
		}
	}
	return c, nil
}

// handler is an API handler that returns its error.
type handler func(w http.ResponseWriter, r *http.Request) error

// route wraps an API handler with authentication and a role check.
func (s *Server) route(roles []config.Role, h handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := s.authenticate(r)
		if err != nil {
			writeError(w, r, s.log, err)
			return
		}
		if info := infoOf(r.Context()); info != nil {
			info.agent, info.caller = c.agent.ID, c.name
		}
		if !slices.Contains(roles, c.role) {
			writeError(w, r, s.log, errorf(errcode.Forbidden, fmt.Sprintf("%s token may not call %s %s", article(string(c.role)), r.Method, r.URL.Path)))
			return
		}
		r = r.WithContext(context.WithValue(r.Context(), callerKey{}, c))
		if err := h(w, r); err != nil {
			writeError(w, r, s.log, err)
		}
	})
}

var (
	admins    = []config.Role{config.Admin}
	approvers = []config.Role{config.Admin, config.Approver}
	agents    = []config.Role{config.Admin, config.AgentRole}
	// everyone is for what each role may read of its own: an agent the
	// tickets its actions opened and its own trust, an approver the
	// tickets it may decide.
	everyone = []config.Role{config.Admin, config.Approver, config.AgentRole}
)

// checkOrigin refuses cross-origin requests from browsers: a page on another
// site (or a rebound DNS name) must not drive the API with the user's
// network position. Requests without an Origin (agents, curl) pass.
func (s *Server) checkOrigin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if o := r.Header.Get("Origin"); o != "" && !s.originAllowed(o, r) {
			writeError(w, r, s.log, errorf(errcode.Forbidden, fmt.Sprintf("origin %q is not allowed", o)))
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) originAllowed(origin string, r *http.Request) bool {
	if slices.Contains(s.origins, origin) {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil {
		return false
	}
	// The server's own origin, when it is served on loopback.
	host := u.Hostname()
	if ip := net.ParseIP(host); (ip != nil && ip.IsLoopback()) || host == "localhost" {
		return u.Host == r.Host || u.Port() == portOf(r.Host)
	}
	return false
}

func portOf(hostport string) string {
	_, p, _ := net.SplitHostPort(hostport)
	return p
}

// article puts "a" or "an" before a role's name.
func article(word string) string {
	if word != "" && strings.ContainsRune("aeiou", rune(word[0])) {
		return "an " + word
	}
	return "a " + word
}
