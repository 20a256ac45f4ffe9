// Package mcp is agentgov's gateway in front of Model Context Protocol
// servers. It relays JSON-RPC between an MCP client and one upstream server
// without interpreting what it does not govern, and intercepts the three
// places where governance happens: every tools/call is decided by the engine
// before it is forwarded and again on its result; every tools/list answer is
// filtered so that a caller never sees a tool it may not call; and every
// change of the upstream's tools is compared with the reviewed pins of a
// lock file, so that a tool whose definition moved under the agent's feet is
// quarantined until a person looks at it.
//
// The gateway runs over stdio (a desktop client launches `agentgov mcp run`
// in place of the server) or over streamable HTTP inside `agentgov serve`.
package mcp

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/calltrace"
	"github.com/agentgov/agentgov/detect"
	"github.com/agentgov/agentgov/killswitch"
	"github.com/agentgov/agentgov/mcp/pin"
	"github.com/agentgov/agentgov/mcp/wire"
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

// UnconditionalDenier is optionally implemented by a Decider that can tell
// whether an action is denied whatever its arguments (by a rule without a
// `when`). tools/list hides exactly those tools; a Decider without it gets
// the next best thing: a tool is hidden when a probe call with no arguments
// is denied.
type UnconditionalDenier interface {
	DeniesUnconditionally(ctx context.Context, a action.Action) (bool, error)
}

// Approver is optionally implemented by a Decider that lets the gateway
// approve a ticket on the word of the person at a stdio client, asked
// through MCP elicitation. approver is who answered (Config.ElicitApprover).
// The approval must be in the audit log before it takes effect: Approve
// fails, and nothing is approved, when it cannot be recorded.
type Approver interface {
	Approve(ctx context.Context, approvalID, approver, note string) error
}

// QuarantineObserver is optionally implemented by a Decider that is told
// of every call the gateway refuses because its tool is quarantined, after
// the refusal is recorded: *govern.Engine lowers the agent's trust score.
type QuarantineObserver interface {
	QuarantinedCall(agent, server, tool string)
}

// KillSwitch says whether a kill switch stops an action;
// *killswitch.Switchboard implements it. The gateway asks it before it
// opens a session and before it forwards any request, so that a stopped
// agent reaches nothing behind the gateway, not even what no policy
// decides (listings, completions, subscriptions).
type KillSwitch interface {
	Check(a *action.Action) (killswitch.Switch, bool)
}

// Identity is who is calling through a gateway session.
type Identity struct {
	Agent     action.Agent
	Principal action.Principal
}

// key says who an identity is, as far as a decision can tell: the agent,
// the principal, the delegation chain and the credential's issuer and
// subject. A session's every call is decided for the identity that opened
// it, so a session is served only to the same key: another credential of
// the same agent (a delegation bounding it, another principal) opens its
// own. The key of a signing key (a thumbprint) is left out, so that an
// agent rotating its key keeps its sessions.
func (id Identity) key() string {
	k := struct {
		Agent      string           `json:"a"`
		Principal  action.Principal `json:"p"`
		Delegation []string         `json:"d,omitempty"`
		Kind       string           `json:"k,omitempty"`
		Issuer     string           `json:"i,omitempty"`
		Subject    string           `json:"s,omitempty"`
	}{Agent: id.Agent.ID, Principal: id.Principal}
	for _, d := range id.Agent.Delegation {
		k.Delegation = append(k.Delegation, d.ID)
	}
	if c := id.Agent.Credential; c != nil {
		k.Kind, k.Issuer, k.Subject = c.Kind, c.Issuer, c.Subject
	}
	b, _ := json.Marshal(k)
	return string(b)
}

// Dialer opens a new connection to the upstream server (see wire.Dialer).
type Dialer = wire.Dialer

