package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/approval"
	"github.com/agentgov/agentgov/client"
	"github.com/agentgov/agentgov/config"
	"github.com/agentgov/agentgov/govern"
	"github.com/agentgov/agentgov/mcp"
	"github.com/agentgov/agentgov/mcp/pin"
	"github.com/agentgov/agentgov/mcp/wire"
	"github.com/agentgov/agentgov/policy"
	sessionpkg "github.com/agentgov/agentgov/session"
	"github.com/agentgov/agentgov/stack"
)

// mcpRunFlags are the flags of `mcp run`.
type mcpRunFlags struct {
	policies, data, auditKey, lock, name, agent, session *string
	server, tokenFile                                    *string
	maxMessage                                           *int
	log                                                  logFlags
	set                                                  map[string]bool // given on the command line
}

func mcpRunCommand() *command {
	return &command{
		name:    "run",
		summary: "run a stdio MCP gateway in front of one server, as a desktop client launches it",
		usage:   "run [--name SERVER] [--policies PATH] [--data DIR] [--lock FILE] [FLAGS] -- COMMAND ARGS...\nrun --server URL --token-file FILE [--name SERVER] [--lock FILE] -- COMMAND ARGS...",
		help: `The client talks MCP to the gateway on standard input and output; the gateway starts
COMMAND ARGS... and talks to it. Every call is decided, and recorded, before it reaches the
server. Logs go to standard error. When the client closes standard input, the requests it
made are answered before the gateway exits.

Alone (the first form), the gateway decides with its own policies and keeps its audit log,
approvals, kill switches and pins in its data directory: by default a directory of its own
per server under the per-user state directory (see docs/cli.md), whatever the working
directory. A call that needs approval is put to the person at the client through MCP
elicitation, when the client offers it.

With --server (the second form), the gateway joins a running agentgov serve: the server
decides each call for the agent of the token, records the decisions and outcomes, and its
approvers approve through agentgov approvals or the API. No data directory is opened.

Either way the gateway's session id stays the same across restarts (--session), and the
tickets its calls wait on are remembered, so that a call approved while the client was
closed goes through when the client, restarted, makes it again.

Examples:
  agentgov mcp run --name fs -- npx -y @modelcontextprotocol/server-filesystem /home/me/projects
  agentgov mcp run --name fs --server http://127.0.0.1:8420 --token-file ~/.config/agentgov/agent.token \
    -- npx -y @modelcontextprotocol/server-filesystem /home/me/projects`,
		flagsFirst: true,
		setup: func(fs *flag.FlagSet) runner {
			f := &mcpRunFlags{
				name:       nameFlag(fs),
				policies:   fs.String("policies", "", "policy file or directory `PATH` (default: the built-in pack)"),
				data:       fs.String("data", "", "data `DIR`: audit log, approvals, kill switches, sessions, budgets, pins (default STATE/mcp/NAME, see docs/cli.md)"),
				auditKey:   fs.String("audit-key", "", "private key `FILE` signing the audit log, kept outside the data directory (default DIR/audit.key)"),
				lock:       fs.String("lock", "", "lock `FILE` of tool pins: created on the first pin when missing, else the reviewed truth, where an unpinned server's tools stay quarantined (default: DIR/mcp.lock, pinned on first sight)"),
				agent:      fs.String("agent", "mcp-stdio", "the agent `ID` calls are decided for (alone; with --server the token's agent)"),
				session:    fs.String("session", "", "the session `ID` of the calls, the same across restarts (default mcp-run-NAME)"),
				server:     fs.String("server", "", "join the agentgov server at `URL`: it decides and records every call"),
				tokenFile:  fs.String("token-file", "", "`FILE` holding the agent token for --server (default: $AGENTGOV_TOKEN)"),
				maxMessage: fs.Int("max-message-bytes", mcp.DefaultMaxMessageBytes, "the longest message (`N` bytes) the client may send"),
				log:        addLogFlags(fs),
			}
			return func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
				f.set = map[string]bool{}
				fs.Visit(func(fl *flag.Flag) { f.set[fl.Name] = true })
				return mcpRun(ctx, f, args, os.Stdin, stdout, stderr)
			}
		},
	}
}

// approvingEngine lets the stdio gateway approve a ticket on the word of
// the person at the desktop client, given through MCP elicitation.
type approvingEngine struct {
	*govern.Engine
}

// The engine hears of calls to quarantined tools, which lower trust.
var _ mcp.QuarantineObserver = approvingEngine{}

