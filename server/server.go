// Package server is the HTTP shell over the engine: the /v1 API of DESIGN
// §5, authentication and roles, the MCP gateway and model proxy mounts, and
// Prometheus metrics. It decides nothing itself; everything it does can be
// done in process with package govern and the stores.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/approval"
	"github.com/agentgov/agentgov/audit"
	"github.com/agentgov/agentgov/budget"
	"github.com/agentgov/agentgov/config"
	"github.com/agentgov/agentgov/govern"
	"github.com/agentgov/agentgov/killswitch"
	"github.com/agentgov/agentgov/policy"
	"github.com/agentgov/agentgov/session"
	"github.com/agentgov/agentgov/store/sqlite"
)

// Options are the parts a Server is built from; cmd wires them.
type Options struct {
	Config    *config.Config
	Engine    *govern.Engine
	Audit     *audit.Log
	DB        *sqlite.DB
	Sessions  *session.Sessions
	Kill      *killswitch.Switchboard
	Approvals *approval.Approvals
	Budgets   *budget.Budgets
	// LoadPolicy reads the policy set from its source again, for reload.
	LoadPolicy func() (*policy.Set, error)
	// ExtraTokens are added to the configured ones (the generated admin token).
	ExtraTokens []config.Token
	Clock       func() time.Time
	Logger      *slog.Logger
}

// Server serves the API.
type Server struct {
	opt     Options
	log     *slog.Logger
	clock   func() time.Time
	tokens  tokens
	origins []string
	maxBody int64
	metrics *metrics
	mux     *http.ServeMux

	// keys serialises requests that share an Idempotency-Key, so that a
	// retry racing its original waits for the first answer.
	keysMu sync.Mutex
	keys   map[string]*keyLock

	reloadMu sync.Mutex
}

type keyLock struct {
	mu   sync.Mutex
	refs int
}

// New builds a Server.
func New(opt Options) (*Server, error) {
	if opt.Config == nil || opt.Engine == nil || opt.Audit == nil || opt.DB == nil {
		return nil, errors.New("server: Config, Engine, Audit and DB are required")
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
	s.tokens = newTokens(append(append([]config.Token(nil), opt.Config.Tokens...), opt.ExtraTokens...))
	s.metrics = newMetrics(opt.Audit)
	s.routes()
	return s, nil
}

// Registry exposes the metrics registry, for components that add their own.
func (s *Server) Registry() *prometheus.Registry { return s.metrics.reg }

func (s *Server) routes() {
	m := http.NewServeMux()
	m.Handle("POST /v1/decide", s.route(agents, s.decide))
	m.Handle("POST /v1/decisions/{id}/outcome", s.route(agents, s.outcome))
	m.Handle("GET /v1/decisions/{id}", s.route(agents, s.getDecision))

	m.Handle("GET /v1/approvals", s.route(approvers, s.listApprovals))
	m.Handle("GET /v1/approvals/{id}", s.route(approvers, s.getApproval))
	m.Handle("POST /v1/approvals/{id}/approve", s.route(approvers, s.decideApproval(true)))
	m.Handle("POST /v1/approvals/{id}/deny", s.route(approvers, s.decideApproval(false)))

	m.Handle("POST /v1/sessions", s.route(agents, s.createSession))
	m.Handle("GET /v1/sessions/{id}", s.route(agents, s.getSession))
	m.Handle("POST /v1/sessions/{id}/pause", s.route(agents, s.moveSession(session.Paused)))
	m.Handle("POST /v1/sessions/{id}/resume", s.route(agents, s.moveSession(session.Active)))
	m.Handle("POST /v1/sessions/{id}/close", s.route(agents, s.moveSession(session.Closed)))

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

	m.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	m.HandleFunc("GET /readyz", s.ready)
	m.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}))
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, s.log, errorf(codeNotFound, fmt.Sprintf("no route for %s %s", r.Method, r.URL.Path)))
	})
	s.mux = m
}

// Mount adds the MCP gateways (at /mcp/{name}) and the model proxy (at
// /llm/, when llm is not nil). They are built after the Server because they
// authenticate callers with its Identify. Call it before Serve.
func (s *Server) Mount(mcp map[string]http.Handler, llm http.Handler) {
	for name, h := range mcp {
		s.mux.Handle("/mcp/"+name, h)
		s.mux.Handle("/mcp/"+name+"/", h)
	}
	if llm != nil {
		s.mux.Handle("/llm/", llm)
	}
}

// Handler is the whole API, behind the origin check.
func (s *Server) Handler() http.Handler { return s.checkOrigin(s.mux) }

// Identify authenticates a request for the MCP gateway and the model proxy:
// only agent tokens act as agents there.
func (s *Server) Identify(r *http.Request) (action.Agent, action.Principal, error) {
	c, err := s.authenticate(r)
	if err != nil {
		return action.Agent{}, action.Principal{}, err
	}
	if c.role != config.AgentRole {
		return action.Agent{}, action.Principal{}, errorf(codeForbidden, "only agent tokens may call agents' endpoints")
	}
	return c.agent, c.principal, nil
}

func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if _, _, err := s.opt.Audit.Checkpoint(ctx); err != nil {
		writeError(w, r, s.log, &apiError{code: codeUnavailable, msg: "audit log not ready", cause: err})
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
