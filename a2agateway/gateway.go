// Package a2agateway governs agent-to-agent traffic: it stands in front of
// an upstream agent that speaks the A2A protocol (version 0.3, JSON-RPC
// with server-sent events) and decides every message sent to it (point
// pre_agent_message) and every reply it gives (post_agent_message) before
// either goes on. It serves the upstream's agent card rewritten to point at
// itself, bounds what passes in size, relays no push notifications, and
// records everything in the audit log. It consumes the engine through small
// interfaces, as the MCP gateway does.
package a2agateway

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/calltrace"
	"github.com/agentgov/agentgov/detect"
	"github.com/agentgov/agentgov/killswitch"
)

// Decider decides actions and records their outcomes. *govern.Engine
// implements it.
type Decider interface {
	Decide(ctx context.Context, a action.Action) (action.Decision, error)
	Outcome(ctx context.Context, id action.ID, o action.Outcome) error
}

// Recorder appends records to the audit log. *audit.Log implements it.
type Recorder interface {
	Append(ctx context.Context, kind string, record any) (uint64, error)
}

// KillSwitch says whether a kill switch stops an action;
// *killswitch.Switchboard implements it.
type KillSwitch interface {
	Check(a *action.Action) (killswitch.Switch, bool)
}

// Observer receives the gateway's metrics; *metrics.Metrics implements it.
type Observer interface {
	// UpstreamCall is one request forwarded and answered (or not): kind
	// "a2a", upstream the agent's name, failure "" when it succeeded.
	UpstreamCall(kind, upstream string, took time.Duration, failure string)
	// Refused is a request the gateway refused before or without a
	// decision (entry "a2a_gateway").
	Refused(entry, reason string)
}

// Identify authenticates an HTTP request and says which agent makes it.
// The server's Identify accepts agent tokens only.
type Identify func(r *http.Request) (action.Agent, action.Principal, error)

// Defaults of the bounds in Config.
const (
	DefaultMaxMessageBytes  = 4 << 20
	DefaultMaxReplyBytes    = 16 << 20
	DefaultMaxArtifactBytes = 8 << 20
	DefaultMaxFileBytes     = 4 << 20
	DefaultTimeout          = 5 * time.Minute
	DefaultMaxTasks         = 100_000
	DefaultMaxStreamEvents  = 10_000
	defaultKillPoll         = 250 * time.Millisecond
	maxCardBytes            = 1 << 20
)

// MetaApprovalID is the metadata key (of the message, or of the request's
// params) with which a caller retries a message under an approved ticket.
const MetaApprovalID = "agentgov.approval_id"

// HeaderSession names the session a message belongs to; without it, the
// message's contextId does, else the contextId the upstream's reply gives
// the conversation.
const HeaderSession = "X-Agentgov-Session"

// Config sets a Gateway up. Name, URL, Decider and Identify are required.
type Config struct {
	// Name is the agent's name in configuration: the path element of
	// /a2a/{name} and the id policies see as target.id.
	Name string
	// URL is the upstream's base URL: its JSON-RPC endpoint, under which
	// its card is at /.well-known/agent-card.json. Requests go here and
	// nowhere else, whatever the upstream's card says.
	URL string
	// Trust and Labels are target.trust and target.labels.
	Trust  string
	Labels map[string]string
	// Token, when set, is sent to the upstream as a bearer token. The
	// caller's own credential never is.
	Token string

	Decider  Decider
	Identify Identify
	Recorder Recorder
	Kill     KillSwitch
	Observer Observer
	// Client calls the upstream; one that follows no redirect when nil.
	Client *http.Client

	// Bounds; the defaults above when 0.
	MaxMessageBytes  int64 // one request body from a caller
	MaxReplyBytes    int64 // one upstream answer, or one event of its stream
	MaxArtifactBytes int64 // one artifact, all its parts and chunks
	MaxFileBytes     int64 // one file part's inline bytes, decoded
	Timeout          time.Duration
	// MaxTasks bounds how many tasks and conversations the gateway
	// remembers the owner of.
	MaxTasks int
	// MaxStreamEvents bounds the events of one upstream stream: each is
	// decided and audited, so an upstream that never ends its stream
	// would otherwise grow the audit log for as long as the caller waits.
	MaxStreamEvents int
	// KillPoll is how often a stream in flight looks for a kill switch
	// while the upstream is silent.
	KillPoll time.Duration

	Now    func() time.Time
	Logger *slog.Logger
	// Tracer makes each message sent to the agent a span (invoke_agent
	// {agent}), the parent of its decision's, and sends the agent a
	// traceparent of it. Optional.
	Tracer calltrace.Tracer
}

