package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/agentgov/agentgov/killswitch"
)

func init() {
	register(&command{
		name:    "kill",
		summary: "engage, release or list kill switches on a running server",
		usage:   "system|agent|session|principal|release|list [ARGS]",
		help: `A kill switch stops every action it covers, whatever the policies say, from the next
decision on, until it is released: MCP sessions, model calls and /v1/decide alike. It needs
an admin token.`,
		subs: []*command{
			killEngage("system", "stop every agent", "system --reason TEXT", "agentgov kill system --reason \"incident 42\""),
			killEngage("agent", "stop one agent", "agent AGENT_ID --reason TEXT", "agentgov kill agent researcher-1 --reason \"loops on payments\""),
			killEngage("session", "stop one session", "session SESSION_ID --reason TEXT", "agentgov kill session s-42 --reason \"exfiltration attempt\""),
			killEngage("principal", "stop a user's, a team's or an organisation's agents", "principal user:NAME|team:NAME|org:NAME --reason TEXT", "agentgov kill principal team:search --reason \"budget incident\""),
			{
				name: "release", summary: "release a kill switch", usage: "release ID [--server URL] [--token TOKEN]",
				help: "Example:\n  agentgov kill release ks_01K...",
				setup: func(fs *flag.FlagSet) runner {
					srv := newServerFlags(fs, "an admin")
					return func(ctx context.Context, args []string, stdout, _ io.Writer) error {
						if len(args) != 1 || args[0] == "" {
							return flagError("kill release takes exactly one kill switch id")
						}
						c, err := srv.client()
						if err != nil {
							return err
						}
						ctx, cancel := context.WithTimeout(ctx, callTimeout)
						defer cancel()
						if err := c.ReleaseKill(ctx, args[0]); err != nil {
							return err
						}
						fmt.Fprintf(stdout, "released %s\n", args[0])
						return nil
					}
				},
			},
			{
				name: "list", summary: "list kill switches", usage: "list [--all] [--json] [--server URL] [--token TOKEN]",
				setup: func(fs *flag.FlagSet) runner {
					srv := newServerFlags(fs, "an admin")
					all := fs.Bool("all", false, "include released switches")
					asJSON := fs.Bool("json", false, "print the switches as JSON, as the server sends them")
					return func(ctx context.Context, args []string, stdout, _ io.Writer) error {
						if len(args) != 0 {
							return flagError("kill list takes no arguments, got %q", args)
						}
						c, err := srv.client()
						if err != nil {
							return err
						}
						ctx, cancel := context.WithTimeout(ctx, callTimeout)
						defer cancel()
						list := c.Kills
						if *all {
							list = c.AllKills
						}
						switches, err := list(ctx)
						if err != nil {
							return err
						}
						if *asJSON {
							return writeIndented(stdout, map[string]any{"switches": nonNil(switches)})
						}
						printSwitches(stdout, switches)
						return nil
					}
				},
			},
		},
	})
}

// killEngage is `kill system|agent|session|principal`.
func killEngage(scope, summary, usage, example string) *command {
	return &command{
		name: scope, summary: summary, usage: usage + " [--server URL] [--token TOKEN]",
		help: "Example:\n  " + example,
		setup: func(fs *flag.FlagSet) runner {
			srv := newServerFlags(fs, "an admin")
			reason := fs.String("reason", "", "`TEXT` saying why (required): recorded in the audit log and given with every refusal")
			return func(ctx context.Context, args []string, stdout, _ io.Writer) error {
				var target string
				switch {
				case scope == "system" && len(args) != 0:
					return flagError("kill system takes no target, got %q", args)
				case scope != "system" && (len(args) != 1 || args[0] == ""):
					return flagError("kill %s takes exactly one target", scope)
				case scope != "system":
					target = args[0]
				}
				if *reason == "" {
					return flagError("--reason is required")
				}
				c, err := srv.client()
				if err != nil {
					return err
				}
				ctx, cancel := context.WithTimeout(ctx, callTimeout)
				defer cancel()
				sw, err := c.Kill(ctx, killswitch.Scope(scope), target, *reason)
				if err != nil {
					return err
				}
				if sw.ID == "" {
					return fmt.Errorf("decode server answer: no kill switch id in it")
				}
				what := string(sw.Scope)
				if sw.Target != "" {
					what += " " + sw.Target
				}
				fmt.Fprintf(stdout, "engaged %s (%s)\n", sw.ID, what)
				return nil
			}
		},
	}
}

func printSwitches(w io.Writer, switches []killswitch.Switch) {
	if len(switches) == 0 {
		fmt.Fprintln(w, "no kill switches engaged")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSCOPE\tTARGET\tSTATE\tBY\tENGAGED\tREASON")
	for _, s := range switches {
		state := "engaged"
		if !s.ReleasedAt.IsZero() {
			state = "released by " + dash(s.ReleasedBy)
		}
		engaged := "-"
		if !s.EngagedAt.IsZero() {
			engaged = s.EngagedAt.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.ID, s.Scope, dash(s.Target), state, dash(s.By), engaged, s.Reason)
	}
	tw.Flush()
}
