// Package server is the HTTP shell over the engine: the /v1 API of DESIGN
// §5, authentication and roles, the MCP gateway and model proxy mounts, and
// Prometheus metrics. It decides nothing itself; everything it does can be
// done in process with package govern and the stores.
package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/approval"
	"github.com/agentgov/agentgov/audit"
	"github.com/agentgov/agentgov/budget"
	"github.com/agentgov/agentgov/config"
	"github.com/agentgov/agentgov/errcode"
	"github.com/agentgov/agentgov/govern"
	"github.com/agentgov/agentgov/identity"
	"github.com/agentgov/agentgov/killswitch"
	"github.com/agentgov/agentgov/metrics"
	"github.com/agentgov/agentgov/policy"
	"github.com/agentgov/agentgov/session"
	"github.com/agentgov/agentgov/store"
	"github.com/agentgov/agentgov/trust"
)

// Idempotency keeps the answers to requests that carry an Idempotency-Key.
// With several replicas on one store it is shared, so that a retry landing
// on another replica finds the first answer.
type Idempotency interface {
	// IdempotencyGet returns the answer stored for (scope, key), ok false
	// if none.
	IdempotencyGet(ctx context.Context, scope, key string) (r store.Replay, ok bool, err error)
	// IdempotencyPut stores the answer for (scope, key); the first wins.
	IdempotencyPut(ctx context.Context, scope, key string, r store.Replay, now time.Time) error
}

// Decisions finds a decision's audit entry by its id, in the log of
// whichever replica made it.
type Decisions interface {
	// FindDecision returns the entry, or an error wrapping
	// store.ErrNoDecision.
	FindDecision(ctx context.Context, id string) (store.Decision, error)
}

// Credentials verifies the bearer credentials that are not static tokens
// into one verified subject, issues delegations, and holds the agent
// registry (identity.Verifier is one).
type Credentials interface {
	// VerifySum checks tok, whose SHA-256 is sum; every error is an
	// *identity.Refusal.
	VerifySum(ctx context.Context, tok string, sum [32]byte) (identity.Subject, error)
	// Delegate issues a delegation from by, refusing one that widens
	// (identity.ErrWidening) or is malformed (identity.ErrInvalid).
	Delegate(ctx context.Context, by identity.Subject, req identity.DelegationRequest) (string, identity.Delegation, error)
	Registry() *identity.Registry
}

var _ Credentials = (*identity.Verifier)(nil)

// Pinger reports whether the store answers, for readiness.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Announcer tells the other replicas sharing the store of a change the
// store does not see itself: a policy reload (store.Watcher is one).
type Announcer interface {
	Announce(ctx context.Context, topic store.Topic) error
}

// Options are the parts a Server is built from; cmd wires them.
type Options struct {
	Config *config.Config
	Engine *govern.Engine
	Audit  *audit.Log
	// VerifierKey is the audit log's public key as a note verifier key
	// (the text of audit.pub), reported with each checkpoint so that a
	// client can check it; clients that can should hold their own copy.
	VerifierKey string
	Idempotency Idempotency
	Decisions   Decisions
	// Store, when set, must answer for the server to report ready.
	Store Pinger
	// Peers, when set, is told of each policy reload made here, so that
	// every replica reloads (each calls Refresh when told).
	Peers     Announcer
	Sessions  *session.Sessions
	Kill      *killswitch.Switchboard
	Approvals *approval.Approvals
	Budgets   *budget.Budgets
	// Trust, when set, answers GET /v1/agents/{id}/trust.
	Trust *trust.Keeper
	// LoadPolicy reads the policy set from its source again, for reload.
	LoadPolicy func() (*policy.Set, error)
	// LoadShadow reads the shadow policy set from its source again, for
	// the same reloads; nil when no shadow set is configured.
	LoadShadow func() (*policy.Set, error)
	// Identity verifies the credentials beyond static tokens (agent JWTs,
	// OIDC, SPIFFE, delegations) and keeps the agent registry; nil takes
	// static tokens only.
	Identity Credentials
	// ExtraTokens are added to the configured ones (the generated admin token).
	ExtraTokens []config.Token
	Clock       func() time.Time
	Logger      *slog.Logger
	// Metrics are served at /metrics. Give the same to the engine
	// (govern.WithObserver), the audit log, the MCP gateways and the
	// model proxy, so that /metrics shows what each does; nil makes a
	// set of the server's own.
	Metrics *metrics.Metrics
	// Anomaly, when set, answers GET /v1/agents/{id}/anomaly.
	Anomaly Baselines
	// Reliability shows the SLOs and circuit breakers at /v1/slos and
	// /v1/breakers; nil shows none.
	Reliability Reliability
	// Incidents are shown at /v1/incidents and closed there; nil keeps
	// none.
	Incidents Incidents
	// Chaos is listed at /v1/chaos and switched there; nil has none.
	Chaos Chaos
	// MCP shows the MCP gateways' pins and drift at /v1/mcp/servers and
	// re-pins there; nil shows none.
	MCP MCPServers
}