// Gateway governs the traffic to one upstream agent.
type Gateway struct {
	cfg    Config
	log    *slog.Logger
	now    func() time.Time
	up     *upstream
	target action.Target

	mu    sync.Mutex
	tasks map[string]taskOwner // by ownTask or ownContext and the id
	order []string             // keys of tasks, oldest first, for eviction
}

// taskOwner is who started a task: only that agent may read or cancel it.
type taskOwner struct {
	agent   string
	session string
}

// New checks cfg and returns a Gateway.
func New(cfg Config) (*Gateway, error) {
	switch {
	case cfg.Name == "":
		return nil, errors.New("a2a gateway: no agent name")
	case cfg.Decider == nil:
		return nil, fmt.Errorf("a2a gateway %s: no decider", cfg.Name)
	case cfg.Identify == nil:
		return nil, fmt.Errorf("a2a gateway %s: no Identify", cfg.Name)
	}
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("a2a gateway %s: url: want an absolute http or https URL, got %q", cfg.Name, cfg.URL)
	}
	for _, v := range []int64{cfg.MaxMessageBytes, cfg.MaxReplyBytes, cfg.MaxArtifactBytes, cfg.MaxFileBytes, int64(cfg.Timeout), int64(cfg.MaxTasks), int64(cfg.KillPoll), int64(cfg.MaxStreamEvents)} {
		if v < 0 {
			return nil, fmt.Errorf("a2a gateway %s: a bound is negative", cfg.Name)
		}
	}
	cfg.MaxMessageBytes = cmp.Or(cfg.MaxMessageBytes, DefaultMaxMessageBytes)
	cfg.MaxReplyBytes = cmp.Or(cfg.MaxReplyBytes, DefaultMaxReplyBytes)
	cfg.MaxArtifactBytes = cmp.Or(cfg.MaxArtifactBytes, DefaultMaxArtifactBytes)
	cfg.MaxFileBytes = cmp.Or(cfg.MaxFileBytes, DefaultMaxFileBytes)
	cfg.Timeout = cmp.Or(cfg.Timeout, DefaultTimeout)
	cfg.MaxTasks = cmp.Or(cfg.MaxTasks, DefaultMaxTasks)
	cfg.MaxStreamEvents = cmp.Or(cfg.MaxStreamEvents, DefaultMaxStreamEvents)
	cfg.KillPoll = cmp.Or(cfg.KillPoll, defaultKillPoll)
	g := &Gateway{cfg: cfg, log: cfg.Logger, now: cfg.Now, tasks: map[string]taskOwner{}}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	if g.now == nil {
		g.now = time.Now
	}
	client := cfg.Client
	if client == nil {
		client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error {
			// A redirect would send the caller's message to an address
			// no one configured.
			return errors.New("the upstream answered with a redirect, which the gateway does not follow")
		}}
	}
	g.up = &upstream{url: cfg.URL, base: u, client: client, token: cfg.Token, maxReply: cfg.MaxReplyBytes}
	g.target = action.Target{ID: cfg.Name, Trust: cfg.Trust, Labels: cfg.Labels}
	return g, nil
}

// Name is the agent this gateway governs.
func (g *Gateway) Name() string { return g.cfg.Name }

// Kinds of what the gateway remembers the owner of.
const (
	ownTask    = "task:"
	ownContext = "context:"
)

// maxIDBytes bounds the ids remembered: an upstream cannot fill the
// gateway's memory with a few huge ones. A longer id is never anyone's.
const maxIDBytes = 1024

