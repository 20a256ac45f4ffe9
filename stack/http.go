package stack

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"github.com/agentgov/agentgov/console"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/agentgov/agentgov/config"
	"github.com/agentgov/agentgov/govern"
	"github.com/agentgov/agentgov/llmproxy"
	"github.com/agentgov/agentgov/mcp"
	"github.com/agentgov/agentgov/mcp/pin"
	"github.com/agentgov/agentgov/mcp/wire"
	"github.com/agentgov/agentgov/server"
	"github.com/agentgov/agentgov/store"
)

// HTTPOptions set up the HTTP front.
type HTTPOptions struct {
	// AdminToken generates an admin token for the data directory when it
	// has none, and OnAdminToken is told of it once it is saved (after the
	// start is recorded, so that a start that fails shows no token that
	// was never kept).
	AdminToken   bool
	OnAdminToken func(token, path string)
	// ExtraTokens are added to the configured ones.
	ExtraTokens []config.Token
}

// HTTP is the server front: the /v1 API, the MCP gateways of
// cfg.MCP.Servers at /mcp/{server} and the model proxy at /llm/, on ln.
type HTTP struct {
	Server *server.Server
	ln     net.Listener
	grace  time.Duration
	mcp    []*mcp.HTTPHandler
}

// HTTP builds the server front answering on ln. It keeps ln: the caller
// binds it before Open, so that a port in use stops the start before
// anything is written.
func (s *Stack) HTTP(ln net.Listener, opt HTTPOptions) (*HTTP, error) {
	cfg := s.Config
	tokens := append([]config.Token(nil), opt.ExtraTokens...)
	if opt.AdminToken {
		tok, saved, err := adminToken(cfg.Data)
		if err != nil {
			return nil, err
		}
		tokens = append(tokens, config.Token{Name: "admin", Role: config.Admin, SHA256: server.HashToken(tok)})
		if !saved {
			s.OnStart(func(context.Context) error {
				path, err := saveAdminToken(cfg.Data, tok)
				if err != nil {
					return err
				}
				if opt.OnAdminToken != nil {
					opt.OnAdminToken(tok, path)
				}
				return nil
			})
		}
	}
	opts := server.Options{
		Config: cfg, Engine: s.Engine, Audit: s.Audit, Idempotency: s.store, Decisions: s.store, Store: s.store,
		Sessions: s.Sessions, Kill: s.Kill, Trust: s.Trust,
		Approvals: s.Approvals, Budgets: s.Budgets, LoadPolicy: s.LoadPolicy, LoadShadow: s.LoadShadow, Logger: s.log, Clock: s.clock, Metrics: s.Metrics,
		ExtraTokens: tokens, Identity: s.Identity,
	}
	if s.watcher != nil {
		opts.Peers = s.watcher
	}
	vkey, err := verifierKey(cfg)
	if err != nil {
		return nil, err
	}
	opts.VerifierKey = vkey
	if s.Reliability != nil {
		opts.Reliability = s.Reliability
	}
	if s.Anomaly != nil {
		opts.Anomaly = s.Anomaly
	}
	opts.Incidents = s.Incidents
	opts.Chaos = s.serverChaos()
	review := newMCPReview(cfg)
	opts.MCP = review
	srv, err := server.New(opts)
	if err != nil {
		return nil, err
	}
	if s.watcher != nil {
		s.watcher.Watch(store.Policy, srv.Refresh)
	}
	llmCfg := proxyConfig(cfg.LLM, s.log, s.clock)
	llmCfg.Recorder, llmCfg.Observer, llmCfg.Tracer = s.Audit, s.Metrics, s.tracer
	llmCfg.Chaos = s.proxyChaos()
	llm, err := llmproxy.New(llmCfg, s.Engine, s.Models, srv.Identify)
	if err != nil {
		return nil, err
	}
	h := &HTTP{Server: srv, ln: ln, grace: s.grace}
	gateways, err := s.mcpHandlers(srv.Identify)
	if err != nil {
		return nil, err
	}
	handlers := map[string]http.Handler{}
	for name, g := range gateways {
		handlers[name] = g
		review.gateways[name] = g.Gateway()
		h.mcp = append(h.mcp, g)
		s.closers = append(s.closers, g.Close)
	}
	srv.Mount(handlers, llm)
	a2a, err := s.a2aHandlers(srv.Identify)
	if err != nil {
		return nil, err
	}
	srv.MountA2A(a2a)
	if !cfg.Console.Disabled {
		ui, err := console.New(console.Options{API: srv.Handler(), SessionTTL: cfg.Console.SessionTTL, SessionIdle: cfg.Console.SessionIdle, Logger: s.log})
		if err != nil {
			return nil, err
		}
		srv.MountUI(ui.Handler())
	}
	return h, nil
}

// proxyConfig is the model proxy's configuration from the llm: section.
func proxyConfig(c config.LLM, log *slog.Logger, now func() time.Time) llmproxy.Config {
	up := func(u config.LLMUpstream) llmproxy.Upstream {
		return llmproxy.Upstream{BaseURL: u.BaseURL, APIKeyEnv: u.APIKeyEnv, APIKeyFile: u.APIKeyFile}
	}
	return llmproxy.Config{
		OpenAI: up(c.OpenAI), Anthropic: up(c.Anthropic), Google: up(c.Google),
		Catalog: c.Catalog, DefaultMaxTokens: c.DefaultMaxTokens, MaxRequestBytes: c.MaxRequestBytes,
		Logger: log, Now: now,
	}
}

