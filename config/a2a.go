package config

import (
	"fmt"
	"net/url"
	"slices"
	"time"

	"github.com/agentgov/agentgov/a2agateway"
)

// A2A configures the A2A gateway: each agent under agents is served at
// /a2a/{name} (docs/a2a.md), with the bounds below.
type A2A struct {
	Agents map[string]A2AAgent `yaml:"agents"`
	// MaxMessageBytes bounds one request body from a caller (absent or 0:
	// 4 MiB).
	MaxMessageBytes int64 `yaml:"max_message_bytes"`
	// MaxReplyBytes bounds one upstream answer, or one event of its
	// stream (absent or 0: 16 MiB).
	MaxReplyBytes int64 `yaml:"max_reply_bytes"`
	// MaxArtifactBytes bounds one artifact, all its chunks together
	// (absent or 0: 8 MiB).
	MaxArtifactBytes int64 `yaml:"max_artifact_bytes"`
	// MaxFileBytes bounds the inline bytes of one file part, decoded
	// (absent or 0: 4 MiB).
	MaxFileBytes int64 `yaml:"max_file_bytes"`
	// Timeout bounds one non-streamed request to an upstream (absent or
	// 0: 5m).
	Timeout time.Duration `yaml:"timeout"`
	// MaxStreamEvents bounds the events of one upstream stream (absent or
	// 0: 10000).
	MaxStreamEvents int `yaml:"max_stream_events"`
}

// A2AAgent is one upstream agent.
type A2AAgent struct {
	// URL is the agent's base URL: its JSON-RPC endpoint, under which its
	// card is at /.well-known/agent-card.json.
	URL string `yaml:"url"`
	// Trust is what policies read as target.trust: a trust tier.
	Trust string `yaml:"trust"`
	// Labels are target.labels.
	Labels map[string]string `yaml:"labels"`
	// TokenEnv names the environment variable holding a bearer token the
	// gateway sends the agent.
	TokenEnv string `yaml:"token_env"`
}

// TrustTiers are the values of a2a.agents.NAME.trust, most trusted first
// (the tiers of DESIGN §9).
var TrustTiers = []string{"verified", "trusted", "standard", "probationary", "untrusted"}

// Bounds of the a2a: keys.
const (
	minA2ABytes   = 1 << 10
	maxA2ABytes   = 256 << 20
	maxA2ATimeout = time.Hour
	// maxA2AStreamEvents: each event is decided and audited.
	maxA2AStreamEvents = 1_000_000
)

func (c *Config) fillA2A() {
	a := &c.A2A
	if a.MaxMessageBytes == 0 {
		a.MaxMessageBytes = a2agateway.DefaultMaxMessageBytes
	}
	if a.MaxReplyBytes == 0 {
		a.MaxReplyBytes = a2agateway.DefaultMaxReplyBytes
	}
	if a.MaxArtifactBytes == 0 {
		a.MaxArtifactBytes = a2agateway.DefaultMaxArtifactBytes
	}
	if a.MaxFileBytes == 0 {
		a.MaxFileBytes = a2agateway.DefaultMaxFileBytes
	}
	if a.Timeout == 0 {
		a.Timeout = a2agateway.DefaultTimeout
	}
	if a.MaxStreamEvents == 0 {
		a.MaxStreamEvents = a2agateway.DefaultMaxStreamEvents
	}
	for name, ag := range a.Agents {
		if ag.Trust == "" {
			// The most suspicious tier: a rule granting something to
			// trusted targets grants nothing to one nobody vouched for.
			ag.Trust = "untrusted"
			a.Agents[name] = ag
		}
	}
}

func (c *Config) validateA2A() error {
	bad := func(key, format string, args ...any) error {
		return &Error{Key: key, Msg: fmt.Sprintf(format, args...)}
	}
	a := c.A2A
	for _, b := range []struct {
		key string
		v   int64
	}{{"a2a.max_message_bytes", a.MaxMessageBytes}, {"a2a.max_reply_bytes", a.MaxReplyBytes}, {"a2a.max_artifact_bytes", a.MaxArtifactBytes}, {"a2a.max_file_bytes", a.MaxFileBytes}} {
		if b.v < minA2ABytes || b.v > maxA2ABytes {
			return bad(b.key, "want %d to %d bytes, got %d", minA2ABytes, maxA2ABytes, b.v)
		}
	}
	if a.Timeout < time.Second || a.Timeout > maxA2ATimeout {
		return bad("a2a.timeout", "want a duration from 1s to %v, got %v", maxA2ATimeout, a.Timeout)
	}
	if a.MaxStreamEvents < 1 || a.MaxStreamEvents > maxA2AStreamEvents {
		return bad("a2a.max_stream_events", "want 1 to %d, got %d", maxA2AStreamEvents, a.MaxStreamEvents)
	}
	for name, ag := range a.Agents {
		key := "a2a.agents." + name
		if !serverName.MatchString(name) {
			return bad(key, "agent names use lowercase letters, digits, - and _")
		}
		if ag.URL == "" {
			return bad(key+".url", "missing: the agent's base URL")
		}
		if u, err := url.Parse(ag.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
			return bad(key+".url", "want an absolute http or https URL without credentials, got %q", ag.URL)
		}
		if !slices.Contains(TrustTiers, ag.Trust) {
			return bad(key+".trust", "want one of verified, trusted, standard, probationary or untrusted, got %q", ag.Trust)
		}
	}
	return nil
}
