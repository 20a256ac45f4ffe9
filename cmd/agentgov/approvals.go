package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/agentgov/agentgov/approval"
	"github.com/agentgov/agentgov/client"
)

func init() {
	register(&command{
		name:    "approvals",
		summary: "list, approve or deny approval tickets on a running server",
		usage:   "list|approve|deny [ARGS]",
		help: `An approver or admin token decides the tickets that require_approval decisions open,
whoever asked: an agent through /v1/decide, an MCP gateway (/mcp/{server} in serve, or
mcp run --server), the model proxy. The agent then retries the same call and it goes
through, once.`,
		subs: []*command{
			{
				name: "list", summary: "list approval tickets", usage: "list [--status STATUS] [--json] [--server URL] [--token TOKEN]",
				help: "Example:\n  agentgov approvals list --token $APPROVER_TOKEN",
				setup: func(fs *flag.FlagSet) runner {
					srv := newServerFlags(fs, "an approver's or admin's")
					status := fs.String("status", "pending", "show tickets in `STATUS`: pending, approved, denied, expired, used or all")
					asJSON := fs.Bool("json", false, "print the tickets as JSON, as the server sends them")
					return func(ctx context.Context, args []string, stdout, _ io.Writer) error {
						if len(args) != 0 {
							return flagError("approvals list takes no arguments, got %q", args)
						}
						var st approval.Status
						switch *status {
						case "all", "":
						case "pending", "approved", "denied", "expired", "used":
							st = approval.Status(*status)
						default:
							return flagError("unknown --status %q", *status)
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
					}
				},
			},
			approvalDecision("approve"),
			approvalDecision("deny"),
		},
	})
}

// approvalDecision is `approvals approve` or `approvals deny`.
func approvalDecision(verb string) *command {
	return &command{
		name: verb, summary: verb + " a pending ticket", usage: verb + " ID [--note TEXT] [--server URL] [--token TOKEN]",
		help: "Example:\n  agentgov approvals " + verb + " apr_01K... --note \"invoice 7731\" --token $APPROVER_TOKEN",
		setup: func(fs *flag.FlagSet) runner {
			srv := newServerFlags(fs, "an approver's or admin's")
			note := fs.String("note", "", "a `TEXT` recorded with the decision")
			return func(ctx context.Context, args []string, stdout, _ io.Writer) error {
				if len(args) != 1 || args[0] == "" {
					return flagError("approvals %s takes exactly one ticket id", verb)
				}
				c, err := srv.client()
				if err != nil {
					return err
				}
				ctx, cancel := context.WithTimeout(ctx, callTimeout)
				defer cancel()
				decide := c.Approve
				if verb == "deny" {
					decide = c.DenyApproval
				}
				t, err := decide(ctx, args[0], *note)
				if err != nil {
					return err
				}
				if t.Status == "" {
					fmt.Fprintf(stdout, "%s %s\n", pastTense(verb), args[0])
					return nil
				}
				fmt.Fprintf(stdout, "%s: %s\n", t.ID, t.Status)
				return nil
			}
		},
	}
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
	// Where the untrusted values came from, so that the approver sees the
	// recipient came from a file, not from the user.
	for _, t := range tickets {
		paths := make([]string, 0, len(t.Provenance))
		for p := range t.Provenance {
			paths = append(paths, p)
		}
		slices.Sort(paths)
		for _, p := range paths {
			fmt.Fprintf(w, "%s: %s came from %s, not from the user\n", t.ID, p, strings.Join(t.Provenance[p], ", "))
		}
	}
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

// defaultServer is where the commands that talk to a server find it.
const defaultServer = "http://127.0.0.1:8420"

// callTimeout bounds each request the server subcommands send.
const callTimeout = 30 * time.Second

// serverFlags are the --server and --token flags of the subcommands that
// talk to a running server.
type serverFlags struct {
	url   *string
	token *string
}

// newServerFlags defines --server and --token on fs, for a command that
// talks to a running server; role says whose token it takes. Their
// defaults come from the environment when the command runs, so that help
// never prints a token.
func newServerFlags(fs *flag.FlagSet, role string) serverFlags {
	return serverFlags{
		url:   fs.String("server", "", "the agentgov server's `URL` (default $AGENTGOV_SERVER, else http://127.0.0.1:8420)"),
		token: fs.String("token", "", role+" `TOKEN` (default $AGENTGOV_TOKEN)"),
	}
}

// client returns an API client of the server the flags name. A server
// error it returns later prints as the server's own message.
func (f serverFlags) client() (*client.Client, error) {
	url, token := *f.url, *f.token
	if url == "" {
		url = os.Getenv("AGENTGOV_SERVER")
	}
	if url == "" {
		url = defaultServer
	}
	if token == "" {
		token = os.Getenv("AGENTGOV_TOKEN")
	}
	c, err := client.New(url, token, client.WithUserAgent("agentgov-cli"))
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