// mcpHandlers builds one streamable-HTTP gateway per configured upstream.
// Each is its own endpoint, whose client sees its tools alone: tool names
// two of them share are no one's shadowing. Their clients hold agent
// tokens, so no call is approved through elicitation there: tickets go to
// approvers.
func (s *Stack) mcpHandlers(identify mcp.Identify) (map[string]*mcp.HTTPHandler, error) {
	cfg := s.Config
	out := map[string]*mcp.HTTPHandler{}
	if len(cfg.MCP.Servers) == 0 {
		return out, nil
	}
	pins, err := s.openPins()
	if err != nil {
		return nil, fmt.Errorf("mcp lock %s: %w", cfg.MCP.Lock, err)
	}
	names := make([]string, 0, len(cfg.MCP.Servers))
	for n := range cfg.MCP.Servers {
		names = append(names, n)
	}
	sort.Strings(names)
	closeAll := func() {
		for _, h := range out {
			h.Close()
		}
	}
	for _, name := range names {
		up := cfg.MCP.Servers[name]
		var dial mcp.Dialer
		if up.URL != "" {
			dial = wire.URL(up.URL, nil)
		} else {
			env := os.Environ()
			for k, v := range up.Env {
				env = append(env, k+"="+v)
			}
			if dial, err = wire.Command(up.Command, env, os.Stderr); err != nil {
				closeAll()
				return nil, fmt.Errorf("mcp server %s: %w", name, err)
			}
		}
		g, err := mcp.New(mcp.Config{
			Server: name, Dial: dial, Decider: s.Engine, Recorder: s.Audit, Detector: pin.Detectors(), Pins: pins, Kill: s.Kill,
			TrustOnFirstUse: cfg.MCP.TrustOnFirstUse, RedactResults: true, Logger: s.log,
			MaxMessageBytes: cfg.MCP.MaxMessageBytes, ReadTimeout: cfg.MCP.ReadTimeout,
			SessionIdleTimeout: cfg.MCP.SessionIdleTimeout, MaxSessionsPerAgent: cfg.MCP.MaxSessionsPerAgent,
			RelistInterval: cfg.MCP.RelistInterval,
			Now:            s.clock, Observer: s.Metrics, Resource: protectedResource(cfg.MCP.Authorization, name), Alert: s.MCPAlert,
			Tracer: s.tracer, Chaos: s.mcpChaos(),
		})
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("mcp server %s: %w", name, err)
		}
		// The handler's sessions outlive requests; they end when the front
		// shuts the handler down.
		out[name] = g.HTTPHandler(context.Background(), identify)
	}
	return out, nil
}

// The engine hears of calls to quarantined tools, which lower trust.
var _ mcp.QuarantineObserver = (*govern.Engine)(nil)

// Run serves until ctx ends, then stops: it takes no new connection,
// lets the requests in flight and the MCP calls they started finish and
// record their results, within the grace period, and closes the MCP
// sessions with their upstreams.
func (h *HTTP) Run(ctx context.Context) error {
	hs := &http.Server{
		Handler:           h.Server.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(h.ln) }()
	var serveErr error
	select {
	case serveErr = <-errc:
	case <-ctx.Done():
	}
	gctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), h.grace)
	defer cancel()
	// Side by side: the HTTP server waits for its handlers, the gateways
	// for the calls in flight (and then end their sessions, which ends
	// their event streams, which the HTTP server waits for too).
	var wg sync.WaitGroup
	errs := make([]error, len(h.mcp)+1)
	wg.Go(func() { errs[0] = hs.Shutdown(gctx) })
	for i, m := range h.mcp {
		wg.Go(func() { errs[i+1] = m.Shutdown(gctx) })
	}
	wg.Wait()
	if serveErr == nil {
		serveErr = <-errc
	}
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return serveErr
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("shut down within %v: %w", h.grace, err)
	}
	return nil
}

// adminToken returns the data directory's admin token, and whether it is
// saved there already; a new one is made (not saved) when there is none.
func adminToken(dir string) (tok string, saved bool, err error) {
	b, err := os.ReadFile(filepath.Join(dir, server.AdminTokenFile))
	if err == nil {
		if tok = strings.TrimSpace(string(b)); tok == "" {
			return "", false, fmt.Errorf("admin token: %s is empty", filepath.Join(dir, server.AdminTokenFile))
		}
		return tok, true, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", false, fmt.Errorf("admin token: %w", err)
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", false, fmt.Errorf("admin token: %w", err)
	}
	return "agt_" + base64.RawURLEncoding.EncodeToString(raw[:]), false, nil
}

// saveAdminToken writes a new admin token, mode 0600; it never replaces
// one.
func saveAdminToken(dir, tok string) (string, error) {
	path := filepath.Join(dir, server.AdminTokenFile)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("admin token: %w", err)
	}
	if _, err := f.WriteString(tok + "\n"); err != nil {
		f.Close()
		return "", fmt.Errorf("admin token: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("admin token: %w", err)
	}
	return path, nil
}

// protectedResource is the OAuth face of /mcp/{name}, or nil when
// mcp.authorization is not configured.
func protectedResource(a *config.MCPAuthorization, name string) *mcp.ProtectedResource {
	if a == nil {
		return nil
	}
	path := "/mcp/" + name
	return &mcp.ProtectedResource{
		Resource:             a.Resource(path),
		MetadataURL:          a.Resource(mcp.WellKnownPrefix + path),
		AuthorizationServers: a.AuthorizationServers,
		Scopes:               a.Scopes,
		// A token of the authorization servers, once the server's
		// authentication accepted it, must also be bound to this endpoint.
		Grant: mcp.IssuerGrant(a.AuthorizationServers),
	}
}
