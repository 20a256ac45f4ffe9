package stack

import (
	"context"
	"fmt"
	"net/url"
	"path/filepath"
	"slices"

	"github.com/agentgov/agentgov/config"
	"github.com/agentgov/agentgov/errcode"
	"github.com/agentgov/agentgov/mcp"
	"github.com/agentgov/agentgov/server"
)

// mcpReview is the server's view of the MCP gateways (server.MCPServers):
// their pins and drift, and re-pins. The gateways are built after the
// server, which authenticates their callers, so they are added once built.
type mcpReview struct {
	servers  map[string]config.MCPServer
	gateways map[string]*mcp.Gateway
}

var _ server.MCPServers = (*mcpReview)(nil)

func newMCPReview(cfg *config.Config) *mcpReview {
	return &mcpReview{servers: cfg.MCP.Servers, gateways: map[string]*mcp.Gateway{}}
}

func (m *mcpReview) MCPServers(ctx context.Context) []server.MCPServer {
	names := make([]string, 0, len(m.servers))
	for n := range m.servers {
		names = append(names, n)
	}
	slices.Sort(names)
	out := make([]server.MCPServer, 0, len(names))
	for _, n := range names {
		up := m.servers[n]
		s := server.MCPServer{Name: n, Transport: "stdio", Tools: []server.MCPTool{}}
		if up.URL != "" {
			s.Transport, s.Upstream = "http", safeURL(up.URL)
		} else if len(up.Command) > 0 {
			s.Upstream = filepath.Base(up.Command[0])
		}
		g := m.gateways[n]
		if g == nil {
			out = append(out, s)
			continue
		}
		rv := g.Review()
		s.Lock, s.Signed, s.ListedAt, s.Drift, s.Quarantined = rv.Lock, rv.Signed, rv.ListedAt, rv.Drift, rv.Quarantined
		for _, t := range rv.Tools {
			tool := server.MCPTool{Name: t.Name, State: t.State, PinnedDigest: t.PinnedDigest, CurrentDigest: t.CurrentDigest, Quarantine: t.Quarantine}
			for _, c := range t.Changes {
				tool.Changes = append(tool.Changes, server.MCPChange{Level: string(c.Level), What: c.What})
			}
			for _, l := range t.Diff {
				tool.Diff = append(tool.Diff, server.MCPDiffLine{Op: l.Op, Text: l.Text})
			}
			s.Tools = append(s.Tools, tool)
		}
		out = append(out, s)
	}
	return out
}

func (m *mcpReview) Repin(ctx context.Context, name string, req server.MCPRepin) (server.MCPRepinned, error) {
	g := m.gateways[name]
	if g == nil {
		return server.MCPRepinned{}, errcode.New(errcode.NotFound, fmt.Sprintf("no MCP server %q", name))
	}
	r, err := g.Repin(ctx, mcp.RepinRequest{Tool: req.Tool, By: req.By, Reason: req.Reason, Digest: req.Digest})
	if err != nil {
		return server.MCPRepinned{}, err
	}
	return server.MCPRepinned{Server: r.Server, Tool: r.Tool, OldDigest: r.OldDigest, NewDigest: r.NewDigest, Lock: r.Lock, By: req.By}, nil
}

// safeURL is a URL without its user information, query or fragment, which
// may carry credentials.
func safeURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unreadable URL)"
	}
	return (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String()
}