// Approve records the person's yes through the engine's audited operation:
// the approval is in the audit log before it takes effect, or it is not
// given. Only tickets whose rule names no approvers can be approved this
// way: a rule that asks for group:finance must not be satisfied by the
// person driving the agent.
func (e approvingEngine) Approve(ctx context.Context, id, by, note string) error {
	_, err := e.DecideApproval(ctx, govern.ApprovalDecision{
		Ticket: id, Approve: true, By: by, Note: note, Via: "mcp_elicitation",
		May: func(t approval.Ticket) error {
			if len(t.Approvers) > 0 {
				return fmt.Errorf("approval %s must come from %s, not from the MCP client", id, strings.Join(t.Approvers, ", "))
			}
			return nil
		},
	})
	return err
}

// stdioApprover names who answers elicitation on `mcp run`: the
// operating-system user running the gateway, whose desktop client shows
// the question.
func stdioApprover() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return "os-user:" + u.Username
	}
	return "os-uid:" + strconv.Itoa(os.Getuid())
}

// localApprovalHint tells the agent how a call that needs approval is
// approved when the gateway decides alone: the person at the client
// answers elicitation; a client without it cannot be asked, and nobody
// else can reach this gateway's data directory.
const localApprovalHint = "this gateway decides alone, so only the person at the MCP client can approve, when the client asks them (MCP elicitation); with a client that cannot, run the gateway with --server to have a server's approvers decide"

// mcpRun is the stdio gateway: the desktop client talks to it on standard
// input and output, it talks to the upstream it launches. Logs go to
// standard error, since standard output is the protocol.
func mcpRun(ctx context.Context, f *mcpRunFlags, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	argv, name, err := upstream(args, *f.name)
	if err != nil {
		return err
	}
	if *f.maxMessage < 1024 {
		return flagError("--max-message-bytes must be at least 1024, got %d", *f.maxMessage)
	}
	session := *f.session
	if session == "" {
		session = "mcp-run-" + name
	}
	if len(session) > sessionpkg.MaxIDLen || strings.IndexFunc(session, func(r rune) bool { return r < 0x21 || r == 0x7f }) >= 0 {
		return flagError("--session %q: at most %d bytes, without spaces or control characters", session, sessionpkg.MaxIDLen)
	}
	// Standard output is the protocol: the log goes to standard error.
	log, err := newLogger(*f.log.format, *f.log.level, stderr)
	if err != nil {
		return flagError("%v", err)
	}
	if *f.server != "" {
		return mcpJoin(ctx, f, name, session, argv, stdin, stdout, stderr, log)
	}
	if *f.tokenFile != "" {
		return flagError("--token-file is for --server")
	}

	dir := *f.data
	if dir == "" {
		if dir, err = gatewayDir(name); err != nil {
			return err
		}
	}
	cfg := &config.Config{Data: dir, Policies: *f.policies}
	cfg.Audit.KeyFile = *f.auditKey
	// One client makes one call at a time here, so the writer never holds
	// an append back waiting for others to share its commit: that wait
	// pays off for a server's many agents, and only delays a desktop's.
	never := config.Delay(0)
	cfg.Audit.CommitDelay = &never
	cfg.Fill()
	if err := cfg.Validate(); err != nil {
		return flagError("%s", strings.Replace(err.Error(), "audit.key_file", "--audit-key", 1))
	}
	lockPath, tofu, err := lockOf(*f.lock, dir)
	if err != nil {
		return err
	}
	tickets, err := mcp.OpenTicketFile(filepath.Join(dir, "mcp-tickets.json"))
	if err != nil {
		return err
	}

	st, err := stack.Open(ctx, cfg, stack.Options{Logger: log, Notify: stack.LimitNotices(logNotice(log), nil)})
	if err != nil {
		var el policy.ErrorList
		if errors.As(err, &el) {
			return loadErrors(stderr, err)
		}
		return err
	}
	pins, err := pin.OpenPins(lockPath)
	if err != nil {
		st.Close()
		return err
	}
	dial, err := wire.Command(argv, os.Environ(), stderr)
	if err != nil {
		st.Close()
		return err
	}
	g, err := mcp.New(mcp.Config{
		Server: name, Dial: dial, Decider: approvingEngine{st.Engine}, Recorder: st.Audit,
		Detector: pin.Detectors(), Pins: pins, TrustOnFirstUse: tofu, Kill: st.Kill,
		Tickets: tickets, ApprovalHint: localApprovalHint,
		RedactResults: true, ElicitApprovals: true, ElicitApprover: stdioApprover(), Logger: log,
		ShutdownGrace: st.Grace(), Alert: st.MCPAlert, Tracer: st.CallTracer(),
	})
	if err != nil {
		st.Close()
		return err
	}
	conn := wire.NewStdioConn(stdin, stdout, nil, *f.maxMessage)
	st.OnStart(func(context.Context) error {
		log.Info("agentgov mcp gateway", "server", name, "upstream", strings.Join(argv, " "), "data", dir, "lock", lockPath,
			"trust_on_first_use", tofu, "session", session, "policy", st.Engine.Policy().Digest())
		return nil
	})
	who := mcp.Identity{Agent: action.Agent{ID: *f.agent}}
	return st.Run(ctx, stack.FrontFunc(func(ctx context.Context) error {
		return g.ServeSession(ctx, conn, who, session)
	}))
}