// Server serves the API.
type Server struct {
	opt     Options
	log     *slog.Logger
	clock   func() time.Time
	tokens  tokens
	origins []string
	maxBody int64
	// bodyTimeout bounds how long a request body may take to arrive.
	bodyTimeout time.Duration
	metrics     *metrics.Metrics
	mux         *http.ServeMux

	// keys serialises requests that share an Idempotency-Key, so that a
	// retry racing its original waits for the first answer.
	keysMu sync.Mutex
	keys   map[string]*keyLock

	reloadMu sync.Mutex

	// refusals bounds what refused credentials add to the audit log.
	refusals refusalLimiter
}

type keyLock struct {
	mu   sync.Mutex
	refs int
}

// New builds a Server.
func New(opt Options) (*Server, error) {
	if opt.Config == nil || opt.Engine == nil || opt.Audit == nil || opt.Idempotency == nil || opt.Decisions == nil {
		return nil, errors.New("server: Config, Engine, Audit, Idempotency and Decisions are required")
	}
	s := &Server{
		opt:     opt,
		log:     opt.Logger,
		clock:   opt.Clock,
		origins: opt.Config.AllowedOrigins,
		maxBody: opt.Config.MaxBodyBytes,
		keys:    map[string]*keyLock{},
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.clock == nil {
		s.clock = time.Now
	}
	if s.maxBody == 0 {
		s.maxBody = config.DefaultMaxBodyBytes
	}
	if s.bodyTimeout = opt.Config.BodyReadTimeout; s.bodyTimeout == 0 {
		s.bodyTimeout = config.DefaultBodyReadTimeout
	}
	s.tokens = newTokens(append(append([]config.Token(nil), opt.Config.Tokens...), opt.ExtraTokens...))
	if s.metrics = opt.Metrics; s.metrics == nil {
		s.metrics = metrics.New()
	}
	s.metrics.WatchAuditLog(opt.Audit.Size)
	if opt.Budgets != nil {
		s.metrics.WatchBudgets(opt.Budgets, s.clock)
	}
	s.routes()
	return s, nil
}

// Registry exposes the metrics registry, for components that add their own.
func (s *Server) Registry() *prometheus.Registry { return s.metrics.Registry() }

func (s *Server) routes() {
	m := http.NewServeMux()
	m.Handle("POST /v1/decide", s.route(agents, s.decide))
	m.Handle("POST /v1/decisions/{id}/outcome", s.route(agents, s.outcome))
	m.Handle("GET /v1/decisions/{id}", s.route(agents, s.getDecision))

	m.Handle("GET /v1/approvals", s.route(approvers, s.listApprovals))
	m.Handle("GET /v1/approvals/{id}", s.route(everyone, s.getApproval))
	m.Handle("POST /v1/approvals/{id}/approve", s.route(approvers, s.decideApproval(true)))
	m.Handle("POST /v1/approvals/{id}/deny", s.route(approvers, s.decideApproval(false)))

	m.Handle("POST /v1/sessions", s.route(agents, s.createSession))
	m.Handle("GET /v1/sessions/{id}", s.route(agents, s.getSession))
	m.Handle("POST /v1/sessions/{id}/pause", s.route(agents, s.moveSession(session.Paused)))
	m.Handle("POST /v1/sessions/{id}/resume", s.route(agents, s.moveSession(session.Active)))
	m.Handle("POST /v1/sessions/{id}/close", s.route(agents, s.moveSession(session.Closed)))
	m.Handle("GET /v1/sessions/{id}/reward", s.route(admins, s.sessionReward))

	m.Handle("POST /v1/kill", s.route(admins, s.engageKill))
	m.Handle("GET /v1/kill", s.route(admins, s.listKills))
	m.Handle("DELETE /v1/kill/{id}", s.route(admins, s.releaseKill))

	m.Handle("GET /v1/audit", s.route(admins, s.auditEntries))
	m.Handle("GET /v1/audit/checkpoint", s.route(admins, s.auditCheckpoint))
	m.Handle("GET /v1/audit/proof/{index}", s.route(admins, s.auditProof))
	m.Handle("GET /v1/audit/consistency", s.route(admins, s.auditConsistency))

	m.Handle("GET /v1/policies", s.route(admins, s.listPolicies))
	m.Handle("POST /v1/policies/reload", s.route(admins, s.reloadPolicies))

	m.Handle("POST /v1/budgets", s.route(admins, s.putBudget(false)))
	m.Handle("GET /v1/budgets", s.route(admins, s.listBudgets))
	m.Handle("GET /v1/budgets/{id}", s.route(admins, s.getBudget))
	m.Handle("PUT /v1/budgets/{id}", s.route(admins, s.putBudget(true)))
	m.Handle("DELETE /v1/budgets/{id}", s.route(admins, s.deleteBudget))
	m.Handle("GET /v1/usage", s.route(admins, s.usage))
	s.trustRoutes(m)

	s.identityRoutes(m)
	s.mcpRoutes(m)

	m.Handle("GET /v1/slos", s.route(approvers, s.listSLOs))
	m.Handle("GET /v1/breakers", s.route(approvers, s.listBreakers))
	m.Handle("GET /v1/incidents", s.route(approvers, s.listIncidents))
	m.Handle("GET /v1/incidents/{id}", s.route(approvers, s.getIncident))
	m.Handle("POST /v1/incidents/{id}/close", s.route(admins, s.closeIncident))
	s.chaosRoutes(m)

	m.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	m.HandleFunc("GET /readyz", s.ready)
	m.Handle("GET /metrics", s.metrics.Handler())
	m.HandleFunc("/", s.noRoute)
	s.mux = m
}

// noRoute answers a request no route takes: 405 with the methods the path
// does take, when it takes some, else 404.
func (s *Server) noRoute(w http.ResponseWriter, r *http.Request) {
	var allowed []string
	for _, method := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete} {
		if method == r.Method {
			continue
		}
		probe := &http.Request{Method: method, URL: r.URL, Host: r.Host, Header: http.Header{}}
		if _, pattern := s.mux.Handler(probe); pattern != "" && pattern != "/" {
			allowed = append(allowed, method)
		}
	}
	if len(allowed) == 0 {
		writeError(w, r, s.log, errorf(errcode.NotFound, fmt.Sprintf("no route for %s %s", r.Method, r.URL.Path)))
		return
	}
	if slices.Contains(allowed, http.MethodGet) {
		allowed = append(allowed, http.MethodHead)
	}
	w.Header().Set("Allow", strings.Join(allowed, ", "))
	writeError(w, r, s.log, errorf(errcode.MethodNotAllowed, fmt.Sprintf("%s takes %s, not %s", r.URL.Path, strings.Join(allowed, " or "), r.Method)))
}

