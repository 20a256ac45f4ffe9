package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/agentgov/agentgov/config"
	"github.com/agentgov/agentgov/policy"
	"github.com/agentgov/agentgov/stack"
)

func init() {
	register(&command{
		name:    "serve",
		summary: "run the governance server (HTTP API, MCP gateway, model proxy)",
		usage:   "[--config FILE] [--policies PATH] [--data DIR] [--store DSN] [--addr HOST:PORT] [--log-format text|json] [--log-level LEVEL]",
		help: `With no flags: data in ./agentgov-data, the built-in policy pack, 127.0.0.1:8420, and an
admin token made on first start, printed once and kept (mode 0600) in the data directory.
Flags override the configuration file (docs/cli.md lists its keys). SIGHUP reloads the
policies; SIGINT or SIGTERM stops the server, after the requests in flight have finished.

Examples:
  agentgov serve
  agentgov serve --config agentgov.yaml --policies ./policies --addr 0.0.0.0:8420
  agentgov serve --store postgres://agentgov@db:5432/agentgov --addr 0.0.0.0:8420`,
		setup: func(fs *flag.FlagSet) runner {
			cfgPath := fs.String("config", "", "configuration `FILE` (default: ./agentgov.yaml when it exists)")
			pol := fs.String("policies", "", "policy file, directory or bundle (.tar.gz) `PATH` (default: the built-in baseline pack)")
			data := fs.String("data", "", "data `DIR` (default ./agentgov-data)")
			addr := fs.String("addr", "", "listen address `HOST:PORT` (default 127.0.0.1:8420)")
			logf := addLogFlags(fs)
			storeDSN := fs.String("store", "", "PostgreSQL `DSN` shared by several replicas (default: SQLite in the data directory); docs/deployment.md")
			return func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
				if len(args) > 0 {
					return flagError("serve takes no arguments, got %q", args)
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
				if *storeDSN != "" {
					cfg.Store = *storeDSN
				}
				logf.apply(&cfg.Log)
				if err := cfg.Validate(); err != nil {
					return err
				}
				log, err := newLogger(cfg.Log.Format, cfg.Log.Level, stderr)
				if err != nil {
					return err
				}
				return serve(ctx, cfg, log, stdout)
			}
		},
	})
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

// serve runs the server until ctx ends. The port is taken first: a start
// that fails there leaves no trace (no data directory, no admin token, no
// audit entry). Nothing is written until the stack runs, and the admin
// token is shown only once the start is recorded.
func serve(ctx context.Context, cfg *config.Config, log *slog.Logger, stdout io.Writer) error {
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	defer ln.Close()
	st, err := stack.Open(ctx, cfg, stack.Options{Logger: log, Notify: stack.LimitNotices(logNotice(log), nil)})
	if err != nil {
		var el policy.ErrorList
		if errors.As(err, &el) {
			return loadErrors(stdout, err)
		}
		return err
	}
	front, err := st.HTTP(ln, stack.HTTPOptions{
		AdminToken: true,
		OnAdminToken: func(tok, path string) {
			fmt.Fprintf(stdout, "admin token (shown once; also in %s, mode 0600):\n  %s\n", path, tok)
		},
	})
	if err != nil {
		st.Close()
		return err
	}
	st.OnStart(func(context.Context) error {
		log.Info("agentgov serving", "addr", "http://"+ln.Addr().String(), "data", cfg.Data, "policy", stack.SourceName(cfg.Policies), "digest", st.Engine.Policy().Digest())
		return nil
	})
	err = st.Run(ctx, front, stack.FrontFunc(func(ctx context.Context) error {
		return reloadOnHUP(ctx, front, log)
	}))
	if err != nil {
		return err
	}
	log.Info("agentgov stopped")
	return nil
}

// reloadOnHUP reloads the policy set on every SIGHUP until ctx ends; a set
// that does not load leaves the one in force.
func reloadOnHUP(ctx context.Context, front *stack.HTTP, log *slog.Logger) error {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-hup:
			// Reload logs a refusal, and the engine's notice the new set.
			_, _ = front.Server.Reload(ctx)
		}
	}
}
