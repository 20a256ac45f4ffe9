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
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/approval"
	"github.com/agentgov/agentgov/audit"
	"github.com/agentgov/agentgov/govern"
	"github.com/agentgov/agentgov/mcp"
	"github.com/agentgov/agentgov/store/sqlite"
)

func init() {
	commands["mcp"] = command{summary: "MCP gateway: run, pin, diff, scan", run: runMCP}
}

const mcpUsage = `usage:
  agentgov mcp run  [--policies DIR] [--data DIR] [--lock FILE] [--name SERVER] [--agent ID] -- COMMAND ARGS...
  agentgov mcp pin  [--lock FILE] [--name SERVER] -- COMMAND ARGS...
  agentgov mcp diff [--lock FILE] [--name SERVER] -- COMMAND ARGS...
  agentgov mcp scan [--lock FILE] [--name SERVER] -- COMMAND ARGS...`

func runMCP(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return &exitError{code: 2, msg: mcpUsage}
	}
	switch args[0] {
	case "run":
		return mcpRun(ctx, args[1:], os.Stdin, stdout, stderr)
	case "pin":
		return mcpPin(ctx, args[1:], stdout, stderr)
	case "diff":
		return mcpDiff(ctx, args[1:], stdout, stderr)
	case "scan":
		return mcpScan(ctx, args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprintln(stdout, mcpUsage)
		return nil
	}
	return &exitError{code: 2, msg: fmt.Sprintf("unknown mcp subcommand %q\n%s", args[0], mcpUsage)}
}

// mcpFlags parses the flags before "--" and returns the upstream command
// after it.
type mcpFlags struct {
	fs                         *flag.FlagSet
	lock, name, policies, data *string
	agent                      *string
}

func newMCPFlags(sub, lockDefault string) *mcpFlags {
	f := &mcpFlags{fs: flag.NewFlagSet("mcp "+sub, flag.ContinueOnError)}
	f.fs.SetOutput(io.Discard)
	f.lock = f.fs.String("lock", lockDefault, "lock file of tool pins")
	f.name = f.fs.String("name", "", "server name (default: derived from the command)")
	if sub == "run" {
		f.policies = f.fs.String("policies", "", "policy file or directory (default: the built-in pack)")
		f.data = f.fs.String("data", "./agentgov-data", "data directory (audit log, approvals)")
		f.agent = f.fs.String("agent", "mcp-stdio", "agent id the calls are decided for")
	}
	return f
}

func (f *mcpFlags) parse(args []string) ([]string, string, error) {
	if err := f.fs.Parse(args); err != nil {
		return nil, "", &exitError{code: 2, msg: err.Error() + "\n" + mcpUsage}
	}
	argv := f.fs.Args()
	if len(argv) > 0 && argv[0] == "--" {
		argv = argv[1:]
	}
	if len(argv) == 0 {
		return nil, "", &exitError{code: 2, msg: "no upstream command after --\n" + mcpUsage}
	}
	name := *f.name
	if name == "" {
		name = serverName(argv)
	}
	return argv, name, nil
}

// serverName derives a name from an upstream command: the package of an
// npx/uvx/node/python launcher, else the program, reduced to the characters
// a server name may hold.
func serverName(argv []string) string {
	prog := filepath.Base(argv[0])
	pick := prog
	switch prog {
	case "npx", "uvx", "node", "python", "python3", "deno", "bunx", "docker":
		for _, a := range argv[1:] {
			if !strings.HasPrefix(a, "-") {
				pick = a
				break
			}
		}
	}
	// A script path names its package by the directory holding its dist/.
	for dir := strings.TrimSuffix(pick, filepath.Ext(pick)); ; dir = filepath.Dir(dir) {
		base := filepath.Base(dir)
		switch base {
		case "index", "main", "cli", "dist", "build", "lib", "src", "bin":
			if filepath.Dir(dir) != dir {
				continue
			}
		}
		pick = base
		break
	}
	if i := strings.LastIndex(pick, "@"); i > 0 {
		pick = pick[:i]
	}
	pick = strings.TrimPrefix(pick, "server-")
	pick = strings.TrimPrefix(pick, "mcp-server-")
	var b strings.Builder
	for _, r := range pick {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' {
			b.WriteRune(r)
		} else {
			b.WriteRune('-')
		}
	}
	if b.Len() == 0 {
		return "server"
	}
	return b.String()
}

func fetch(ctx context.Context, argv []string, stderr io.Writer) ([]mcp.ToolDef, error) {
	dial, err := mcp.Command(argv, os.Environ(), stderr)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	tools, err := mcp.FetchTools(ctx, dial)
	if err != nil {
		return nil, fmt.Errorf("list the tools of %s: %w", strings.Join(argv, " "), err)
	}
	return tools, nil
}

func mcpPin(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newMCPFlags("pin", "mcp.lock")
	argv, name, err := f.parse(args)
	if err != nil {
		return err
	}
	lock, err := mcp.ReadLock(*f.lock)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	tools, err := fetch(ctx, argv, stderr)
	if err != nil {
		return err
	}
	lock.Pin(name, tools)
	if err := mcp.WriteLock(*f.lock, lock); err != nil {
		return err
	}
	sfp, _ := mcp.ServerFingerprint(tools)
	fmt.Fprintf(stdout, "pinned %d tools of %s in %s (%s)\n", len(tools), name, *f.lock, sfp)
	return nil
}