// Config sets a Gateway up. Server, Dial, Decider and Pins are required.
type Config struct {
	// Server names the upstream: the tool namespace in actions, the
	// section of the lock file, the path element in /mcp/{server}.
	Server string
	Dial   Dialer
	// Decider decides every tools/call; without one nothing is forwarded.
	Decider Decider
	// Recorder receives one record per call, drift and finding. When it
	// fails, calls are denied: a call that is not in the audit log did not
	// happen.
	Recorder Recorder
	// Detector finds poisoned tool metadata and sensitive results. Without
	// one neither is looked for.
	Detector pin.Detector
	// Pins are the reviewed tool definitions.
	Pins *pin.Pins
	// TrustOnFirstUse pins a server's tools the first time they are seen
	// when the lock has no section for it. Off, an unpinned server's tools
	// are all quarantined.
	TrustOnFirstUse bool
	// Registry, when shared by gateways whose tools reach their clients in
	// one namespace, lets each see the others' tool names to catch a tool
	// that shadows another server's. Tool names matter only there: two
	// gateways each serving its own client (two `mcp run`, two endpoints
	// of `serve`) may share names, as two filesystem servers do, and
	// neither is quarantined for it. Without one, no server's tool names
	// are compared with another's.
	Registry *Registry
	// Tickets remembers the approval tickets calls wait on; in memory, per
	// session, when nil.
	Tickets Tickets
	// ApprovalHint tells the agent, with a call that needs approval, how
	// the approval is given; when empty, that an approver runs `agentgov
	// approvals approve`.
	ApprovalHint string
	// RedactResults masks secrets and personal data found in tool results
	// even when the post-call decision carries no redact obligation.
	RedactResults bool
	// Kill stops the requests of agents, sessions and principals that a
	// kill switch covers, whatever the Decider says. Optional.
	Kill KillSwitch
	// ElicitApprovals asks the person at the client, through MCP
	// elicitation, to approve a call that requires approval, when the
	// client supports it and the Decider implements Approver. It applies
	// to Serve only, whose client is a person's desktop (a stdio gateway
	// the person launched): over HTTP the client holds the agent's token
	// and is the agent itself, which must not approve its own calls, so
	// the HTTP handler never asks, whatever this says.
	ElicitApprovals bool
	// ElicitApprover is who answers elicitation on a Serve connection, as
	// the approval records it (for `agentgov mcp run`, the operating-system
	// user running the gateway). Required with ElicitApprovals.
	ElicitApprover string
	// MaxMessageBytes bounds one message, or one POST body, from a client
	// of the HTTP handler; DefaultMaxMessageBytes when 0. (A Serve
	// connection's bound is its StdioConn's.)
	MaxMessageBytes int64
	// ReadTimeout bounds the time to read one POST body on the HTTP
	// handler; DefaultReadTimeout when 0.
	ReadTimeout time.Duration
	// SessionIdleTimeout closes an HTTP session, and its upstream, when no
	// request of it has been served for this long;
	// DefaultSessionIdleTimeout when 0.
	SessionIdleTimeout time.Duration
	// MaxSessionsPerAgent bounds the HTTP sessions one agent holds open at
	// once; DefaultMaxSessionsPerAgent when 0.
	MaxSessionsPerAgent int
	// ShutdownGrace bounds how long Serve, once its ctx ends, waits for the
	// requests in flight to be answered and recorded before it closes the
	// upstream; DefaultShutdownGrace when 0. (HTTPHandler.Shutdown takes
	// its bound from its ctx.)
	ShutdownGrace time.Duration
	// InitTimeout bounds the upstream's initialisation: its answer to
	// initialize (the client's, or the gateway's own after a restart) and
	// the listing of its tools; DefaultInitTimeout when 0.
	InitTimeout time.Duration
	// RelistInterval bounds how old a session's listing of the upstream's
	// tools may be when a call is checked against it: an older one is
	// listed again, and assessed against the pins, before the call goes
	// on. An upstream that changes a tool without announcing it
	// (notifications/tools/list_changed) is found within this interval.
	// DefaultRelistInterval when 0.
	RelistInterval time.Duration
	// Now is the clock; time.Now when nil.
	Now    func() time.Time
	Logger *slog.Logger
	// Observer is told of upstream calls, of calls and sessions the
	// gateway refuses itself, and of how many tools it keeps quarantined,
	// for metrics. Optional.
	Observer Observer
	// Resource makes the HTTP endpoint an OAuth 2.1 protected resource
	// (see ProtectedResource). Optional.
	Resource *ProtectedResource
	// Alert is told, once per tool definition, of a drifted definition
	// (kind "drift") and of a tool put in quarantine (kind "quarantine"),
	// so that a person hears of it. Optional.
	Alert func(ctx context.Context, kind, summary string, fields map[string]any)
	// Tracer makes each request forwarded upstream a span, the parent of
	// its decision's (see tracing.go). Optional.
	Tracer calltrace.Tracer
	// Chaos injects the faults of chaos experiments into allowed
	// tools/calls (see chaos.go). Optional; leave it nil, not a nil
	// pointer, when no experiment is configured.
	Chaos FaultInjector
}

