// Package stack assembles agentgov as one application: the store, the audit
// log and its key, the kill switch, budgets, sessions, approvals and the
// engine over them, and the fronts that take requests (the HTTP server
// with its MCP gateways and model proxy, or a stdio MCP gateway). `agentgov
// serve`, `agentgov mcp run` and the tests build it here, so that each
// gets every piece and none is wired twice.
//
// Run runs the parts as one group, the way SPIRE's server does: the first
// to fail stops the rest, and they stop in the reverse of the order they
// were built. The fronts stop taking requests and finish the ones they
// took, within a bounded grace period, while the audit writer still runs;
// then the background loops stop, the audit writer last, after its final
// append; then the store is closed.
package stack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/sync/errgroup"

	"github.com/agentgov/agentgov/anomaly"
	"github.com/agentgov/agentgov/approval"
	"github.com/agentgov/agentgov/audit"
	"github.com/agentgov/agentgov/budget"
	"github.com/agentgov/agentgov/calltrace"
	"github.com/agentgov/agentgov/chaos"
	"github.com/agentgov/agentgov/config"
	"github.com/agentgov/agentgov/govern"
	"github.com/agentgov/agentgov/identity"
	"github.com/agentgov/agentgov/killswitch"
	"github.com/agentgov/agentgov/metrics"
	"github.com/agentgov/agentgov/models"
	"github.com/agentgov/agentgov/policies"
	"github.com/agentgov/agentgov/policy"
	"github.com/agentgov/agentgov/provenance"
	"github.com/agentgov/agentgov/server"
	"github.com/agentgov/agentgov/session"
	"github.com/agentgov/agentgov/sre"
	"github.com/agentgov/agentgov/store"
	"github.com/agentgov/agentgov/store/postgres"
	"github.com/agentgov/agentgov/store/sqlite"
	"github.com/agentgov/agentgov/trust"
)

// AuditOrigin names the log in its signed checkpoints.
const AuditOrigin = "agentgov-audit"

// DefaultGrace is how long the fronts get, once asked to stop, to finish
// the requests they took.
const DefaultGrace = 10 * time.Second

// approvalExpiryEvery is how often tickets past their timeout are expired.
const approvalExpiryEvery = time.Minute

// Store is everything the stack keeps its state in, as the packages that
// use it declare it. openStore is the one place a backend is chosen.
type Store interface {
	audit.Store
	killswitch.Store
	budget.Store
	session.Store
	approval.Store
	trust.Store
	govern.OutcomeLedger
	identity.Store
	server.Idempotency
	server.Decisions
	server.Pinger
	io.Closer
}

var (
	_ Store         = (*sqlite.DB)(nil)
	_ Store         = (*postgres.DB)(nil)
	_ store.Watcher = (*postgres.DB)(nil)
)

// openStore opens the store the configuration names: SQLite in the data
// directory, one process; or the PostgreSQL database of store:, shared by
// several replicas, where this one keeps its audit log under its replica
// id, verified by verifier (recorded in the database at its first start).
func openStore(ctx context.Context, cfg *config.Config, verifier note.Verifier, log *slog.Logger) (Store, error) {
	if cfg.Store == "" {
		return sqlite.OpenDir(ctx, cfg.Data)
	}
	id, err := cfg.ReplicaID()
	if err != nil {
		return nil, err
	}
	vkey, err := verifierKey(cfg)
	if err != nil {
		return nil, err
	}
	p := cfg.StorePool
	return postgres.Open(ctx, cfg.Store, postgres.Options{
		Replica: id, AuditKey: vkey, Logger: log,
		MaxConns: p.MaxConns, MinConns: p.MinConns, ConnectTimeout: p.ConnectTimeout,
		MaxConnLifetime: p.MaxConnLifetime, MaxConnIdleTime: p.MaxConnIdleTime,
	})
}