// Mount adds the MCP gateways (at /mcp/{name}) and the model proxy (at
// /llm/, when llm is not nil). They are built after the Server because they
// authenticate callers with its Identify. Call it before Serve.
func (s *Server) Mount(mcp map[string]http.Handler, llm http.Handler) {
	names := make([]string, 0, len(mcp))
	for name := range mcp {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		h := mcp[name]
		s.mux.Handle("/mcp/"+name, h)
		s.mux.Handle("/mcp/"+name+"/", h)
		// An endpoint that is an OAuth protected resource publishes its
		// metadata (RFC 9728), readable without a credential.
		if pr, ok := h.(interface{ MetadataHandler() http.Handler }); ok {
			if mh := pr.MetadataHandler(); mh != nil {
				s.mux.Handle("/.well-known/oauth-protected-resource/mcp/"+name, mh)
			}
		}
		up := s.opt.Config.MCP.Servers[name]
		upstream := up.URL
		if upstream == "" {
			upstream = strings.Join(up.Command, " ")
		}
		s.log.Info("mcp server", "name", name, "path", "/mcp/"+name, "upstream", upstream)
	}
	if llm != nil {
		s.mux.Handle("/llm/", withTraceHeaders(llm))
	}
}

// MountUI adds the web console at /ui. Call it before Serve.
func (s *Server) MountUI(h http.Handler) {
	s.mux.Handle("/ui", h)
	s.mux.Handle("/ui/", h)
}

