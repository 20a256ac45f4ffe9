// Command agentgov is the governance control plane for AI agents: the server,
// the MCP gateway and the CLI in one binary. This file only dispatches: each
// subcommand lives in its own file as a function of its arguments and writers,
// and main maps the error it returns to an exit code.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	_ "time/tzdata" // budgets' calendar periods must not depend on the host's zoneinfo
)

// command is a subcommand, or a group of them (subs). A leaf defines its
// flags in setup, which returns what runs it; help is printed from the
// same flag set, so a flag cannot go undocumented.
type command struct {
	name    string
	summary string // one line, in its parent's list
	// usage is the synopsis, one form per line, without "agentgov".
	usage string
	// help is said after the synopsis: what the command does, examples.
	help string
	// setup defines the flags of a leaf on fs and returns its runner,
	// which gets the arguments that are not flags.
	setup func(fs *flag.FlagSet) runner
	// flagsFirst: flags come before the arguments, and everything from the
	// first argument, or after --, is passed on as it is (the upstream
	// command of `mcp run`). Otherwise flags and arguments may mix.
	flagsFirst bool
	subs       []*command
}

type runner func(ctx context.Context, args []string, stdout, stderr io.Writer) error

// root is the whole command tree; each file adds its command in init.
var root = &command{
	name:    "agentgov",
	summary: "the governance control plane for AI agents",
	usage:   "COMMAND [ARGS]",
	help:    "Run `agentgov COMMAND --help` for a command's usage and flags, `agentgov --version` for the version.",
}

func register(c *command) { root.subs = append(root.subs, c) }

func (c *command) sub(name string) *command {
	for _, s := range c.subs {
		if s.name == name {
			return s
		}
	}
	return nil
}

// exitError carries a specific exit code; its message, if any, is printed.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	err := dispatch(ctx, root, []string{"agentgov"}, args, stdout, stderr)
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.msg != "" {
			fmt.Fprintln(stderr, "agentgov:", ee.msg)
		}
		return ee.code
	}
	fmt.Fprintln(stderr, "agentgov:", err)
	return 1
}

func isHelp(arg string) bool {
	return arg == "-h" || arg == "--help" || arg == "-help" || arg == "help"
}

func dispatch(ctx context.Context, c *command, path, args []string, stdout, stderr io.Writer) error {
	if c.setup == nil {
		switch {
		case len(args) == 0:
			printHelp(stderr, c, path, nil)
			return &exitError{code: 2}
		case c == root && (args[0] == "--version" || args[0] == "-version" || args[0] == "version"):
			fmt.Fprintln(stdout, "agentgov", version())
			return nil
		case isHelp(args[0]):
			// `agentgov help mcp run` is `agentgov mcp run --help`.
			if args[0] == "help" && len(args) > 1 {
				return dispatch(ctx, c, path, append(append([]string(nil), args[1:]...), "--help"), stdout, stderr)
			}
			printHelp(stdout, c, path, nil)
			return nil
		}
		s := c.sub(args[0])
		if s == nil {
			return &exitError{code: 2, msg: fmt.Sprintf("unknown command %q\n%s", strings.Join(append(path[1:], args[0]), " "), shortUsage(c, path))}
		}
		return dispatch(ctx, s, append(path, s.name), args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet(strings.Join(path, " "), flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	run := c.setup(fs)
	pos, err := parseArgs(fs, args, c.flagsFirst)
	if errors.Is(err, flag.ErrHelp) {
		printHelp(stdout, c, path, fs)
		return nil
	}
	if err != nil {
		return usageError(err, c, path)
	}
	err = run(ctx, pos, stdout, stderr)
	var fe *flagErr
	if errors.As(err, &fe) {
		return usageError(fe, c, path)
	}
	return err
}

// parseArgs parses the flags and returns the other arguments. Unless
// flagsFirst, flags may come anywhere among the arguments ("approve ID
// --note x" and "approve --note x ID" both work), and everything after a
// "--" is an argument.
func parseArgs(fs *flag.FlagSet, args []string, flagsFirst bool) ([]string, error) {
	if flagsFirst {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		return fs.Args(), nil
	}
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// flagErr is a mistake in a command's arguments that its runner finds:
// exit 2, with the command's synopsis.
type flagErr struct{ msg string }

func (e *flagErr) Error() string { return e.msg }

func flagError(format string, args ...any) error {
	return &flagErr{fmt.Sprintf(format, args...)}
}

// usageError is a mistake in how a command was called: exit 2, with the
// command's synopsis.
func usageError(err error, c *command, path []string) error {
	return &exitError{code: 2, msg: err.Error() + "\n" + shortUsage(c, path)}
}

func shortUsage(c *command, path []string) string {
	return synopsis(c, path) + fmt.Sprintf("Run '%s --help' for more.", strings.Join(path, " "))
}

// synopsis is the usage of c, one form per line. A form may begin with
// the command's own name (the subcommands' do) or not.
func synopsis(c *command, path []string) string {
	var b strings.Builder
	prefix := "usage: "
	for _, line := range strings.Split(c.usage, "\n") {
		p := path
		if line == c.name || strings.HasPrefix(line, c.name+" ") {
			p = path[:len(path)-1]
		}
		fmt.Fprintf(&b, "%s%s %s\n", prefix, strings.Join(p, " "), line)
		prefix = "       "
	}
	return b.String()
}

// printHelp prints a command's synopsis, what it does, and its flags or
// its subcommands.
func printHelp(w io.Writer, c *command, path []string, fs *flag.FlagSet) {
	if c.setup != nil && fs == nil {
		fs = flag.NewFlagSet("", flag.ContinueOnError)
		c.setup(fs)
	}
	fmt.Fprint(w, synopsis(c, path))
	if c.summary != "" {
		fmt.Fprintf(w, "\n%s%s.\n", strings.ToUpper(c.summary[:1]), c.summary[1:])
	}
	if c.help != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(c.help))
	}
	if len(c.subs) > 0 {
		fmt.Fprintln(w, "\ncommands:")
		subs := append([]*command(nil), c.subs...)
		sort.Slice(subs, func(i, j int) bool { return subs[i].name < subs[j].name })
		tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
		for _, s := range subs {
			fmt.Fprintf(tw, "  %s\t%s\n", s.name, s.summary)
		}
		tw.Flush()
	}
	if fs != nil {
		n := 0
		fs.VisitAll(func(*flag.Flag) { n++ })
		if n > 0 {
			fmt.Fprintln(w, "\nflags:")
			tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
			fs.VisitAll(func(f *flag.Flag) {
				name, usage := flag.UnquoteUsage(f)
				def := ""
				if f.DefValue != "" && f.DefValue != "0" && f.DefValue != "0s" && f.DefValue != "false" && !strings.Contains(usage, "(default") {
					def = fmt.Sprintf(" (default %s)", f.DefValue)
				}
				if name != "" {
					name = " " + name
				}
				fmt.Fprintf(tw, "  --%s%s\t%s%s\n", f.Name, name, usage, def)
			})
			tw.Flush()
		}
	}
}

// version is the module version the binary was built from: the release
// tag when installed with `go install ...@vX`, else "devel" and the
// revision of the checkout it was built in; then the Go version.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	return versionOf(bi)
}

func versionOf(bi *debug.BuildInfo) string {
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v + " " + bi.GoVersion
	}
	v := "devel"
	var rev, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	if rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		v += " " + rev
		if modified == "true" {
			v += " (modified)"
		}
	}
	return v + " " + bi.GoVersion
}
