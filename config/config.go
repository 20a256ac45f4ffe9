// Package config reads agentgov.yaml, the server's configuration. Loading
// is two steps, as Caddy does it: decode strictly (unknown keys are errors
// with their line), then fill defaults and validate every value, naming the
// key at fault. Flags override the file afterwards, in cmd.
package config

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/alert"
	"github.com/agentgov/agentgov/anomaly"
	"github.com/agentgov/agentgov/chaos"
	"github.com/agentgov/agentgov/mcp"
	"github.com/agentgov/agentgov/sre"
	"github.com/agentgov/agentgov/trust"
)

// Config is agentgov.yaml. Every key is optional.
type Config struct {
	Addr     string `yaml:"addr"`
	Data     string `yaml:"data"`
	Policies string `yaml:"policies"`
	// Store is empty for SQLite in Data (one process), or the URL of the
	// PostgreSQL database several replicas share (see config/store.go and
	// docs/deployment.md); Replica and StorePool go with it.
	Store          string    `yaml:"store"`
	Replica        string    `yaml:"replica"`
	StorePool      StorePool `yaml:"store_pool"`
	Tokens         []Token   `yaml:"tokens"`
	AllowedOrigins []string  `yaml:"allowed_origins"`
	Audit          Audit     `yaml:"audit"`
	MCP            MCP       `yaml:"mcp"`
	LLM            LLM       `yaml:"llm"`
	A2A            A2A       `yaml:"a2a"`
	// MaxBodyBytes bounds a request body on the /v1 API.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// BodyReadTimeout bounds how long a request body may take to arrive,
	// on every path (the API, the MCP gateway, the model proxy). It does
	// not bound the answer: event streams and streamed model answers last
	// as long as they need. Default 30s.
	BodyReadTimeout time.Duration `yaml:"body_read_timeout"`
	// Log sets the server's log; --log-format and --log-level override it.
	Log Log `yaml:"log"`
	// Provenance bounds the per-session provenance ledger.
	Provenance Provenance `yaml:"provenance"`
	// Approvals bounds the approval queue.
	Approvals Approvals `yaml:"approvals"`
	// Policy delivery and training governance (config/delivery.go).
	PolicyTrust    PolicyTrust `yaml:"policy_trust"`
	PoliciesShadow string      `yaml:"policies_shadow"`
	Canary         *Canary     `yaml:"canary"`
	Reward         Reward      `yaml:"reward"`
	// SLOs and Breakers are reliability engineering (config/reliability.go,
	// docs/reliability.md).
	SLOs     []sre.SLO     `yaml:"slos"`
	Breakers []sre.Breaker `yaml:"breakers"`
	// Alerts are the channels operators hear from (docs/reliability.md).
	Alerts alert.Config `yaml:"alerts"`
	// Telemetry exports traces over OTLP (config/telemetry.go).
	Telemetry Telemetry `yaml:"telemetry"`
	// Identity configures the credentials beyond static tokens (see
	// config/identity.go and docs/identity.md).
	Identity Identity `yaml:"identity"`
	// Trust moves agents' trust scores (docs/trust.md); Rings are the
	// capability profiles bound to their tiers.
	Trust trust.Config `yaml:"trust"`
	Rings trust.Rings  `yaml:"rings"`
	// Anomaly compares each agent with its own history
	// (config/anomaly.go, docs/reliability.md).
	Anomaly anomaly.Config `yaml:"anomaly"`
	// Console configures the web console at /ui (docs/console.md).
	Console Console `yaml:"console"`
	// Chaos are fault-injection experiments in the MCP gateway and the
	// model proxy (config/chaos.go, docs/chaos.md).
	Chaos []chaos.Experiment `yaml:"chaos"`
}

// Console configures the web console at /ui.
type Console struct {
	// Disabled turns the console off: /ui answers 404.
	Disabled bool `yaml:"disabled"`
	// SessionTTL ends a console session this long after sign-in (default
	// 8h); SessionIdle ends one unused this long (default 30m).
	SessionTTL  time.Duration `yaml:"session_ttl"`
	SessionIdle time.Duration `yaml:"session_idle"`
}

