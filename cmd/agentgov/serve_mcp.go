package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sort"

	"github.com/agentgov/agentgov/config"
	"github.com/agentgov/agentgov/mcp"
)

// mcpServers builds one streamable-HTTP gateway per configured upstream,
// sharing one registry so that each sees the others' tool names.
func mcpServers(ctx context.Context, cfg *config.Config, d mcp.Decider, rec mcp.Recorder, identify mcp.Identify, log *slog.Logger) (map[string]http.Handler, func(), error) {
	out := map[string]http.Handler{}
	var closers []func() error
	closeAll := func() {
		for _, c := range closers {
			_ = c()
		}
	}
	if len(cfg.MCP.Servers) == 0 {
		return out, closeAll, nil
	}
	pins, err := mcp.OpenPins(cfg.MCP.Lock)
	if err != nil {
		return nil, nil, fmt.Errorf("mcp lock %s: %w", cfg.MCP.Lock, err)
	}
	reg := mcp.NewRegistry()
	names := make([]string, 0, len(cfg.MCP.Servers))
	for n := range cfg.MCP.Servers {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		up := cfg.MCP.Servers[name]
		var dial mcp.Dialer
		if up.URL != "" {
			dial = mcp.URL(up.URL, nil)
		} else {
			env := os.Environ()
			for k, v := range up.Env {
				env = append(env, k+"="+v)
			}
			if dial, err = mcp.Command(up.Command, env, os.Stderr); err != nil {
				closeAll()
				return nil, nil, fmt.Errorf("mcp server %s: %w", name, err)
			}
		}
		g, err := mcp.New(mcp.Config{
			Server: name, Dial: dial, Decider: d, Recorder: rec, Detector: mcp.Detectors(), Pins: pins,
			TrustOnFirstUse: cfg.MCP.TrustOnFirstUse, Registry: reg, RedactResults: true, ElicitApprovals: true, Logger: log,
		})
		if err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("mcp server %s: %w", name, err)
		}
		h := g.HTTPHandler(ctx, identify)
		closers = append(closers, h.Close)
		out[name] = h
	}
	return out, closeAll, nil
}