// Options are what a caller may set beyond the configuration.
type Options struct {
	// Logger receives the stack's log; slog.Default() when nil.
	Logger *slog.Logger
	// Grace bounds how long the fronts may take to finish the requests they
	// took once asked to stop; DefaultGrace when 0.
	Grace time.Duration
	// Clock is the clock of the engine and the stores; time.Now when nil.
	Clock func() time.Time
	// Notify receives the engine's notices (kill switches, reloads, budget
	// thresholds); they are logged at warn when nil.
	Notify func(context.Context, govern.Notice)
	// SLOEvaluateEvery is how often the SLOs' page alerts are checked;
	// sre.EvaluateEvery when 0.
	SLOEvaluateEvery time.Duration
}

// Stack is agentgov's parts, built and ready to Run.
type Stack struct {
	Config    *config.Config
	Audit     *audit.Log
	Kill      *killswitch.Switchboard
	Budgets   *budget.Budgets
	Sessions  *session.Sessions
	Approvals *approval.Approvals
	// Trust keeps agents' trust scores and rings.
	Trust  *trust.Keeper
	Engine *govern.Engine
	Models *models.Catalog
	// Identity verifies agents' credentials and keeps the registry.
	Identity *identity.Verifier
	// Provenance is the per-session ledger of content and its sources.
	Provenance *provenance.Ledger
	// Metrics is told of what every part does, and served at /metrics.
	Metrics *metrics.Metrics
	// Reliability keeps the SLOs and circuit breakers; nil when none is
	// configured.
	Reliability *sre.Monitor
	// Incidents are opened by circuits, SLO pages and kill switches.
	Incidents *sre.Incidents
	// tracer traces the calls the gateways and the proxy forward; nil
	// without telemetry.otlp.
	tracer calltrace.Tracer
	// Anomaly compares each agent with its own history; nil when
	// anomaly.disabled.
	Anomaly *anomaly.Detector
	// Chaos injects the faults of the chaos experiments; nil when none is
	// configured.
	Chaos *chaos.Injector

	// LoadPolicy reads the policy set from its source again.
	LoadPolicy func() (*policy.Set, error)
	// LoadShadow reads the shadow policy set from its source again; nil
	// without policies_shadow.
	LoadShadow func() (*policy.Set, error)

	store Store
	// watcher is the store's change feed when several processes share it.
	watcher store.Watcher
	log     *slog.Logger
	grace   time.Duration
	clock   func() time.Time
	// sloEvery is how often the SLOs are evaluated (Options).
	sloEvery time.Duration

	// loops are the background parts, in the order they were built; they
	// stop in the reverse order, the audit writer last.
	loops []loop
	// starting runs once the loops run and before the fronts do: records
	// that a start really happened (a start that fails before them leaves
	// no trace of itself).
	starting []func(ctx context.Context) error

	// closers end what the fronts set up (the MCP gateways' sessions),
	// before the store closes, for a stack whose fronts never ran.
	closers []func() error

	// notify passes a notice to the alert channels, the incidents and the
	// log.
	notify func(context.Context, govern.Notice)

	closeOnce sync.Once
	closeErr  error
	ran       bool
}

// loop is a background part: it runs until its context ends. Returning
// before that, with an error or without, is a failure that stops the
// whole stack.
type loop struct {
	name string
	run  func(ctx context.Context) error
}

// PolicySource returns the loader of the policy set at path, or of the
// built-in pack when path is empty.
func PolicySource(path string) func() (*policy.Set, error) {
	if path == "" {
		return policies.Builtin
	}
	return func() (*policy.Set, error) { return policy.Load(path) }
}

// SourceName is how the audit log and the logs name a policy source.
func SourceName(path string) string {
	if path == "" {
		return "builtin"
	}
	return path
}