// LLM configures the model proxy at /llm/. Every key is optional: each
// provider's public endpoint, with the key from its usual environment
// variable.
type LLM struct {
	OpenAI    LLMUpstream `yaml:"openai"`
	Anthropic LLMUpstream `yaml:"anthropic"`
	// Google is Gemini's OpenAI-compatible endpoint.
	Google LLMUpstream `yaml:"google"`
	// Catalog is a model catalogue laid over the shipped one.
	Catalog string `yaml:"catalog"`
	// DefaultMaxTokens caps the output of a call that sets no max_tokens to
	// a model the catalogue gives no max_output (absent or 0: 4096).
	DefaultMaxTokens int64 `yaml:"default_max_tokens"`
	// MaxRequestBytes bounds a request body (absent or 0: 16 MiB).
	MaxRequestBytes int64 `yaml:"max_request_bytes"`
}

// LLMUpstream is one model provider: where it is and where its key is.
type LLMUpstream struct {
	BaseURL    string `yaml:"base_url"`
	APIKeyEnv  string `yaml:"api_key_env"`
	APIKeyFile string `yaml:"api_key_file"`
}

// Log is the format and level of the server's log lines.
type Log struct {
	// Format is text (the default: key=value lines) or json (one object
	// per line).
	Format string `yaml:"format"`
	// Level is the least severe level written: debug, info (the
	// default), warn or error.
	Level string `yaml:"level"`
}

// Log formats and levels.
var (
	LogFormats = []string{"text", "json"}
	LogLevels  = []string{"debug", "info", "warn", "error"}
)

// Role is what a token may do.
type Role string

const (
	Admin     Role = "admin"
	Approver  Role = "approver"
	AgentRole Role = "agent"
)

// Token is one credential. Only its SHA-256 is kept, never the token.
type Token struct {
	Name      string            `yaml:"name"`
	Role      Role              `yaml:"role"`
	SHA256    string            `yaml:"sha256"`
	Agent     string            `yaml:"agent"`
	AgentType string            `yaml:"agent_type"`
	Labels    map[string]string `yaml:"labels"`
	Principal action.Principal  `yaml:"principal"`
	// Groups let an approver decide tickets whose rule names "group:NAME".
	Groups []string `yaml:"groups"`
}

// Audit tunes the audit log.
type Audit struct {
	CheckpointEvery    int           `yaml:"checkpoint_every"`
	CheckpointInterval time.Duration `yaml:"checkpoint_interval"`
	// CommitDelay is how long the log's writer may hold a batch open for
	// the appends of other agents deciding at the same time (absent: 1ms;
	// 0: never). Fewer, larger commits cost less CPU under load; a
	// deployment with one agent at a time gains nothing from waiting.
	CommitDelay *Delay `yaml:"commit_delay"`
	// KeyFile is the private key that signs the log's checkpoints, its
	// public half beside it (KEY.pub). Absent: audit.key in the data
	// directory, where whoever can rewrite the log can also sign it again.
	KeyFile string `yaml:"key_file"`
}

// Delay is a duration ("1ms", "250us") that may also be written as a bare
// 0, as people write "no delay".
type Delay time.Duration

// UnmarshalYAML reads a duration string, or 0.
func (d *Delay) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode && n.Value == "0" {
		*d = 0
		return nil
	}
	var v time.Duration
	if err := n.Decode(&v); err != nil {
		return err
	}
	*d = Delay(v)
	return nil
}

// maxCommitDelay bounds audit.commit_delay: the wait is added to a
// decision's latency, and beyond a few milliseconds it buys nothing.
const maxCommitDelay = 100 * time.Millisecond

// AuditCommitDelay is audit.commit_delay as audit.Options takes it: zero
// for the default, negative for never.
func (a Audit) AuditCommitDelay() time.Duration {
	switch {
	case a.CommitDelay == nil:
		return 0
	case *a.CommitDelay == 0:
		return -1
	default:
		return time.Duration(*a.CommitDelay)
	}
}