// Observer receives the gateway's metrics. Its methods must be cheap.
type Observer interface {
	// UpstreamCall is one call forwarded and answered (or not): kind
	// "mcp", upstream the server's name, failure "" when it succeeded,
	// else "error" or "tool_error".
	UpstreamCall(kind, upstream string, took time.Duration, failure string)
	// Refused is a call or session the gateway refused before (or
	// without) a decision: reason "kill_switch", "unknown_tool",
	// "quarantined", "tools_unavailable", "decision_failed" or
	// "session_limit".
	Refused(entry, reason string)
	// Quarantined is how many tools of server the latest listing
	// quarantined.
	Quarantined(server string, tools int)
}

// refused tells the observer of a refusal of the gateway's own.
func (g *Gateway) refused(reason string) {
	if g.cfg.Observer != nil {
		g.cfg.Observer.Refused("mcp_gateway", reason)
	}
}

// Defaults of the bounds in Config.
const (
	DefaultMaxMessageBytes     = wire.DefaultMaxMessageBytes
	DefaultReadTimeout         = 30 * time.Second
	DefaultSessionIdleTimeout  = 10 * time.Minute
	DefaultMaxSessionsPerAgent = 16
	DefaultInitTimeout         = 30 * time.Second
	DefaultRelistInterval      = 5 * time.Minute
	DefaultShutdownGrace       = 10 * time.Second
)

const maxUpstreamMessageBytes = wire.MaxUpstreamMessageBytes

// Gateway governs the sessions of one upstream server.
type Gateway struct {
	cfg Config
	log *slog.Logger
	now func() time.Time

	mu       sync.Mutex
	reported map[string]bool // drift and findings already audited, by server/tool/fingerprint/what

	listing lastListing // what the upstream offered last, for review (review.go)
}

// New checks cfg and returns a Gateway.
func New(cfg Config) (*Gateway, error) {
	switch {
	case cfg.Server == "":
		return nil, errors.New("mcp gateway: no server name")
	case cfg.Dial == nil:
		return nil, fmt.Errorf("mcp gateway %s: no upstream", cfg.Server)
	case cfg.Decider == nil:
		return nil, fmt.Errorf("mcp gateway %s: no decider", cfg.Server)
	case cfg.Pins == nil:
		return nil, fmt.Errorf("mcp gateway %s: no pins", cfg.Server)
	}
	if !ValidServerName(cfg.Server) {
		return nil, fmt.Errorf("mcp gateway: server name %q: use letters, digits, '-', '_' and '.'", cfg.Server)
	}
	switch {
	case cfg.ElicitApprovals && cfg.ElicitApprover == "":
		return nil, fmt.Errorf("mcp gateway %s: approvals by elicitation need ElicitApprover, who answers them", cfg.Server)
	case cfg.MaxMessageBytes < 0:
		return nil, fmt.Errorf("mcp gateway %s: MaxMessageBytes is negative", cfg.Server)
	case cfg.ReadTimeout < 0:
		return nil, fmt.Errorf("mcp gateway %s: ReadTimeout is negative", cfg.Server)
	case cfg.SessionIdleTimeout < 0:
		return nil, fmt.Errorf("mcp gateway %s: SessionIdleTimeout is negative", cfg.Server)
	case cfg.MaxSessionsPerAgent < 0:
		return nil, fmt.Errorf("mcp gateway %s: MaxSessionsPerAgent is negative", cfg.Server)
	case cfg.InitTimeout < 0:
		return nil, fmt.Errorf("mcp gateway %s: InitTimeout is negative", cfg.Server)
	case cfg.RelistInterval < 0:
		return nil, fmt.Errorf("mcp gateway %s: RelistInterval is negative", cfg.Server)
	case cfg.ShutdownGrace < 0:
		return nil, fmt.Errorf("mcp gateway %s: ShutdownGrace is negative", cfg.Server)
	}
	cfg.MaxMessageBytes = cmp.Or(cfg.MaxMessageBytes, DefaultMaxMessageBytes)
	cfg.ReadTimeout = cmp.Or(cfg.ReadTimeout, DefaultReadTimeout)
	cfg.SessionIdleTimeout = cmp.Or(cfg.SessionIdleTimeout, DefaultSessionIdleTimeout)
	cfg.MaxSessionsPerAgent = cmp.Or(cfg.MaxSessionsPerAgent, DefaultMaxSessionsPerAgent)
	cfg.InitTimeout = cmp.Or(cfg.InitTimeout, DefaultInitTimeout)
	cfg.RelistInterval = cmp.Or(cfg.RelistInterval, DefaultRelistInterval)
	cfg.ShutdownGrace = cmp.Or(cfg.ShutdownGrace, DefaultShutdownGrace)
	g := &Gateway{cfg: cfg, log: cfg.Logger, now: cfg.Now, reported: map[string]bool{}}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	if g.now == nil {
		g.now = time.Now
	}
	return g, nil
}