// Open builds the stack cfg describes: it loads the policy set, opens the
// store, the audit log and its key, the kill switch, the budgets, the
// sessions and the approvals, and the engine over them. It writes nothing
// to the audit log: that starts with Run. On error whatever was opened is
// closed again. cfg must be filled and validated.
func Open(ctx context.Context, cfg *config.Config, opt Options) (_ *Stack, err error) {
	s := &Stack{Config: cfg, log: opt.Logger, grace: opt.Grace, clock: opt.Clock, sloEvery: opt.SLOEvaluateEvery}
	if s.LoadPolicy, err = TrustedPolicySource(cfg, cfg.Policies); err != nil {
		return nil, err
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.grace == 0 {
		s.grace = DefaultGrace
	}
	if s.grace < 0 {
		return nil, fmt.Errorf("stack: negative grace period %v", s.grace)
	}
	if s.clock == nil {
		s.clock = time.Now
	}
	s.Metrics = metrics.New()
	notify := opt.Notify
	if notify == nil {
		notify = LimitNotices(func(ctx context.Context, n govern.Notice) {
			s.log.Warn("notice", "kind", n.Kind, "decision", n.Decision.String(), "agent", n.Agent, "severity", n.Severity, "message", n.Message, "fields", n.Fields)
		}, s.clock)
	}
	notify = s.canaryNotices(notify)
	// The policy first: a set that does not load starts nothing.
	set, err := s.LoadPolicy()
	if err != nil {
		return nil, err
	}
	s.Models = models.Shipped()
	if cfg.LLM.Catalog != "" {
		if s.Models, err = models.Load(cfg.LLM.Catalog); err != nil {
			return nil, err
		}
	}

	// The key before the store: a replica on a shared database records its
	// public half there when it first starts.
	signer, verifier, err := auditKey(cfg)
	if err != nil {
		return nil, err
	}
	if s.store, err = openStore(ctx, cfg, verifier, s.log); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			s.store.Close()
		}
	}()
	s.Audit, err = audit.Open(ctx, s.store, signer, verifier, audit.Options{
		CheckpointEvery: cfg.Audit.CheckpointEvery, CheckpointInterval: cfg.Audit.CheckpointInterval,
		CommitDelay: cfg.Audit.AuditCommitDelay(), Logger: s.log, Clock: s.clock, Observer: s.Metrics,
	})
	if err != nil {
		return nil, err
	}
	s.loops = append(s.loops, loop{"audit log writer", s.Audit.Run})
	if s.Kill, err = killswitch.New(ctx, s.store, s.clock); err != nil {
		return nil, err
	}
	if s.Budgets, err = budget.New(s.store, budget.Options{Clock: s.clock, Logger: s.log}); err != nil {
		return nil, err
	}
	s.loops = append(s.loops, loop{"budget reservations", s.Budgets.Run})
	s.Sessions = session.New(s.store, s.clock)
	s.Approvals = approval.New(s.store, s.clock, approval.MaxPendingPerAgent(s.Config.Approvals.MaxPendingPerAgent))
	if s.Trust, err = trust.New(ctx, trust.Options{Store: s.store, Config: cfg.Trust, Rings: cfg.Rings, Clock: s.clock, Logger: s.log}); err != nil {
		return nil, err
	}
	cat := s.Models
	// The provenance ledger is in memory: a restart empties it (DESIGN §8).
	s.Provenance = provenance.New(provenance.Config{MaxSessionBytes: cfg.Provenance.MaxSessionBytes,
		MaxTotalBytes: cfg.Provenance.MaxTotalBytes, MaxSessions: cfg.Provenance.MaxSessions})
	s.Metrics.WatchProvenance(s.Provenance.Stats)
	if notify, err = s.openAlerts(notify); err != nil {
		return nil, err
	}
	notify = s.incidentNotices(notify)
	s.notify = notify
	relOpts := s.openReliability(notify)
	s.openChaos()
	telOpts, err := s.openTelemetry(ctx)
	if err != nil {
		return nil, err
	}
	relOpts = append(relOpts, telOpts...)
	relOpts = append(relOpts, s.openAnomaly()...)
	delivery, err := s.deliveryOptions()
	if err != nil {
		return nil, err
	}
	s.Engine = govern.New(set, append(append(delivery,
		govern.WithProvenance(s.Provenance),
		govern.WithClock(s.clock),
		govern.WithAudit(s.Audit), govern.WithKillSwitch(s.Kill), govern.WithSessions(s.Sessions),
		govern.WithBudgets(s.Budgets), govern.WithApprovals(s.Approvals), govern.WithOutcomes(s.store),
		govern.WithTrust(s.Trust),
		govern.WithModelTier(func(model string) string {
			if m, ok := cat.Lookup(model); ok {
				return m.Tier
			}
			return ""
		}),
		govern.WithNotify(notify), govern.WithObserver(s.Metrics)), relOpts...)...)
	s.Trust.Bind(s.Engine.Change, s.trustFloor)
	s.Trust.OnDrop(func(ctx context.Context, d trust.Drop) {
		notify(ctx, govern.Notice{Kind: "trust_drop", Agent: d.Agent,
			Message: fmt.Sprintf("trust score of %s fell from %d (%s) to %d (%s)", d.Agent, d.FromScore, d.FromTier, d.ToScore, d.ToTier),
			Fields:  map[string]any{"from": d.FromScore, "to": d.ToScore, "from_tier": string(d.FromTier), "to_tier": string(d.ToTier)}})
	})
	s.loops = append(s.loops, loop{"trust scores", s.Trust.Run})
	if s.Identity, err = openIdentity(ctx, cfg, s.store, s.clock); err != nil {
		return nil, err
	}
	ringsFromRegistry(s.Trust, s.Identity.Registry())
	s.loops = append(s.loops, loop{"approval expiry", func(ctx context.Context) error {
		return s.Engine.RunApprovalExpiry(ctx, approvalExpiryEvery)
	}})
	// A store shared by several processes delivers their changes in a loop
	// of its own, to the parts that keep a copy of the state they change.
	if w, ok := s.store.(store.Watcher); ok {
		w.Watch(store.Kill, s.Kill.Reload)
		w.Watch(store.Sessions, s.Sessions.Reload)
		w.Watch(store.Budgets, s.Budgets.Reload)
		w.Watch(store.Trust, s.Trust.Reload)
		w.Watch(store.Agents, s.Identity.Registry().Reload)
		if err := s.Sessions.Reload(ctx); err != nil {
			return nil, err
		}
		s.watcher = w
		s.loops = append(s.loops, loop{"store", w.Run})
	}
	s.starting = append(s.starting, func(ctx context.Context) error {
		if _, err := s.Audit.Append(ctx, "policy_load", map[string]any{"digest": set.Digest(), "bundle": set.Bundle(), "source": SourceName(cfg.Policies), "event": "start"}); err != nil {
			return fmt.Errorf("audit log unavailable at start: %w", err)
		}
		return nil
	})
	return s, nil
}

