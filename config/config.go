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
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/llmproxy"
)

// Config is agentgov.yaml. Every key is optional.
type Config struct {
	Addr           string          `yaml:"addr"`
	Data           string          `yaml:"data"`
	Policies       string          `yaml:"policies"`
	Tokens         []Token         `yaml:"tokens"`
	AllowedOrigins []string        `yaml:"allowed_origins"`
	Audit          Audit           `yaml:"audit"`
	MCP            MCP             `yaml:"mcp"`
	LLM            llmproxy.Config `yaml:"llm"`
	// MaxBodyBytes bounds a request body on the /v1 API.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
}

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

// MCP configures the gateway's upstream servers.
type MCP struct {
	Lock            string               `yaml:"lock"`
	TrustOnFirstUse bool                 `yaml:"trust_on_first_use"`
	Servers         map[string]MCPServer `yaml:"servers"`
}

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
	if c.MCP.Lock == "" {
		c.MCP.Lock = "./mcp.lock"
	}
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
