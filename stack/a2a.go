package stack

import (
	"fmt"
	"net/http"
	"os"
	"sort"

	"github.com/agentgov/agentgov/a2agateway"
)

// a2aHandlers builds one A2A gateway per agent of cfg.A2A.Agents, served
// at /a2a/{name}. Its callers hold agent tokens (identify), as on /mcp.
func (s *Stack) a2aHandlers(identify a2agateway.Identify) (map[string]http.Handler, error) {
	cfg := s.Config.A2A
	out := map[string]http.Handler{}
	names := make([]string, 0, len(cfg.Agents))
	for n := range cfg.Agents {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		ag := cfg.Agents[name]
		token := ""
		if ag.TokenEnv != "" {
			if token = os.Getenv(ag.TokenEnv); token == "" {
				return nil, fmt.Errorf("a2a.agents.%s.token_env: the environment variable %s is empty or unset", name, ag.TokenEnv)
			}
		}
		g, err := a2agateway.New(a2agateway.Config{
			Name: name, URL: ag.URL, Trust: ag.Trust, Labels: ag.Labels, Token: token,
			Decider: s.Engine, Identify: identify, Recorder: s.Audit, Kill: s.Kill, Observer: s.Metrics,
			MaxMessageBytes: cfg.MaxMessageBytes, MaxReplyBytes: cfg.MaxReplyBytes,
			MaxArtifactBytes: cfg.MaxArtifactBytes, MaxFileBytes: cfg.MaxFileBytes, Timeout: cfg.Timeout,
			MaxStreamEvents: cfg.MaxStreamEvents,
			Now:             s.clock, Logger: s.log, Tracer: s.tracer,
		})
		if err != nil {
			return nil, fmt.Errorf("a2a agent %s: %w", name, err)
		}
		out[name] = g.Handler("/a2a/" + name)
	}
	return out, nil
}