// Server is the name of the upstream this gateway governs.
func (g *Gateway) Server() string { return g.cfg.Server }

// ValidServerName says whether s may name a server: letters, digits, '-',
// '_' and '.', and not "." or "..".
func ValidServerName(s string) bool {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return s != "" && s != "." && s != ".."
}

// Serve relays one client connection to a fresh upstream connection until
// the client goes away or ctx ends. It is meant for a connection to a
// person's own client, as `agentgov mcp run` serves its standard input
// and output: only here may that person be asked to approve calls (see
// Config.ElicitApprovals). The session's start and end are audited; a
// session whose start cannot be recorded is not served.
//
// When the client closes its side, the requests it made are still
// answered before Serve returns: a client that writes its requests and
// closes its input gets every answer. When ctx ends, Serve stops taking
// requests and gives the ones in flight Config.ShutdownGrace to be
// answered and their results recorded. Either way the upstream is closed
// only then.
func (g *Gateway) Serve(ctx context.Context, client sdk.Connection, who Identity) error {
	return g.ServeSession(ctx, client, who, newSessionID())
}

// ServeSession is Serve with the session id the calls are decided in:
// one that stays the same across restarts of the gateway lets approvals,
// and kill switches on the session, outlive them (see Config.Tickets).
func (g *Gateway) ServeSession(ctx context.Context, client sdk.Connection, who Identity, session string) error {
	if session == "" {
		return errors.New("mcp session: no session id")
	}
	// The session outlives ctx: what it took must still reach the
	// upstream, be decided and be recorded after ctx ends.
	s := newSession(context.WithoutCancel(ctx), g, client, who, session, g.cfg.ElicitApprovals)
	if err := g.record(ctx, "mcp.session", s.sessionRecord("open", "")); err != nil {
		s.close()
		return fmt.Errorf("mcp session: %w", err)
	}
	read := make(chan error, 1)
	go func() { read <- s.run() }()
	var err error
	reason := "the client went away"
	select {
	case err = <-read:
		s.clientGone()
		s.drain(ctx)
	case <-ctx.Done():
		reason = "the gateway stopped"
	}
	s.stopTaking()
	if !s.idle() {
		gctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), g.cfg.ShutdownGrace)
		if !s.drain(gctx) {
			g.log.Warn("mcp session closed with requests still in flight", "server", g.cfg.Server, "session", s.id, "grace", g.cfg.ShutdownGrace)
		}
		cancel()
	}
	s.close()
	g.record(ctx, "mcp.session", s.sessionRecord("close", reason))
	return err
}

// stopped says whether a kill switch stops who in a session, and why.
func (g *Gateway) stopped(who Identity, session string) (string, bool) {
	if g.cfg.Kill == nil {
		return "", false
	}
	a := action.Action{Agent: who.Agent, Principal: who.Principal, Session: session}
	sw, ok := g.cfg.Kill.Check(&a)
	if !ok {
		return "", false
	}
	return sw.DenyReason(), true
}