func mcpDiff(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newMCPFlags("diff", "mcp.lock")
	argv, name, err := f.parse(args)
	if err != nil {
		return err
	}
	lock, err := mcp.ReadLock(*f.lock)
	if err != nil {
		return err
	}
	pinned, ok := lock.Servers[name]
	if !ok {
		return &exitError{code: 1, msg: fmt.Sprintf("%s has no pins for server %q; run agentgov mcp pin first", *f.lock, name)}
	}
	tools, err := fetch(ctx, argv, stderr)
	if err != nil {
		return err
	}
	changes := mcp.Diff(name, pinned, tools, mcp.Detectors())
	if len(changes) == 0 {
		fmt.Fprintf(stdout, "%s: no drift from %s\n", name, *f.lock)
		return nil
	}
	for _, c := range changes {
		fmt.Fprintln(stdout, c)
	}
	if mcp.Worst(changes) == mcp.Critical {
		return &exitError{code: 1, msg: fmt.Sprintf("%s: critical drift from %s", name, *f.lock)}
	}
	return nil
}

func mcpScan(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newMCPFlags("scan", "")
	argv, name, err := f.parse(args)
	if err != nil {
		return err
	}
	others := map[string][]string{}
	if *f.lock != "" {
		lock, err := mcp.ReadLock(*f.lock)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		for s := range lock.Servers {
			if s == name {
				continue
			}
			tools, _ := lock.Tools(s)
			for _, t := range tools {
				others[s] = append(others[s], t.Name)
			}
		}
	}
	tools, err := fetch(ctx, argv, stderr)
	if err != nil {
		return err
	}
	findings := mcp.Scan(name, tools, others, mcp.Detectors())
	if len(findings) == 0 {
		fmt.Fprintf(stdout, "%s: %d tools, no findings\n", name, len(tools))
		return nil
	}
	blocking := 0
	for _, fd := range findings {
		fmt.Fprintln(stdout, fd)
		if fd.Blocking() {
			blocking++
		}
	}
	if blocking > 0 {
		return &exitError{code: 1, msg: fmt.Sprintf("%s: %d high or critical findings", name, blocking)}
	}
	return nil
}

// approvingEngine lets the gateway approve a ticket on the user's word,
// given through MCP elicitation.
type approvingEngine struct {
	*govern.Engine
	approvals *approval.Approvals
}

// Approve records the user's yes. Only tickets whose rule names no
// approvers can be approved this way: a rule that asks for group:finance
// must not be satisfied by the person driving the agent.
func (e approvingEngine) Approve(ctx context.Context, id, by, note string) error {
	t, err := e.approvals.Get(ctx, id)
	if err != nil {
		return err
	}
	if len(t.Approvers) > 0 {
		return fmt.Errorf("approval %s must come from %s, not from the MCP client", id, strings.Join(t.Approvers, ", "))
	}
	_, err = e.approvals.Decide(ctx, id, true, by, note)
	return err
}

// mcpRun is the stdio gateway: the desktop client talks to it on standard
// input and output, it talks to the upstream it launches. Logs go to
// standard error, since standard output is the protocol.
func mcpRun(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	f := newMCPFlags("run", "")
	argv, name, err := f.parse(args)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	set, err := policySource(*f.policies)()
	if err != nil {
		return loadErrors(stderr, err)
	}
	bg, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBG()
	db, err := sqlite.OpenDir(bg, *f.data)
	if err != nil {
		return err
	}
	defer db.Close()
	signer, verifier, err := audit.LoadOrCreateKey(*f.data, auditOrigin)
	if err != nil {
		return err
	}
	// One client makes one call at a time here, so the writer never holds
	// an append back waiting for others to share its commit: that wait
	// pays off for a server's many agents, and only delays a desktop's.
	alog, err := audit.Open(bg, db, signer, verifier, audit.Options{Logger: log, CommitDelay: -1})
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); alog.Run(bg) }()
	defer func() { stopBG(); wg.Wait() }()

	approvals := approval.New(db, time.Now)
	eng := govern.New(set, govern.WithAudit(alog), govern.WithApprovals(approvals))

	// Without --lock, pins live in the data directory and are taken on first
	// sight (DESIGN §4); with it, the lock is the reviewed truth and an
	// unpinned server's tools stay quarantined.
	lockPath, tofu := *f.lock, false
	if lockPath == "" {
		lockPath, tofu = filepath.Join(*f.data, "mcp.lock"), true
	} else if _, err := os.Stat(lockPath); err != nil {
		return fmt.Errorf("lock %s: %w (create it with agentgov mcp pin)", lockPath, err)
	}
	pins, err := mcp.OpenPins(lockPath)
	if err != nil {
		return err
	}
	dial, err := mcp.Command(argv, os.Environ(), stderr)
	if err != nil {
		return err
	}
	g, err := mcp.New(mcp.Config{
		Server: name, Dial: dial, Decider: approvingEngine{eng, approvals}, Recorder: alog,
		Detector: mcp.Detectors(), Pins: pins, TrustOnFirstUse: tofu,
		RedactResults: true, ElicitApprovals: true, Logger: log,
	})
	if err != nil {
		return err
	}
	conn := mcp.NewStdioConn(stdin, stdout, nil, 0)
	log.Info("agentgov mcp gateway", "server", name, "upstream", strings.Join(argv, " "), "lock", lockPath, "trust_on_first_use", tofu, "policy", set.Digest())
	return g.Serve(ctx, conn, mcp.Identity{Agent: action.Agent{ID: *f.agent}})
}
