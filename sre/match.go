package sre

import (
	"strings"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/policy"
)

// globs are patterns as policies write them, "*" alone matching anything
// without a scan.
type globs []string

func (g globs) match(s string) bool {
	for _, p := range g {
		if p == "*" || policy.Glob(p, s) {
			return true
		}
	}
	return false
}

// toolGlob is a `tools` entry, "name" or "server/name", split once.
type toolGlob struct {
	server, name string
	hasServer    bool
}

// matcher is a Match compiled once.
type matcher struct {
	agents, servers, models globs
	tools                   []toolGlob
}

func compile(m Match) matcher {
	c := matcher{agents: m.Agents, servers: m.Servers, models: m.Models}
	for _, t := range m.Tools {
		srv, name, ok := strings.Cut(t, "/")
		if !ok {
			name = t
		}
		c.tools = append(c.tools, toolGlob{server: srv, name: name, hasServer: ok})
	}
	return c
}

func (m *matcher) tool(c *action.Call) bool {
	if c.Tool == "" {
		return false
	}
	for _, t := range m.tools {
		if t.hasServer && t.server != "*" && !policy.Glob(t.server, c.Server) {
			continue
		}
		if t.name == "*" || policy.Glob(t.name, c.Tool) {
			return true
		}
	}
	return false
}

// covers reports whether an SLO's match covers c: every field given
// matches.
func (m *matcher) covers(c *action.Call) bool {
	if len(m.agents) > 0 && !m.agents.match(c.Agent) {
		return false
	}
	if len(m.tools) > 0 && !m.tool(c) {
		return false
	}
	if len(m.servers) > 0 && (c.Server == "" || !m.servers.match(c.Server)) {
		return false
	}
	if len(m.models) > 0 && (c.Model == "" || !m.models.match(c.Model)) {
		return false
	}
	return true
}

// key is the circuit a breaker keeps for c, if it guards c: per tool when
// its tools match, else per server, else per model.
func (m *matcher) key(c *action.Call) (circuitKey, bool) {
	switch {
	case len(m.tools) > 0 && m.tool(c):
		return circuitKey{kind: 't', a: c.Server, b: c.Tool}, true
	case len(m.servers) > 0 && c.Server != "" && m.servers.match(c.Server):
		return circuitKey{kind: 's', a: c.Server}, true
	case len(m.models) > 0 && c.Model != "" && m.models.match(c.Model):
		return circuitKey{kind: 'm', a: c.Model}, true
	}
	return circuitKey{}, false
}