// MCP configures the gateway's upstream servers and the bounds of its
// sessions at /mcp/{server}.
type MCP struct {
	Lock            string               `yaml:"lock"`
	TrustOnFirstUse bool                 `yaml:"trust_on_first_use"`
	Servers         map[string]MCPServer `yaml:"servers"`
	// SessionIdleTimeout closes a session, with its upstream, once it has
	// served no request for this long (absent or 0: 10m).
	SessionIdleTimeout time.Duration `yaml:"session_idle_timeout"`
	// RelistInterval is the oldest a session's listing of a server's tools
	// may be when a call is checked against it; an older one is listed and
	// assessed again first (absent or 0: 5m).
	RelistInterval time.Duration `yaml:"relist_interval"`
	// MaxSessionsPerAgent bounds the sessions one agent holds open on one
	// server (absent or 0: 16): each costs an upstream connection, for a
	// command server a process.
	MaxSessionsPerAgent int `yaml:"max_sessions_per_agent"`
	// MaxMessageBytes bounds one POST body, a message or a batch (absent
	// or 0: 4 MiB).
	MaxMessageBytes int64 `yaml:"max_message_bytes"`
	// ReadTimeout bounds the time to read one POST body (absent or 0: 30s).
	ReadTimeout time.Duration `yaml:"read_timeout"`
	// Authorization makes each /mcp/{server} an OAuth 2.1 protected
	// resource (absent: the server's own credentials only).
	Authorization *MCPAuthorization `yaml:"authorization"`
}

// MCPAuthorization is the OAuth face of the MCP endpoints (docs/mcp.md).
type MCPAuthorization struct {
	// PublicURL is the server's URL as clients reach it; the resource of
	// /mcp/fs is PublicURL/mcp/fs, the audience its tokens must carry.
	PublicURL string `yaml:"public_url"`
	// AuthorizationServers are the issuers clients get tokens from.
	AuthorizationServers []string `yaml:"authorization_servers"`
	// Scopes are required of every OAuth token on the endpoints.
	Scopes []string `yaml:"scopes"`
}

// Bounds of the mcp: keys, beside their defaults (which are the gateway's,
// mcp.Default...).
const (
	minMCPIdle        = time.Second
	maxMCPIdle        = 24 * time.Hour
	maxMCPSessions    = 1000
	minMCPMessage     = 64 << 10
	maxMCPMessage     = 64 << 20
	minMCPReadTimeout = time.Second
	maxMCPReadTimeout = 10 * time.Minute
)

// MCPServer is one upstream: a command started over stdio, or a URL.
type MCPServer struct {
	Command []string          `yaml:"command"`
	Env     map[string]string `yaml:"env"`
	URL     string            `yaml:"url"`
}

// Defaults of DESIGN §4.
const (
	DefaultAddr         = "127.0.0.1:8420"
	DefaultData         = "./agentgov-data"
	DefaultMaxBodyBytes = 1 << 20
	// DefaultBodyReadTimeout lets a 16 MiB model request arrive at about
	// 4.5 Mbit/s, and holds a trickling client no longer than that.
	DefaultBodyReadTimeout = 30 * time.Second
	// maxBodyReadTimeout bounds body_read_timeout: beyond it, a client
	// sending nothing holds a connection for no useful purpose.
	maxBodyReadTimeout = 10 * time.Minute
)

// Error names a key of the file and what is wrong with it.
type Error struct {
	File string
	Line int
	Key  string
	Msg  string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	if e.Key != "" {
		b.WriteString(": " + e.Key)
	}
	b.WriteString(": " + e.Msg)
	return b.String()
}

// Load reads and validates a configuration file.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load config: %w", err)
	}
	return Parse(path, data)
}

var yamlLine = regexp.MustCompile(`^line (\d+): (.*)$`)

