package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/agentgov/agentgov/approval"
	"github.com/agentgov/agentgov/client"
)

func init() {
	commands["approvals"] = command{
		summary: "list, approve or deny approval tickets on a running server",
		run:     runApprovals,
	}
}

const approvalsUsage = `usage: agentgov approvals list [--status pending|approved|denied|expired|used|all] [--json]
       agentgov approvals approve ID [--note TEXT]
       agentgov approvals deny ID [--note TEXT]

flags common to every subcommand:
  --server URL   the agentgov server (default $AGENTGOV_SERVER or http://127.0.0.1:8420)
  --token TOKEN  an approver or admin token (default $AGENTGOV_TOKEN)`

func runApprovals(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if done, err := helpOrMissing(args, approvalsUsage, stderr); done {
		return err
	}
	sub, rest := args[0], args[1:]
	fs, srv := remoteFlagSet("approvals " + sub)
	switch sub {
	case "list":
		status := fs.String("status", "pending", "")
		asJSON := fs.Bool("json", false, "")
		pos, err := parseFlags(fs, rest)
		if err != nil {
			return usageError(err, approvalsUsage)
		}
		if len(pos) != 0 {
			return usageError(fmt.Errorf("approvals list takes no arguments, got %q", pos), approvalsUsage)
		}
		var st approval.Status
		switch *status {
		case "all", "":
		case "pending", "approved", "denied", "expired", "used":
			st = approval.Status(*status)
		default:
			return usageError(fmt.Errorf("unknown --status %q", *status), approvalsUsage)
		}
		c, err := srv.client()
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(ctx, callTimeout)
		defer cancel()
		tickets, err := c.Approvals(ctx, st)
		if err != nil {
			return err
		}
		if *asJSON {
			return writeIndented(stdout, map[string]any{"approvals": nonNil(tickets)})
		}
		printTickets(stdout, tickets)
		return nil
	case "approve", "deny":
		note := fs.String("note", "", "")
		pos, err := parseFlags(fs, rest)
		if err != nil {
			return usageError(err, approvalsUsage)
		}
		if len(pos) != 1 || pos[0] == "" {
			return usageError(fmt.Errorf("approvals %s takes exactly one ticket id", sub), approvalsUsage)
		}
		c, err := srv.client()
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(ctx, callTimeout)
		defer cancel()
		decide := c.Approve
		if sub == "deny" {
			decide = c.DenyApproval
		}
		t, err := decide(ctx, pos[0], *note)
		if err != nil {
			return err
		}
		if t.Status == "" {
			fmt.Fprintf(stdout, "%s %s\n", pastTense(sub), pos[0])
			return nil
		}
		fmt.Fprintf(stdout, "%s: %s\n", t.ID, t.Status)
		return nil
	}
	return usageError(fmt.Errorf("unknown approvals subcommand %q", sub), approvalsUsage)
}

func pastTense(verb string) string {
	if verb == "deny" {
		return "denied"
	}
	return verb + "d"
}

func printTickets(w io.Writer, tickets []approval.Ticket) {
	if len(tickets) == 0 {
		fmt.Fprintln(w, "no approval tickets")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATUS\tAGENT\tSESSION\tTOOL\tRULES\tAPPROVERS\tEXPIRES\tARGS")
	for _, t := range tickets {
		tool := t.Tool.Name
		if t.Tool.Server != "" {
			tool = t.Tool.Server + "/" + tool
		}
		expires := "-"
		if !t.ExpiresAt.IsZero() {
			expires = t.ExpiresAt.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.Status, dash(t.AgentID), dash(t.Session), dash(tool),
			dash(strings.Join(t.Rules, ",")), dash(strings.Join(t.Approvers, ",")), expires, dash(shorten(string(t.Args), 60)))
	}
	tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}

// callTimeout bounds each request the server subcommands send.
const callTimeout = 30 * time.Second

// serverFlags are the --server and --token flags of the subcommands that
// talk to a running server.
type serverFlags struct {
	url   *string
	token *string
}

// helpOrMissing handles a command given no subcommand (usage, exit 2) or
// asking for help (usage, exit 0); done says the caller should return err.
func helpOrMissing(args []string, usage string, stderr io.Writer) (done bool, err error) {
	if len(args) > 0 && args[0] != "-h" && args[0] != "--help" && args[0] != "help" {
		return false, nil
	}
	fmt.Fprintln(stderr, usage)
	if len(args) == 0 {
		return true, &exitError{code: 2}
	}
	return true, nil
}

// remoteFlagSet is the flag set of a subcommand that talks to a server,
// with --server and --token already defined.
func remoteFlagSet(name string) (*flag.FlagSet, serverFlags) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs, newServerFlags(fs)
}

func newServerFlags(fs *flag.FlagSet) serverFlags {
	def := os.Getenv("AGENTGOV_SERVER")
	if def == "" {
		def = "http://127.0.0.1:8420"
	}
	return serverFlags{
		url:   fs.String("server", def, ""),
		token: fs.String("token", os.Getenv("AGENTGOV_TOKEN"), ""),
	}
}

// client returns an API client of the server the flags name. A server
// error it returns later prints as the server's own message.
func (f serverFlags) client() (*client.Client, error) {
	c, err := client.New(*f.url, *f.token, client.WithUserAgent("agentgov-cli"))
	if err != nil {
		return nil, &exitError{code: 2, msg: "--server " + strings.TrimPrefix(err.Error(), "client: ")}
	}
	return c, nil
}

// nonNil makes an empty list print as [] rather than null, as the server
// sends it.
func nonNil[T any](l []T) []T {
	if l == nil {
		return []T{}
	}
	return l
}

// writeIndented prints v as indented JSON, the form --json gives.
func writeIndented(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode answer: %w", err)
	}
	b = append(b, '\n')
	_, err = w.Write(b)
	return err
}

// parseFlags parses flags wherever they appear among args, so that
// "approve ID --note x" and "approve --note x ID" both work, and returns the
// positional arguments.
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func usageError(err error, usage string) error {
	return &exitError{code: 2, msg: err.Error() + "\n" + usage}
}