// rememberTask binds a task to the agent whose message started it.
func (g *Gateway) rememberTask(id string, who taskOwner) { g.remember(ownTask, id, who) }

// rememberContext binds a conversation (contextId) to the agent it was
// opened for.
func (g *Gateway) rememberContext(id string, who taskOwner) { g.remember(ownContext, id, who) }

// remember binds id to who unless it is bound already: the first owner
// stays.
func (g *Gateway) remember(kind, id string, who taskOwner) {
	if id == "" || len(id) > maxIDBytes {
		return
	}
	key := kind + id
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.tasks[key]; ok {
		return
	}
	g.tasks[key] = who
	g.order = append(g.order, key)
	for len(g.order) > g.cfg.MaxTasks {
		delete(g.tasks, g.order[0])
		g.order = g.order[1:]
	}
}

// taskOf returns the owner of a task the gateway has seen.
func (g *Gateway) taskOf(id string) (taskOwner, bool) { return g.ownerOf(ownTask, id) }

// contextOf returns the owner of a conversation the gateway has seen.
func (g *Gateway) contextOf(id string) (taskOwner, bool) { return g.ownerOf(ownContext, id) }

func (g *Gateway) ownerOf(kind, id string) (taskOwner, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	o, ok := g.tasks[kind+id]
	return o, ok
}

// stopped says whether a kill switch stops the caller, and why.
func (g *Gateway) stopped(c *call) (string, bool) {
	if g.cfg.Kill == nil {
		return "", false
	}
	a := action.Action{Agent: c.agent, Principal: c.principal, Session: c.session}
	sw, ok := g.cfg.Kill.Check(&a)
	if !ok {
		return "", false
	}
	return sw.DenyReason(), true
}

func (g *Gateway) refused(reason string) {
	if g.cfg.Observer != nil {
		g.cfg.Observer.Refused("a2a_gateway", reason)
	}
}

// auditTimeout bounds one audit append, detached from the caller's
// request so that it survives the caller hanging up.
const auditTimeout = 10 * time.Second

// record appends to the audit log; every free-text field was masked by
// the caller of record.
func (g *Gateway) record(ctx context.Context, kind string, rec any) error {
	if g.cfg.Recorder == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), auditTimeout)
	defer cancel()
	if _, err := g.cfg.Recorder.Append(ctx, kind, rec); err != nil {
		g.log.Error("audit append failed", "kind", kind, "err", err)
		return fmt.Errorf("audit append: %w", err)
	}
	return nil
}

// Audit records. Their JSON is what the audit log hashes.

// messageRecord is a message the gateway refused or forwarded without a
// decision of the engine's in the log (a kill switch, a malformed part, a
// decider that keeps no log).
type messageRecord struct {
	Agent     string           `json:"agent"`
	Target    string           `json:"target"`
	Principal action.Principal `json:"principal,omitzero"`
	Session   string           `json:"session,omitempty"`
	Method    string           `json:"method"`
	Task      string           `json:"task,omitempty"`
	Decision  string           `json:"decision,omitempty"`
	Effect    action.Effect    `json:"effect"`
	Reasons   []string         `json:"reasons,omitempty"`
	Approval  string           `json:"approval,omitempty"`
}

// replyRecord is what came of a forwarded request: the upstream's answer
// (or failure), the post_agent_message decisions on it, and whether any
// of it was withheld.
type replyRecord struct {
	Agent         string   `json:"agent"`
	Target        string   `json:"target"`
	Session       string   `json:"session,omitempty"`
	Method        string   `json:"method"`
	Task          string   `json:"task,omitempty"`
	Decision      string   `json:"decision,omitempty"`
	PostDecisions []string `json:"post_decisions,omitempty"`
	Events        int      `json:"events,omitempty"`
	Status        string   `json:"status"`
	LatencyMS     float64  `json:"latency_ms"`
	Error         string   `json:"error,omitempty"`
	Withheld      bool     `json:"withheld,omitempty"`
}

// maskText keeps secrets and personal data in the upstream's free text
// out of the audit log and out of error messages.
func maskText(s string) string {
	if s == "" {
		return s
	}
	return truncate(detect.Mask(s), 500)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