// trustFloor engages the kill switch on an agent whose trust score fell
// below trust.kill_below, through the engine, so that it is audited.
func (s *Stack) trustFloor(ctx context.Context, agent, reason string) error {
	_, err := s.Engine.EngageKill(ctx, killswitch.Switch{Scope: killswitch.Agent, Target: agent, Reason: reason, By: "trust"})
	return err
}

// auditKey loads the log's signing key: from audit.key_file when it is
// set, else from the data directory, creating it on first start.
func auditKey(cfg *config.Config) (note.Signer, note.Verifier, error) {
	if cfg.Audit.KeyFile == "" {
		return audit.LoadOrCreateKey(cfg.Data, AuditOrigin)
	}
	return audit.LoadOrCreateKeyFile(cfg.Audit.KeyFile, audit.PubPath(cfg.Audit.KeyFile), AuditOrigin)
}

// verifierKey is the text of the audit log's public key, as a replica
// records it in a shared store.
func verifierKey(cfg *config.Config) (string, error) {
	pub := filepath.Join(cfg.Data, audit.PubFile)
	if cfg.Audit.KeyFile != "" {
		pub = audit.PubPath(cfg.Audit.KeyFile)
	}
	b, err := os.ReadFile(pub)
	if err != nil {
		return "", fmt.Errorf("audit key: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// Grace is the grace period fronts get to finish their requests.
func (s *Stack) Grace() time.Duration { return s.grace }

// Logger is the stack's log.
func (s *Stack) Logger() *slog.Logger { return s.log }

// OnStart adds f to what runs once the background loops run and before
// any front does; an error from it stops the stack before it serves.
func (s *Stack) OnStart(f func(ctx context.Context) error) {
	s.starting = append(s.starting, f)
}

// Front takes requests: the HTTP server, a stdio MCP gateway. Run serves
// until ctx ends, then stops taking requests, finishes the ones it took
// within its grace period, and returns. A front that returns before ctx
// ends (a stdio client that went away) ends the stack.
type Front interface {
	Run(ctx context.Context) error
}

// FrontFunc is a function as a Front.
type FrontFunc func(ctx context.Context) error

// Run calls f.
func (f FrontFunc) Run(ctx context.Context) error { return f(ctx) }

// errFrontEnded ends the front group when one front returns of its own
// accord: the others stop then too.
var errFrontEnded = errors.New("front ended")

// Run runs the background loops, then the start records, then the fronts,
// until ctx ends or a part fails; then it stops them in reverse order (see
// the package comment) and closes the store. It returns the first error:
// that of a failed part, not the stops it caused. A stack runs once.
func (s *Stack) Run(ctx context.Context, fronts ...Front) error {
	if s.ran {
		return errors.New("stack: Run called twice")
	}
	s.ran = true
	defer s.Close()

	// The loops outlive ctx: they stop only once the fronts have finished,
	// so that every request the fronts took is recorded.
	bgCtx, stopLoops := context.WithCancel(context.WithoutCancel(ctx))
	defer stopLoops()
	loops, loopsCtx := errgroup.WithContext(bgCtx)
	for _, l := range s.loops {
		loops.Go(func() error {
			err := l.run(loopsCtx)
			if loopsCtx.Err() != nil && (err == nil || errors.Is(err, context.Canceled)) {
				return nil // asked to stop
			}
			if err == nil {
				err = errors.New("stopped by itself")
			}
			return fmt.Errorf("%s: %w", l.name, err)
		})
	}

	// The fronts stop when ctx ends, or as soon as a loop fails: a server
	// whose audit writer died must not keep answering.
	frontCtx, stopFronts := context.WithCancel(ctx)
	defer stopFronts()
	unhook := context.AfterFunc(loopsCtx, stopFronts)
	defer unhook()

	var frontErr error
	for _, f := range s.starting {
		if frontErr = f(frontCtx); frontErr != nil {
			break
		}
	}
	if frontErr == nil && frontCtx.Err() == nil {
		g, gctx := errgroup.WithContext(frontCtx)
		for _, f := range fronts {
			g.Go(func() error {
				if err := f.Run(gctx); err != nil {
					return err
				}
				return errFrontEnded
			})
		}
		if frontErr = g.Wait(); errors.Is(frontErr, errFrontEnded) {
			frontErr = nil
		}
	}

	// Reverse order: the fronts are done; now the loops, the audit writer
	// committing what it was given and signing its final checkpoint.
	stopLoops()
	loopErr := loops.Wait()
	closeErr := s.Close()
	switch {
	case loopErr != nil:
		return loopErr
	case frontErr != nil:
		return frontErr
	case closeErr != nil:
		return fmt.Errorf("close store: %w", closeErr)
	}
	return nil
}

// Close closes the store. Run closes it when it returns; Close is for a
// stack that is never run (a start that failed after Open). It may be
// called more than once.
func (s *Stack) Close() error {
	s.closeOnce.Do(func() {
		for _, c := range s.closers {
			c()
		}
		s.closeErr = s.store.Close()
	})
	return s.closeErr
}