// MountA2A adds the A2A gateways, each at /a2a/{name}: JSON-RPC there, its
// agent card under it. Call it before Serve.
func (s *Server) MountA2A(agents map[string]http.Handler) {
	names := make([]string, 0, len(agents))
	for name := range agents {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		s.mux.Handle("/a2a/"+name, withTraceHeaders(agents[name]))
		s.mux.Handle("/a2a/"+name+"/", withTraceHeaders(agents[name]))
		s.log.Info("a2a agent", "name", name, "path", "/a2a/"+name)
	}
}

// Handler is the whole API, behind the access log, the body deadline and
// the origin check.
func (s *Server) Handler() http.Handler { return s.accessLog(s.bodyDeadline(s.checkOrigin(s.mux))) }

// bodyDeadline gives every request body body_read_timeout to arrive, on
// every mount. The server has no ReadTimeout: that would also fire while a
// long answer streams (an MCP event stream, a model's streamed answer) and
// cancel it. Instead the connection's read deadline is set when a request
// with a body comes in and lifted once its body has been read to the end;
// a client that trickles its body, or stops sending, loses the connection.
// The deadline is the network's, so it is taken from the wall clock.
func (s *Server) bodyDeadline(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody {
			h.ServeHTTP(w, r)
			return
		}
		rc := http.NewResponseController(w)
		err := rc.SetReadDeadline(time.Now().Add(s.bodyTimeout))
		switch {
		case errors.Is(err, http.ErrNotSupported):
			// No connection underneath (the handler served in process, as
			// tests do): there is nothing to bound.
			h.ServeHTTP(w, r)
			return
		case err != nil:
			writeError(w, r, s.log, errcode.Wrap(errcode.Internal, "the request body cannot be read safely", err))
			return
		}
		// On a copy of the request: the server's own handling of a body
		// left unread (read the rest before answering, or close) looks at
		// the original.
		r2 := *r
		r2.Body = &deadlineBody{ReadCloser: r.Body, rc: rc}
		h.ServeHTTP(w, &r2)
	})
}