func newSessionID() string { return "mcp-" + rand.Text() }

// Registry holds the live tool names of the upstreams whose tools share one
// namespace.
type Registry struct {
	mu    sync.Mutex
	names map[string][]string
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{names: map[string][]string{}} }

func (r *Registry) set(server string, names []string) {
	if r == nil {
		return
	}
	r.mu.Lock()
	r.names[server] = names
	r.mu.Unlock()
}

func (r *Registry) snapshot() map[string][]string {
	out := map[string][]string{}
	if r == nil {
		return out
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for s, n := range r.names {
		out[s] = n
	}
	return out
}

// others returns the tool names of every other server of this gateway's
// namespace: those of its Registry. The lock's other sections do not
// count: a server pinned there is served to its own client, if at all.
func (g *Gateway) others() map[string][]string {
	out := g.cfg.Registry.snapshot()
	delete(out, g.cfg.Server)
	return out
}

// toolState is what the gateway knows of one tool of a session's upstream.
type toolState struct {
	def         pin.ToolDef
	fingerprint string
	annotations map[string]any
	quarantine  string // why calls are refused; "" when callable
}

// assess compares tools with their pins and scans them. full says tools
// is the whole catalog (trust on first use pins only then). Drift and
// findings are audited once per tool definition.
func (g *Gateway) assess(ctx context.Context, tools []pin.ToolDef, full bool) map[string]*toolState {
	server := g.cfg.Server
	pinned, ok := g.cfg.Pins.Server(server)
	if !ok && full && g.cfg.TrustOnFirstUse {
		did, err := g.cfg.Pins.PinIfAbsent(server, tools)
		if err != nil {
			g.log.Error("trust on first use: pinning failed", "server", server, "err", err)
		} else if did {
			g.record(ctx, "mcp.pin", pinRecord{Server: server, Tools: len(tools), Lock: g.cfg.Pins.Path(), Reason: "trust on first use"})
		}
		pinned, ok = g.cfg.Pins.Server(server)
	}
	out := make(map[string]*toolState, len(tools))
	var changes []pin.Change
	if ok {
		changes = pin.Diff(server, pinned, tools, g.cfg.Detector)
	}
	byTool := map[string][]pin.Change{}
	for _, c := range changes {
		byTool[c.Tool] = append(byTool[c.Tool], c)
	}
	findings := pin.Scan(server, tools, g.others(), g.cfg.Detector)
	findingsByTool := map[string][]pin.ToolFinding{}
	for _, f := range findings {
		findingsByTool[f.Tool] = append(findingsByTool[f.Tool], f)
	}
	for _, t := range tools {
		fp, err := t.Fingerprint()
		st := &toolState{def: t, fingerprint: fp}
		if len(t.Annotations) > 0 {
			_ = json.Unmarshal(t.Annotations, &st.annotations)
		}
		switch {
		case err != nil:
			st.quarantine = fmt.Sprintf("its definition cannot be fingerprinted: %v", err)
		case strings.Contains(t.Name, methodToolSep):
			// It would be decided as the MCP method of that name.
			st.quarantine = fmt.Sprintf("its name holds %q, which agentgov keeps for the MCP methods it decides as tools (%s, %s)", methodToolSep, toolResourcesRead, toolPromptsGet)
		case !ok:
			st.quarantine = fmt.Sprintf("server %q has no pinned tools in %s; review them and run `agentgov mcp pin`", server, lockName(g.cfg.Pins))
		case len(byTool[t.Name]) > 0:
			st.quarantine = "its definition changed since it was pinned: " + describeChanges(byTool[t.Name]) + "; review and re-pin with `agentgov mcp pin`"
		}
		var blocking []string
		for _, f := range findingsByTool[t.Name] {
			if f.Blocking() {
				blocking = append(blocking, f.Finding.String())
			}
		}
		if len(blocking) > 0 {
			reason := "its metadata looks poisoned: " + joinSemi(blocking)
			if st.quarantine != "" {
				st.quarantine += "; and " + reason
			} else {
				st.quarantine = reason
			}
		}
		out[t.Name] = st
		if st.quarantine != "" && g.firstReport(server, t.Name, fp, "quarantine") {
			g.log.Warn("tool quarantined", "server", server, "tool", t.Name, "reason", st.quarantine)
			g.alert(ctx, "quarantine", fmt.Sprintf("tool %s of MCP server %s is quarantined: %s", t.Name, server, st.quarantine),
				map[string]any{"server": server, "tool": t.Name, "fingerprint": fp})
		}
		for _, c := range byTool[t.Name] {
			if g.firstReport(server, t.Name, fp, "drift:"+c.What) {
				g.record(ctx, "mcp.drift", driftRecord{Change: c, Fingerprint: fp, Quarantined: true})
				g.alert(ctx, "drift", fmt.Sprintf("tool %s of MCP server %s changed since it was pinned: %s", t.Name, server, describeChanges([]pin.Change{c})),
					map[string]any{"server": server, "tool": t.Name, "fingerprint": fp, "change": c.What})
			}
		}
		for _, f := range findingsByTool[t.Name] {
			if g.firstReport(server, t.Name, fp, "finding:"+f.Rule+f.Detail) {
				g.record(ctx, "mcp.finding", findingRecord{ToolFinding: f, Fingerprint: fp, Quarantined: f.Blocking()})
			}
		}
	}
	if full && g.cfg.Observer != nil {
		n := 0
		for _, st := range out {
			if st.quarantine != "" {
				n++
			}
		}
		g.cfg.Observer.Quarantined(server, n)
	}
	g.listing.keep(g.now(), tools, out, full)
	if full {
		for _, c := range byTool {
			for _, ch := range c {
				if _, live := out[ch.Tool]; !live && g.firstReport(server, ch.Tool, "", "drift:"+ch.What) {
					g.record(ctx, "mcp.drift", driftRecord{Change: ch})
				}
			}
		}
	}
	return out
}

func lockName(p *pin.Pins) string {
	if p.Path() == "" {
		return "the lock"
	}
	return p.Path()
}

func describeChanges(cs []pin.Change) string {
	parts := make([]string, len(cs))
	for i, c := range cs {
		parts[i] = c.What + " (" + string(c.Level) + ")"
	}
	return joinSemi(parts)
}

func joinSemi(parts []string) string {
	out := ""
	for i, p := range parts {
		if i > 0 {
			out += "; "
		}
		out += p
	}
	return out
}

func (g *Gateway) firstReport(parts ...string) bool {
	key := fmt.Sprint(parts)
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.reported[key] {
		return false
	}
	g.reported[key] = true
	return true
}

// auditTimeout bounds one audit append, which runs detached from the
// client's request so that it survives the client hanging up.
const auditTimeout = 10 * time.Second

// record appends to the audit log when there is one.
// alert passes a drift or a quarantine to Config.Alert, if set.
func (g *Gateway) alert(ctx context.Context, kind, summary string, fields map[string]any) {
	if g.cfg.Alert != nil {
		g.cfg.Alert(ctx, kind, summary, fields)
	}
}

func (g *Gateway) record(ctx context.Context, kind string, rec any) error {
	if g.cfg.Recorder == nil {
		return nil
	}
	rec, err := masked(rec)
	if err != nil {
		g.log.Error("audit record not written", "kind", kind, "err", err)
		return fmt.Errorf("audit append: %w", err)
	}
	// The record must survive the client hanging up.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), auditTimeout)
	defer cancel()
	if _, err := g.cfg.Recorder.Append(ctx, kind, rec); err != nil {
		g.log.Error("audit append failed", "kind", kind, "err", err)
		return fmt.Errorf("audit append: %w", err)
	}
	return nil
}

// maskText replaces the secrets and personal data the detectors find in
// text, as the engine masks its decision records: what enters the audit
// log can never be taken out again. A tool's error text, and an upstream's
// error message, are free text from outside.
func maskText(s string) string {
	if s == "" {
		return s
	}
	return detect.Mask(s)
}

// masked returns rec, or, when any string or key in it holds something the
// detectors find, its JSON form with every such string and key masked.
// Every record the gateway writes passes here: tool names, methods and
// reasons come from the client, errors and tool definitions from the
// upstream, and none of them may reach the log in clear. Most records hold
// nothing to mask and are written as they are.
func masked(rec any) (any, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(rec); err != nil {
		return nil, err
	}
	raw := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	if detect.Mask(string(raw)) == string(raw) {
		// Encoded so, JSON escapes only quotes, backslashes and control
		// characters, which no secret or address a detector reads is made
		// of: the text of the whole record finds what its strings would.
		return rec, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return maskJSON(v), nil
}

func maskJSON(v any) any {
	switch x := v.(type) {
	case string:
		return maskText(x)
	case json.Number:
		if m := maskText(x.String()); m != x.String() {
			return m
		}
		return x
	case []any:
		for i := range x {
			x[i] = maskJSON(x[i])
		}
		return x
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			mk := maskText(k)
			for n := 2; mk != k; n++ {
				// Two keys masked alike stay two keys.
				if _, taken := out[mk]; !taken {
					break
				}
				mk = fmt.Sprintf("%s#%d", maskText(k), n)
			}
			out[mk] = maskJSON(e)
		}
		return out
	}
	return v
}

// Audit records. Their JSON is what the audit log hashes.
type callRecord struct {
	Server     string           `json:"server"`
	Tool       string           `json:"tool"`
	Session    string           `json:"session"`
	Agent      action.Agent     `json:"agent"`
	Principal  action.Principal `json:"principal,omitzero"`
	ArgsSHA256 string           `json:"args_sha256"`
	Decision   string           `json:"decision,omitempty"`
	Effect     action.Effect    `json:"effect"`
	Reasons    []string         `json:"reasons,omitempty"`
	Approval   string           `json:"approval,omitempty"`
}

// sessionRecord is a session's start, end, or refusal.
type sessionRecord struct {
	Event     string           `json:"event"` // open, close, refused
	Server    string           `json:"server"`
	Session   string           `json:"session,omitempty"`
	Agent     action.Agent     `json:"agent"`
	Principal action.Principal `json:"principal,omitzero"`
	Transport string           `json:"transport"` // stdio or http
	Reason    string           `json:"reason,omitempty"`
}

// requestRecord is a request the gateway forwarded, or refused, without a
// policy decision: a listing, a completion, a subscription's end.
type requestRecord struct {
	Server    string           `json:"server"`
	Session   string           `json:"session"`
	Agent     action.Agent     `json:"agent"`
	Principal action.Principal `json:"principal,omitzero"`
	Method    string           `json:"method"`
	Effect    action.Effect    `json:"effect"`
	Reason    string           `json:"reason,omitempty"`
}

// refusalRecord is a message refused for misusing the protocol: an id the
// gateway reserves, an answer to a request nobody sent, a notification
// that is not one.
type refusalRecord struct {
	Server    string           `json:"server"`
	Session   string           `json:"session"`
	Agent     action.Agent     `json:"agent"`
	Principal action.Principal `json:"principal,omitzero"`
	From      string           `json:"from"` // client or upstream
	Method    string           `json:"method,omitempty"`
	ID        any              `json:"id,omitempty"`
	Reason    string           `json:"reason"`
}

type resultRecord struct {
	Server       string        `json:"server"`
	Tool         string        `json:"tool"`
	Session      string        `json:"session"`
	Decision     string        `json:"decision"`
	PostDecision string        `json:"post_decision,omitempty"`
	PostEffect   action.Effect `json:"post_effect,omitempty"`
	Status       string        `json:"status"`
	LatencyMS    float64       `json:"latency_ms"`
	Error        string        `json:"error,omitempty"`
	Redacted     int           `json:"redacted,omitempty"`
	Withheld     bool          `json:"withheld,omitempty"`
	// rpcError says the upstream answered with a JSON-RPC error rather
	// than a result.
	rpcError bool
}

type driftRecord struct {
	pin.Change
	Fingerprint string `json:"fingerprint,omitempty"`
	Quarantined bool   `json:"quarantined"`
}

type findingRecord struct {
	pin.ToolFinding
	Fingerprint string `json:"fingerprint"`
	Quarantined bool   `json:"quarantined"`
}

type pinRecord struct {
	Server string `json:"server"`
	Tools  int    `json:"tools"`
	Lock   string `json:"lock,omitempty"`
	Reason string `json:"reason"`
}