// lockOf is where the pins live and whether a server's tools are pinned
// on first sight: without --lock, in the gateway's directory, pinned on
// first sight; with a --lock that does not exist yet, the same, the file
// created on the first pin; with one that exists, it is the reviewed truth
// and an unpinned server's tools stay quarantined.
func lockOf(lock, dir string) (string, bool, error) {
	if lock == "" {
		return filepath.Join(dir, "mcp.lock"), true, nil
	}
	_, err := os.Stat(lock)
	switch {
	case err == nil:
		return lock, false, nil
	case errors.Is(err, fs.ErrNotExist):
		return lock, true, nil
	}
	return "", false, fmt.Errorf("lock %s: %w", lock, err)
}

// mcpJoin is `mcp run --server`: the gateway decides through the server's
// /v1/decide with the agent token, and records outcomes there. It opens
// no data directory; its pins and the tickets its calls wait on are kept
// in its own directory.
func mcpJoin(ctx context.Context, f *mcpRunFlags, name, session string, argv []string, stdin io.Reader, stdout, stderr io.Writer, log *slog.Logger) error {
	for _, local := range []string{"policies", "data", "audit-key", "agent"} {
		if f.set[local] {
			return flagError("--%s is not for --server: the server's policies decide, for the token's agent, and its data directory keeps the record", local)
		}
	}
	token := os.Getenv("AGENTGOV_TOKEN")
	if *f.tokenFile != "" {
		b, err := os.ReadFile(*f.tokenFile)
		if err != nil {
			return fmt.Errorf("--token-file: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}
	if token == "" {
		return flagError("--server needs an agent token: --token-file FILE, or $AGENTGOV_TOKEN")
	}
	c, err := client.New(*f.server, token, client.WithUserAgent("agentgov-mcp-run"))
	if err != nil {
		return flagError("--server %s", strings.TrimPrefix(err.Error(), "client: "))
	}
	dir, err := gatewayDir(name)
	if err != nil {
		return err
	}
	lockPath, tofu, err := lockOf(*f.lock, dir)
	if err != nil {
		return err
	}
	pins, err := pin.OpenPins(lockPath)
	if err != nil {
		return err
	}
	tickets, err := mcp.OpenTicketFile(filepath.Join(dir, "joined-tickets.json"))
	if err != nil {
		return err
	}
	dial, err := wire.Command(argv, os.Environ(), stderr)
	if err != nil {
		return err
	}
	g, err := mcp.New(mcp.Config{
		Server: name, Dial: dial, Decider: remoteDecider{c}, Detector: pin.Detectors(), Pins: pins,
		TrustOnFirstUse: tofu, Tickets: tickets, RedactResults: true, Logger: log,
	})
	if err != nil {
		return err
	}
	conn := wire.NewStdioConn(stdin, stdout, nil, *f.maxMessage)
	log.Info("agentgov mcp gateway joined a server", "server", name, "upstream", strings.Join(argv, " "), "decider", c.BaseURL(),
		"lock", lockPath, "trust_on_first_use", tofu, "session", session)
	return g.ServeSession(ctx, conn, mcp.Identity{}, session)
}

// remoteDecider decides through a server's API with an agent token: the
// server fills in the agent from the token, records every decision and
// outcome, and opens the approval tickets its approvers decide.
type remoteDecider struct{ c *client.Client }

func (r remoteDecider) Decide(ctx context.Context, a action.Action) (action.Decision, error) {
	return r.c.Decide(ctx, a)
}

func (r remoteDecider) Outcome(ctx context.Context, id action.ID, o action.Outcome) error {
	return r.c.Outcome(ctx, id.String(), o)
}

// DeniesUnconditionally hides no tool from tools/list: telling would take
// a decision on the server per tool per listing, recorded and counted
// against the agent's limits. Calls are each decided there.
func (remoteDecider) DeniesUnconditionally(context.Context, action.Action) (bool, error) {
	return false, nil
}