// deadlineBody lifts the connection's read deadline when the body ends, so
// that what follows (the answer, however long) is not cut.
type deadlineBody struct {
	io.ReadCloser
	rc     *http.ResponseController
	lifted bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF && !b.lifted {
		b.lifted = true
		_ = b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}

// Identify authenticates a request for the MCP gateway and the model proxy:
// only agent tokens act as agents there.
func (s *Server) Identify(r *http.Request) (action.Agent, action.Principal, error) {
	c, err := s.authenticate(r)
	if err != nil {
		return action.Agent{}, action.Principal{}, err
	}
	if info := infoOf(r.Context()); info != nil {
		info.agent, info.caller = c.agent.ID, c.name
	}
	if c.role != config.AgentRole {
		return action.Agent{}, action.Principal{}, errorf(errcode.Forbidden, fmt.Sprintf("%s token may not call %s: only agent tokens act as agents", article(string(c.role)), r.URL.Path))
	}
	return c.agent, c.principal, nil
}

// staleAllow says why an allow stored for an Idempotency-Key must not be
// replayed to a retry of a, or "" when it may be. A replay answers as of
// the first request; an allow made before a kill switch, a paused session
// or a policy reload would outlive them. Denials and approval requests
// grant nothing and are always replayed. An allow is replayed only while
// what it was decided under still holds: no kill switch covers the action,
// its session still runs, the policy set in force is the one that decided,
// and its budget reservation has not lapsed. Otherwise the retry is decided
// afresh, which denies it where the first would now be denied.
func (s *Server) staleAllow(ctx context.Context, a *action.Action, prev store.Replay) string {
	var d action.Decision
	if err := json.Unmarshal(prev.Body, &d); err != nil {
		return "the stored answer cannot be read: " + err.Error()
	}
	if d.Effect != action.Allow {
		return ""
	}
	if age := s.clock().Sub(time.UnixMilli(d.ID.Time())); age > budget.DefaultReservationTTL {
		return fmt.Sprintf("the allow is %s old, past the life of its budget reservation", age.Round(time.Second))
	}
	if s.opt.Kill != nil {
		if sw, on := s.opt.Kill.Check(a); on {
			return "a kill switch engaged since: " + sw.DenyReason()
		}
	}
	if a.Session != "" && s.opt.Sessions != nil {
		if ok, reason, err := s.opt.Sessions.Check(ctx, a.Session, a.Agent.ID); !ok || err != nil {
			return "the session no longer runs: " + reason
		}
	}
	if d.AuditIndex == nil {
		return "the stored allow names no audit entry"
	}
	// By its id, not its index: the allow may be in another replica's log.
	e, err := s.decisionEntry(ctx, d.ID.String())
	if err != nil {
		return fmt.Sprintf("the allow's audit entry cannot be read: %v", err)
	}
	var rec struct {
		Policy string `json:"policy"`
	}
	if err := json.Unmarshal(e.Record, &rec); err != nil {
		return "the allow's audit entry cannot be read: " + err.Error()
	}
	if now := s.opt.Engine.Policy().Digest(); rec.Policy != now {
		return "the policy set changed since (" + rec.Policy + " then, " + now + " now)"
	}
	return ""
}

// auditStallLimit is how long appends may wait with none answered before
// the replica says it is not ready: a store that takes connections but
// commits nothing answers pings, so only the log's own progress tells.
const auditStallLimit = time.Second

func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if s.opt.Store != nil {
		if err := s.opt.Store.Ping(ctx); err != nil {
			writeError(w, r, s.log, errcode.Wrap(errcode.Unavailable, "store not ready", err))
			return
		}
	}
	// Measured against the log's own monotonic readings, not the injected
	// clock: how long the store has left appends unanswered.
	if stall := s.opt.Audit.Stalled(time.Now()); stall > auditStallLimit {
		writeError(w, r, s.log, errcode.Wrap(errcode.Unavailable, "audit log not ready",
			fmt.Errorf("appends have waited %s for the store to commit", stall.Round(time.Millisecond))))
		return
	}
	if _, _, err := s.opt.Audit.Checkpoint(ctx); err != nil {
		writeError(w, r, s.log, errcode.Wrap(errcode.Unavailable, "audit log not ready", err))
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready", "policy": s.opt.Engine.Policy().Digest()})
}

// Serve answers on ln until ctx ends, then shuts down gracefully, giving
// requests in flight up to grace to finish.
func (s *Server) Serve(ctx context.Context, ln net.Listener, grace time.Duration) error {
	hs := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
	defer cancel()
	err := hs.Shutdown(sctx)
	if e := <-errc; e != nil && !errors.Is(e, http.ErrServerClosed) && err == nil {
		err = e
	}
	return err
}
