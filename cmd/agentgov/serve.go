package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/agentgov/agentgov/approval"
	"github.com/agentgov/agentgov/audit"
	"github.com/agentgov/agentgov/budget"
	"github.com/agentgov/agentgov/config"
	"github.com/agentgov/agentgov/govern"
	"github.com/agentgov/agentgov/killswitch"
	"github.com/agentgov/agentgov/llmproxy"
	"github.com/agentgov/agentgov/models"
	"github.com/agentgov/agentgov/policies"
	"github.com/agentgov/agentgov/policy"
	"github.com/agentgov/agentgov/server"
	"github.com/agentgov/agentgov/session"
	"github.com/agentgov/agentgov/store/sqlite"
)

func init() {
	commands["serve"] = command{summary: "run the governance server (HTTP API, MCP gateway, model proxy)", run: runServe}
}

// auditOrigin names this log in its signed checkpoints.
const auditOrigin = "agentgov-audit"

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("serve", flag.ContinueOnError)
	fl.SetOutput(stderr)
	cfgPath := fl.String("config", "", "configuration file (default: ./agentgov.yaml when it exists)")
	pol := fl.String("policies", "", "policy file or directory (default: the built-in baseline pack)")
	data := fl.String("data", "", "data directory (default ./agentgov-data)")
	addr := fl.String("addr", "", "listen address (default 127.0.0.1:8420)")
	if err := fl.Parse(args); err != nil {
		return &exitError{code: 2}
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	if *pol != "" {
		cfg.Policies = *pol
	}
	if *data != "" {
		cfg.Data = *data
	}
	if *addr != "" {
		cfg.Addr = *addr
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	return serve(ctx, cfg, log, stdout)
}

func loadConfig(path string) (*config.Config, error) {
	if path == "" {
		if _, err := os.Stat("agentgov.yaml"); err == nil {
			path = "agentgov.yaml"
		}
	}
	if path == "" {
		c := &config.Config{}
		c.Fill()
		return c, nil
	}
	return config.Load(path)
}

// policySource returns the loader of the configured policy, or of the
// built-in pack.
func policySource(dir string) func() (*policy.Set, error) {
	if dir == "" {
		return policies.Builtin
	}
	return func() (*policy.Set, error) { return policy.Load(dir) }
}

func serve(ctx context.Context, cfg *config.Config, log *slog.Logger, stdout io.Writer) error {
	load := policySource(cfg.Policies)
	set, err := load()
	if err != nil {
		return loadErrors(stdout, err)
	}

	// The log and the stores outlive the HTTP server: they stop only after
	// it has answered its last request, so no decision loses its entry.
	bg, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBG()
	db, err := sqlite.OpenDir(bg, cfg.Data)
	if err != nil {
		return err
	}
	defer db.Close()
	signer, verifier, err := audit.LoadOrCreateKey(cfg.Data, auditOrigin)
	if err != nil {
		return err
	}
	alog, err := audit.Open(bg, db, signer, verifier, audit.Options{
		CheckpointEvery: cfg.Audit.CheckpointEvery, CheckpointInterval: cfg.Audit.CheckpointInterval,
		CommitDelay: cfg.Audit.AuditCommitDelay(), Logger: log,
	})
	if err != nil {
		return err
	}
	kill, err := killswitch.New(bg, db, time.Now)
	if err != nil {
		return err
	}
	budgets, err := budget.New(db, budget.Options{})
	if err != nil {
		return err
	}
	sessions := session.New(db, time.Now)
	approvals := approval.New(db, time.Now)
	cat := models.Shipped()
	if cfg.LLM.Catalog != "" {
		if cat, err = models.Load(cfg.LLM.Catalog); err != nil {
			return err
		}
	}

	eng := govern.New(set,
		govern.WithAudit(alog), govern.WithKillSwitch(kill), govern.WithSessions(sessions),
		govern.WithBudgets(budgets), govern.WithApprovals(approvals),
		govern.WithModelTier(func(model string) string {
			if m, ok := cat.Lookup(model); ok {
				return m.Tier
			}
			return ""
		}),
		govern.WithNotify(func(ctx context.Context, n govern.Notice) {
			log.Warn("notice", "kind", n.Kind, "decision", n.Decision.String(), "agent", n.Agent, "severity", n.Severity, "message", n.Message)
		}))

	var wg sync.WaitGroup
	var logErr, budgetErr error
	wg.Add(2)
	go func() { defer wg.Done(); logErr = alog.Run(bg) }()
	go func() { defer wg.Done(); budgetErr = budgets.Run(bg) }()
	defer func() { stopBG(); wg.Wait() }()

	if _, err := alog.Append(ctx, "policy_load", map[string]any{"digest": set.Digest(), "source": sourceName(cfg.Policies), "event": "start"}); err != nil {
		return fmt.Errorf("audit log unavailable at start: %w", err)
	}

	tok, created, err := server.EnsureAdminToken(cfg.Data)
	if err != nil {
		return err
	}
	if created {
		fmt.Fprintf(stdout, "admin token (shown once; also in %s/%s, mode 0600):\n  %s\n", cfg.Data, server.AdminTokenFile, tok)
	}
	srv, err := server.New(server.Options{
		Config: cfg, Engine: eng, Audit: alog, DB: db, Sessions: sessions, Kill: kill,
		Approvals: approvals, Budgets: budgets, LoadPolicy: load, Logger: log,
		ExtraTokens: []config.Token{{Name: "admin", Role: config.Admin, SHA256: server.HashToken(tok)}},
	})
	if err != nil {
		return err
	}
	llm, err := llmproxy.New(cfg.LLM, eng, cat, srv.Identify)
	if err != nil {
		return err
	}
	mcpHandlers, closeMCP, err := mcpServers(bg, cfg, approvingEngine{eng, approvals}, alog, srv.Identify, log)
	if err != nil {
		return err
	}
	defer closeMCP()
	srv.Mount(mcpHandlers, llm)

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return err
	}
	log.Info("agentgov serving", "addr", "http://"+ln.Addr().String(), "data", cfg.Data, "policy", sourceName(cfg.Policies), "digest", set.Digest())

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for range hup {
			if digest, err := srv.Reload(bg); err != nil {
				log.Error("policy reload refused; the previous set stays in force", "err", err)
			} else {
				log.Info("policy reloaded", "digest", digest)
			}
		}
	}()

	err = srv.Serve(ctx, ln, 10*time.Second)
	stopBG()
	wg.Wait()
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	if logErr != nil && !errors.Is(logErr, context.Canceled) {
		return fmt.Errorf("audit log: %w", logErr)
	}
	if budgetErr != nil && !errors.Is(budgetErr, context.Canceled) {
		return fmt.Errorf("budgets: %w", budgetErr)
	}
	log.Info("agentgov stopped")
	return nil
}

func sourceName(dir string) string {
	if dir == "" {
		return "builtin"
	}
	return dir
}
