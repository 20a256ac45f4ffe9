package main

import (
	"bytes"
	"context"
	"flag"
	"os"
	"os/exec"
	"regexp"
	"runtime/debug"
	"strings"
	"testing"
)

// every returns every command of the tree with its path, the root first.
func every(c *command, path []string) [][]string {
	out := [][]string{path}
	for _, s := range c.subs {
		out = append(out, every(s, append(append([]string(nil), path...), s.name))...)
	}
	return out
}

// Every command and subcommand answers --help, -h and `help` on standard
// output with exit 0: its synopsis and, for a group, its subcommands, for
// a leaf, every one of its flags with what it is for. The walk covers the
// whole tree, so a new command cannot forget.
func TestEveryCommandAnswersHelp(t *testing.T) {
	cmds := every(root, nil)
	if len(cmds) < 25 {
		t.Fatalf("only %d commands registered", len(cmds))
	}
	for _, path := range cmds {
		c := root
		for _, name := range path {
			c = c.sub(name)
		}
		if c.summary == "" || c.usage == "" {
			t.Errorf("%q: no summary or synopsis", path)
		}
		for _, form := range [][]string{append(append([]string(nil), path...), "--help"), append(append([]string(nil), path...), "-h"), append([]string{"help"}, path...)} {
			code, out, errOut := runHelp(form...)
			if code != 0 || errOut != "" {
				t.Errorf("agentgov %s: exit %d, stderr %q", strings.Join(form, " "), code, errOut)
				continue
			}
			if !strings.HasPrefix(out, "usage: agentgov") {
				t.Errorf("agentgov %s: help does not open with the synopsis:\n%s", strings.Join(form, " "), out)
			}
			for _, s := range c.subs {
				if !strings.Contains(out, "  "+s.name+" ") {
					t.Errorf("agentgov %s: help does not list %s", strings.Join(form, " "), s.name)
				}
			}
			if c.setup != nil {
				fs := flag.NewFlagSet("", flag.ContinueOnError)
				c.setup(fs)
				fs.VisitAll(func(f *flag.Flag) {
					if f.Usage == "" {
						t.Errorf("agentgov %s: flag --%s says nothing of what it is for", strings.Join(path, " "), f.Name)
					}
					if !regexp.MustCompile(`(?m)^  --` + regexp.QuoteMeta(f.Name) + `\b`).MatchString(out) {
						t.Errorf("agentgov %s: help does not show --%s:\n%s", strings.Join(path, " "), f.Name, out)
					}
				})
			}
		}
	}
}

func runHelp(args ...string) (int, string, string) {
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// Help is asked with flags or arguments beside it too: `approvals approve
// ID --help`, `mcp run --name x --help`; but a --help after the upstream
// command of mcp is the upstream's.
func TestHelpAmongOtherArguments(t *testing.T) {
	for _, args := range [][]string{
		{"approvals", "approve", "apr_1", "--help"},
		{"mcp", "run", "--name", "fs", "--help"},
		{"audit", "verify", "--data", "/nonexistent", "-h"},
		{"help", "mcp", "run"},
	} {
		if code, out, errOut := runHelp(args...); code != 0 || !strings.HasPrefix(out, "usage: agentgov") || errOut != "" {
			t.Errorf("%q: exit %d\n%s%s", args, code, out, errOut)
		}
	}
	// Here --help goes to the upstream, which does not exist.
	if code, out, _ := runHelp("mcp", "scan", "--", "/nonexistent/server", "--help"); code == 0 || strings.HasPrefix(out, "usage:") {
		t.Errorf("--help after the upstream command was taken as agentgov's: exit %d\n%s", code, out)
	}
}

// Mistakes exit 2 on standard error, with the synopsis; nothing at all is
// a mistake too, but asking is not.
func TestUsageMistakes(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"frobnicate"},
		{"mcp"},
		{"mcp", "frobnicate"},
		{"serve", "--bogus"},
		{"policy", "lint"},
		{"audit", "prove"},
	} {
		code, out, errOut := runHelp(args...)
		if code != 2 || out != "" || !strings.Contains(errOut, "usage: agentgov") {
			t.Errorf("%q: exit %d, stdout %q, stderr %q", args, code, out, errOut)
		}
	}
}

// --version names the module version; built from a checkout, "devel" and
// the revision.
func TestVersion(t *testing.T) {
	for _, arg := range []string{"--version", "version"} {
		out, err := exec.Command(binPath, arg).Output()
		if err != nil {
			t.Fatalf("agentgov %s: %v", arg, err)
		}
		if !regexp.MustCompile(`^agentgov (v\d+\.\d+\.\d+\S*|devel( [0-9a-f]{12}( \(modified\))?)?) go1\.\d+`).Match(out) {
			t.Errorf("agentgov %s = %q", arg, out)
		}
	}
}

func TestVersionOfABuild(t *testing.T) {
	for _, c := range []struct {
		bi   debug.BuildInfo
		want string
	}{
		{debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "v1.2.3"}}, "v1.2.3 go1.26.0"},
		{debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "0123456789abcdef0123"}, {Key: "vcs.modified", Value: "true"}}}, "devel 0123456789ab (modified) go1.26.0"},
		{debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "0123456789abcdef0123"}, {Key: "vcs.modified", Value: "false"}}}, "devel 0123456789ab go1.26.0"},
		{debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "(devel)"}}, "devel go1.26.0"},
	} {
		if got := versionOf(&c.bi); got != c.want {
			t.Errorf("versionOf(%+v) = %q, want %q", c.bi.Main, got, c.want)
		}
	}
}

// docs/cli.md documents every command and every flag, in the section that
// holds the command's synopsis (--server and --token, common to the
// commands that talk to a server, once at the top).
func TestEveryCommandIsInTheCLIReference(t *testing.T) {
	raw, err := os.ReadFile("../../docs/cli.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	for _, path := range every(root, nil) {
		c := root
		for _, name := range path {
			c = c.sub(name)
		}
		if c.setup == nil {
			continue
		}
		synopsis := regexp.MustCompile(`(?m)^agentgov ` + regexp.QuoteMeta(strings.Join(path, " ")) + `( |$)`).FindStringIndex(doc)
		if synopsis == nil {
			t.Errorf("docs/cli.md has no synopsis line of agentgov %s", strings.Join(path, " "))
			continue
		}
		start := strings.LastIndex(doc[:synopsis[0]], "\n#")
		end := len(doc)
		if next := regexp.MustCompile(`(?m)^#`).FindStringIndex(doc[synopsis[1]:]); next != nil {
			end = synopsis[1] + next[0]
		}
		section := doc[start:end]
		fs := flag.NewFlagSet("", flag.ContinueOnError)
		c.setup(fs)
		fs.VisitAll(func(f *flag.Flag) {
			if f.Name == "server" || f.Name == "token" {
				return
			}
			if !strings.Contains(section, "--"+f.Name) {
				t.Errorf("docs/cli.md: the section of agentgov %s does not mention --%s", strings.Join(path, " "), f.Name)
			}
		})
	}
}