// Parse decodes a configuration, fills defaults and validates it.
func Parse(file string, data []byte) (*Config, error) {
	c := &Config{}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && err != io.EOF {
		var te *yaml.TypeError
		if errors.As(err, &te) && len(te.Errors) > 0 {
			msg := te.Errors[0]
			e := &Error{File: file, Msg: msg}
			if m := yamlLine.FindStringSubmatch(msg); m != nil {
				e.Line, _ = strconv.Atoi(m[1])
				e.Msg = strings.Replace(m[2], "not found in type", "is not a known key of", 1)
			}
			return nil, e
		}
		return nil, &Error{File: file, Msg: strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	c.Fill()
	if err := c.Validate(); err != nil {
		var e *Error
		if errors.As(err, &e) {
			e.File = file
			if e.Line == 0 && e.Key != "" {
				e.Line = keyLine(data, e.Key)
			}
		}
		return nil, err
	}
	return c, nil
}

// Fill sets defaults for every key left empty.
func (c *Config) Fill() {
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.Data == "" {
		c.Data = DefaultData
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.BodyReadTimeout == 0 {
		c.BodyReadTimeout = DefaultBodyReadTimeout
	}
	if c.MCP.Lock == "" {
		c.MCP.Lock = "./mcp.lock"
	}
	if c.Log.Format == "" {
		c.Log.Format = "text"
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	c.fillDelivery()
	if c.MCP.SessionIdleTimeout == 0 {
		c.MCP.SessionIdleTimeout = mcp.DefaultSessionIdleTimeout
	}
	if c.MCP.RelistInterval == 0 {
		c.MCP.RelistInterval = mcp.DefaultRelistInterval
	}
	if c.MCP.MaxSessionsPerAgent == 0 {
		c.MCP.MaxSessionsPerAgent = mcp.DefaultMaxSessionsPerAgent
	}
	if c.MCP.MaxMessageBytes == 0 {
		c.MCP.MaxMessageBytes = mcp.DefaultMaxMessageBytes
	}
	if c.MCP.ReadTimeout == 0 {
		c.MCP.ReadTimeout = mcp.DefaultReadTimeout
	}
	c.Trust.Fill()
	c.Rings.Fill()
	c.fillReliability()
	c.fillA2A()
	c.fillAnomaly()
	c.fillChaos()
}

var serverName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)

// Validate checks every value; it is pure, so flags can be applied before it.
func (c *Config) Validate() error {
	bad := func(key, format string, args ...any) error {
		return &Error{Key: key, Msg: fmt.Sprintf(format, args...)}
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return bad("addr", "want host:port, got %q", c.Addr)
	}
	if c.MaxBodyBytes < 1024 {
		return bad("max_body_bytes", "must be at least 1024")
	}
	if err := c.validateStore(); err != nil {
		return err
	}
	if err := c.validateIdentity(); err != nil {
		return err
	}
	if err := c.validateReliability(); err != nil {
		return err
	}
	if err := c.validateDelivery(); err != nil {
		return err
	}
	if err := c.validateChaos(); err != nil {
		return err
	}
	if err := c.Provenance.validate(); err != nil {
		return err
	}
	if err := c.Approvals.validate(); err != nil {
		return err
	}
	if c.BodyReadTimeout < 0 || c.BodyReadTimeout > maxBodyReadTimeout {
		return bad("body_read_timeout", "want a duration from 1ms to %v, got %v", maxBodyReadTimeout, c.BodyReadTimeout)
	}
	if !slices.Contains(LogFormats, c.Log.Format) {
		return bad("log.format", "want text or json, got %q", c.Log.Format)
	}
	if !slices.Contains(LogLevels, c.Log.Level) {
		return bad("log.level", "want debug, info, warn or error, got %q", c.Log.Level)
	}
	names := map[string]bool{}
	hashes := map[string]bool{}
	for i, t := range c.Tokens {
		key := fmt.Sprintf("tokens[%d]", i)
		if t.Name == "" {
			return bad(key+".name", "missing")
		}
		if names[t.Name] {
			return bad(key+".name", "duplicate token name %q", t.Name)
		}
		names[t.Name] = true
		switch t.Role {
		case Admin, Approver:
			if t.Agent != "" {
				return bad(key+".agent", "only agent tokens are bound to an agent")
			}
		case AgentRole:
			if t.Agent == "" {
				return bad(key+".agent", "an agent token must name its agent id")
			}
		default:
			return bad(key+".role", "want admin, approver or agent, got %q", t.Role)
		}
		h := strings.ToLower(t.SHA256)
		if b, err := hex.DecodeString(h); err != nil || len(b) != 32 {
			return bad(key+".sha256", "want the 64 hex digits of the token's SHA-256")
		}
		if hashes[h] {
			return bad(key+".sha256", "the same token is configured twice")
		}
		hashes[h] = true
		c.Tokens[i].SHA256 = h
	}
	if c.Console.SessionTTL < 0 {
		return bad("console.session_ttl", "want a positive duration, got %s", c.Console.SessionTTL)
	}
	if c.Console.SessionIdle < 0 {
		return bad("console.session_idle", "want a positive duration, got %s", c.Console.SessionIdle)
	}
	for _, o := range c.AllowedOrigins {
		if u, err := url.Parse(o); err != nil || u.Scheme == "" || u.Host == "" {
			return bad("allowed_origins", "want scheme://host[:port], got %q", o)
		}
	}
	if c.Audit.CheckpointEvery < 0 {
		return bad("audit.checkpoint_every", "must not be negative")
	}
	if c.Audit.CheckpointInterval < 0 {
		return bad("audit.checkpoint_interval", "must not be negative")
	}
	if d := c.Audit.CommitDelay; d != nil && (*d < 0 || time.Duration(*d) > maxCommitDelay) {
		return bad("audit.commit_delay", "want a duration from 0 (never wait) to %v, got %v", maxCommitDelay, time.Duration(*d))
	}
	if k := c.Audit.KeyFile; k != "" && filepath.Clean(filepath.Dir(k)) == filepath.Clean(c.Data) {
		return bad("audit.key_file", "%s is in the data directory %s: keep the signing key where whoever can write the data cannot read it", k, c.Data)
	}
	if d := c.MCP.SessionIdleTimeout; d < minMCPIdle || d > maxMCPIdle {
		return bad("mcp.session_idle_timeout", "want a duration from %v to %v, got %v", minMCPIdle, maxMCPIdle, d)
	}
	if d := c.MCP.RelistInterval; d < minMCPIdle || d > maxMCPIdle {
		return bad("mcp.relist_interval", "want a duration from %v to %v, got %v", minMCPIdle, maxMCPIdle, d)
	}
	if n := c.MCP.MaxSessionsPerAgent; n < 1 || n > maxMCPSessions {
		return bad("mcp.max_sessions_per_agent", "want 1 to %d sessions, got %d", maxMCPSessions, n)
	}
	if n := c.MCP.MaxMessageBytes; n < minMCPMessage || n > maxMCPMessage {
		return bad("mcp.max_message_bytes", "want %d to %d bytes, got %d", minMCPMessage, maxMCPMessage, n)
	}
	if d := c.MCP.ReadTimeout; d < minMCPReadTimeout || d > maxMCPReadTimeout {
		return bad("mcp.read_timeout", "want a duration from %v to %v, got %v", minMCPReadTimeout, maxMCPReadTimeout, d)
	}
	for _, p := range []struct {
		name string
		up   LLMUpstream
	}{{"openai", c.LLM.OpenAI}, {"anthropic", c.LLM.Anthropic}, {"google", c.LLM.Google}} {
		key := "llm." + p.name
		if p.up.APIKeyEnv != "" && p.up.APIKeyFile != "" {
			return bad(key, "give api_key_env or api_key_file, not both")
		}
		if p.up.BaseURL != "" {
			if u, err := url.Parse(p.up.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return bad(key+".base_url", "want an absolute http or https URL, got %q", p.up.BaseURL)
			}
		}
	}
	if c.LLM.DefaultMaxTokens < 0 {
		return bad("llm.default_max_tokens", "must not be negative")
	}
	if c.LLM.MaxRequestBytes < 0 {
		return bad("llm.max_request_bytes", "must not be negative")
	}
	if err := c.validateTrust(); err != nil {
		return err
	}
	if err := c.validateAnomaly(); err != nil {
		return err
	}
	if err := c.MCP.Authorization.validate(); err != nil {
		return err
	}
	if err := c.validateA2A(); err != nil {
		return err
	}
	for name, s := range c.MCP.Servers {
		key := "mcp.servers." + name
		if !serverName.MatchString(name) {
			return bad(key, "server names use lowercase letters, digits, - and _")
		}
		if (len(s.Command) == 0) == (s.URL == "") {
			return bad(key, "give exactly one of command or url")
		}
		if s.URL != "" {
			if u, err := url.Parse(s.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") {
				return bad(key+".url", "want an http or https URL, got %q", s.URL)
			}
		}
	}
	return nil
}

// validateTrust checks the trust: and rings: sections, naming the key.
func (c *Config) validateTrust() error {
	var ke *trust.KeyError
	if err := c.Trust.Validate(); err != nil {
		if errors.As(err, &ke) {
			return &Error{Key: "trust." + ke.Key, Msg: ke.Msg}
		}
		return err
	}
	if err := c.Rings.Validate(); err != nil {
		if errors.As(err, &ke) {
			return &Error{Key: "rings." + ke.Key, Msg: ke.Msg}
		}
		return err
	}
	return nil
}
