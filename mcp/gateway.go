package mcp

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentgov/agentgov/action"
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
// approve a ticket on the word of the user, asked through MCP elicitation.
type Approver interface {
	Approve(ctx context.Context, approvalID, approver, note string) error
}

// Identity is who is calling through a gateway session.
type Identity struct {
	Agent     action.Agent
	Principal action.Principal
}

// Dialer opens a new connection to the upstream server. It is called once
// per client session, and again if the upstream dies.
type Dialer func(ctx context.Context) (sdk.Connection, error)

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
	Detector Detector
	// Pins are the reviewed tool definitions.
	Pins *Pins
	// TrustOnFirstUse pins a server's tools the first time they are seen
	// when the lock has no section for it. Off, an unpinned server's tools
	// are all quarantined.
	TrustOnFirstUse bool
	// Registry, when shared by the gateways of one process, lets each see
	// the others' tool names to catch cross-server shadowing.
	Registry *Registry
	// RedactResults masks secrets and personal data found in tool results
	// even when the post-call decision carries no redact obligation.
	RedactResults bool
	// ElicitApprovals asks the user through MCP elicitation to approve a
	// call that requires approval, when the client supports it and the
	// Decider implements Approver.
	ElicitApprovals bool
	// Now is the clock; time.Now when nil.
	Now    func() time.Time
	Logger *slog.Logger
}

// Gateway governs the sessions of one upstream server.
type Gateway struct {
	cfg Config
	log *slog.Logger
	now func() time.Time

	mu       sync.Mutex
	reported map[string]bool // drift and findings already audited, by server/tool/fingerprint/what
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
	if !validServerName(cfg.Server) {
		return nil, fmt.Errorf("mcp gateway: server name %q: use letters, digits, '-', '_' and '.'", cfg.Server)
	}
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

func validServerName(s string) bool {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return s != "" && s != "." && s != ".."
}

// Serve relays one client connection to a fresh upstream connection until
// the client goes away or ctx ends. Messages the gateway does not govern
// pass through unchanged.
func (g *Gateway) Serve(ctx context.Context, client sdk.Connection, who Identity) error {
	s := newSession(ctx, g, client, who, newSessionID())
	defer s.close()
	return s.run()
}

func newSessionID() string { return "mcp-" + rand.Text() }

// Registry holds the live tool names of every upstream of a process.
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

// others returns the tool names of every server but this one, live ones
// first and pinned ones for servers not running here.
func (g *Gateway) others() map[string][]string {
	out := g.cfg.Pins.Names()
	for s, n := range g.cfg.Registry.snapshot() {
		out[s] = n
	}
	delete(out, g.cfg.Server)
	return out
}

// toolState is what the gateway knows of one tool of a session's upstream.
type toolState struct {
	def         ToolDef
	fingerprint string
	annotations map[string]any
	quarantine  string // why calls are refused; "" when callable
}

// assess compares tools with their pins and scans them. full says tools
// is the whole catalog (trust on first use pins only then). Drift and
// findings are audited once per tool definition.
func (g *Gateway) assess(ctx context.Context, tools []ToolDef, full bool) map[string]*toolState {
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
	var changes []Change
	if ok {
		changes = Diff(server, pinned, tools, g.cfg.Detector)
	}
	byTool := map[string][]Change{}
	for _, c := range changes {
		byTool[c.Tool] = append(byTool[c.Tool], c)
	}
	findings := Scan(server, tools, g.others(), g.cfg.Detector)
	findingsByTool := map[string][]ToolFinding{}
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
		for _, c := range byTool[t.Name] {
			if g.firstReport(server, t.Name, fp, "drift:"+c.What) {
				g.record(ctx, "mcp.drift", driftRecord{Change: c, Fingerprint: fp, Quarantined: true})
			}
		}
		for _, f := range findingsByTool[t.Name] {
			if g.firstReport(server, t.Name, fp, "finding:"+f.Rule+f.Detail) {
				g.record(ctx, "mcp.finding", findingRecord{ToolFinding: f, Fingerprint: fp, Quarantined: f.Blocking()})
			}
		}
	}
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

func lockName(p *Pins) string {
	if p.Path() == "" {
		return "the lock"
	}
	return p.Path()
}

func describeChanges(cs []Change) string {
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

// record appends to the audit log when there is one.
func (g *Gateway) record(ctx context.Context, kind string, rec any) error {
	if g.cfg.Recorder == nil {
		return nil
	}
	// The record must survive the client hanging up.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if _, err := g.cfg.Recorder.Append(ctx, kind, rec); err != nil {
		g.log.Error("audit append failed", "kind", kind, "err", err)
		return fmt.Errorf("audit append: %w", err)
	}
	return nil
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
}

type driftRecord struct {
	Change
	Fingerprint string `json:"fingerprint,omitempty"`
	Quarantined bool   `json:"quarantined"`
}

type findingRecord struct {
	ToolFinding
	Fingerprint string `json:"fingerprint"`
	Quarantined bool   `json:"quarantined"`
}

type pinRecord struct {
	Server string `json:"server"`
	Tools  int    `json:"tools"`
	Lock   string `json:"lock,omitempty"`
	Reason string `json:"reason"`
}
