package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/agentgov/agentgov/mcp"
	"github.com/agentgov/agentgov/mcp/pin"
	"github.com/agentgov/agentgov/mcp/wire"
)

func init() {
	register(&command{
		name:    "mcp",
		summary: "MCP gateway: run, pin, diff, scan",
		usage:   "run|pin|diff|scan [FLAGS] -- COMMAND ARGS...",
		help: `Each subcommand starts the MCP server COMMAND ARGS... over stdio. Flags come before
the command; a -- between them is optional unless the command's first word starts with -.
The gateway's reference is docs/mcp.md.`,
		subs: []*command{
			mcpRunCommand(),
			{
				name: "pin", summary: "write the live server's tool definitions to a lock file",
				usage: "pin [--lock FILE] [--name SERVER] -- COMMAND ARGS...",
				help: `The lock is meant to be reviewed and committed like go.sum; pinning a server again
replaces its section.

Example:
  agentgov mcp pin --lock mcp.lock -- npx -y @modelcontextprotocol/server-filesystem /srv/data`,
				flagsFirst: true,
				setup: func(fs *flag.FlagSet) runner {
					lock := fs.String("lock", "mcp.lock", "lock `FILE` of tool pins")
					name := nameFlag(fs)
					return func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
						argv, server, err := upstream(args, *name)
						if err != nil {
							return err
						}
						return mcpPin(ctx, *lock, server, argv, stdout, stderr)
					}
				},
			},
			{
				name: "diff", summary: "compare the live server's tools with their pins; exit 1 on critical drift",
				usage: "diff [--lock FILE] [--name SERVER] -- COMMAND ARGS...",
				help: `Each change is graded critical, warning or info (docs/mcp.md).

Example:
  agentgov mcp diff --lock mcp.lock -- npx -y @modelcontextprotocol/server-filesystem /srv/data`,
				flagsFirst: true,
				setup: func(fs *flag.FlagSet) runner {
					lock := fs.String("lock", "mcp.lock", "lock `FILE` of tool pins")
					name := nameFlag(fs)
					return func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
						argv, server, err := upstream(args, *name)
						if err != nil {
							return err
						}
						return mcpDiff(ctx, *lock, server, argv, stdout, stderr)
					}
				},
			},
			{
				name: "scan", summary: "look for poisoned tool metadata; exit 1 on a high or critical finding",
				usage: "scan [--lock FILE] [--name SERVER] -- COMMAND ARGS...",
				help: `With --lock, tool names are also compared with those of the lock's other servers, for
clients that show the tools of all those servers to one model under their bare names.

Example:
  agentgov mcp scan -- npx -y @modelcontextprotocol/server-filesystem /srv/data`,
				flagsFirst: true,
				setup: func(fs *flag.FlagSet) runner {
					lock := fs.String("lock", "", "lock `FILE` whose other servers' tool names count for shadowing")
					name := nameFlag(fs)
					return func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
						argv, server, err := upstream(args, *name)
						if err != nil {
							return err
						}
						return mcpScan(ctx, *lock, server, argv, stdout, stderr)
					}
				},
			},
		},
	})
}

func nameFlag(fs *flag.FlagSet) *string {
	return fs.String("name", "", "the server's `NAME`: its tool namespace (policies match NAME/tool) and its section of the lock (default: derived from the command)")
}

// upstream returns the upstream command and the server's name: the one
// given, or one derived from the command.
func upstream(args []string, name string) ([]string, string, error) {
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	if len(args) == 0 {
		return nil, "", flagError("no upstream command: give it after the flags (and --)")
	}
	if name == "" {
		name = serverName(args)
	}
	if !mcp.ValidServerName(name) {
		return nil, "", flagError("--name %q: use letters, digits, '-', '_' and '.'", name)
	}
	return args, name, nil
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

func fetch(ctx context.Context, argv []string, stderr io.Writer) ([]pin.ToolDef, error) {
	dial, err := wire.Command(argv, os.Environ(), stderr)
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

func mcpPin(ctx context.Context, lockPath, name string, argv []string, stdout, stderr io.Writer) error {
	lock, err := pin.ReadLock(lockPath)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	tools, err := fetch(ctx, argv, stderr)
	if err != nil {
		return err
	}
	lock.Pin(name, tools)
	if err := pin.WriteLock(lockPath, lock); err != nil {
		return err
	}
	sfp, _ := pin.ServerFingerprint(tools)
	fmt.Fprintf(stdout, "pinned %d tools of %s in %s (%s)\n", len(tools), name, lockPath, sfp)
	return nil
}

func mcpDiff(ctx context.Context, lockPath, name string, argv []string, stdout, stderr io.Writer) error {
	lock, err := pin.ReadLock(lockPath)
	if err != nil {
		return err
	}
	pinned, ok := lock.Servers[name]
	if !ok {
		return &exitError{code: 1, msg: fmt.Sprintf("%s has no pins for server %q; run agentgov mcp pin first", lockPath, name)}
	}
	tools, err := fetch(ctx, argv, stderr)
	if err != nil {
		return err
	}
	changes := pin.Diff(name, pinned, tools, pin.Detectors())
	if len(changes) == 0 {
		fmt.Fprintf(stdout, "%s: no drift from %s\n", name, lockPath)
		return nil
	}
	for _, c := range changes {
		fmt.Fprintln(stdout, c)
	}
	if pin.Worst(changes) == pin.Critical {
		return &exitError{code: 1, msg: fmt.Sprintf("%s: critical drift from %s", name, lockPath)}
	}
	return nil
}

func mcpScan(ctx context.Context, lockPath, name string, argv []string, stdout, stderr io.Writer) error {
	others := map[string][]string{}
	if lockPath != "" {
		lock, err := pin.ReadLock(lockPath)
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
	findings := pin.Scan(name, tools, others, pin.Detectors())
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
