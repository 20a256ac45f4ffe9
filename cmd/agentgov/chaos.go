package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/agentgov/agentgov/client"
)

func init() {
	register(&command{
		name:    "chaos",
		summary: "list or switch the chaos experiments of a running server",
		usage:   "list|enable ID|disable ID [ARGS]",
		help: `Chaos experiments (chaos: in agentgov.yaml, see docs/chaos.md) inject latency, errors and
dropped connections into the calls the MCP gateway and the model proxy forward. These commands
list them and switch them on or off while the server runs; each switch is audited with the
token's name and --reason. A switch holds on the replica that took it: with several replicas
behind one address, switch each. They need an admin token.`,
		subs: []*command{
			{
				name: "list", summary: "list the chaos experiments", usage: "list [--json] [--server URL] [--token TOKEN]",
				setup: func(fs *flag.FlagSet) runner {
					srv := newServerFlags(fs, "an admin")
					asJSON := fs.Bool("json", false, "print the experiments as JSON, as the server sends them")
					return func(ctx context.Context, args []string, stdout, _ io.Writer) error {
						if len(args) != 0 {
							return flagError("chaos list takes no arguments, got %q", args)
						}
						c, err := srv.client()
						if err != nil {
							return err
						}
						ctx, cancel := context.WithTimeout(ctx, callTimeout)
						defer cancel()
						all, err := c.ChaosExperiments(ctx)
						if err != nil {
							return err
						}
						if *asJSON {
							return writeIndented(stdout, map[string]any{"experiments": nonNil(all)})
						}
						return writeChaos(stdout, all)
					}
				},
			},
			chaosSwitch(true),
			chaosSwitch(false),
		},
	})
}

func chaosSwitch(on bool) *command {
	name, did := "disable", "disabled"
	if on {
		name, did = "enable", "enabled"
	}
	return &command{
		name: name, summary: name + " a chaos experiment on the server", usage: name + " ID [--reason TEXT] [--server URL] [--token TOKEN]",
		help: fmt.Sprintf("Example:\n  agentgov chaos %s gpt-outage --reason \"game day\"", name),
		setup: func(fs *flag.FlagSet) runner {
			srv := newServerFlags(fs, "an admin")
			reason := fs.String("reason", "", "why, for the audit log")
			return func(ctx context.Context, args []string, stdout, _ io.Writer) error {
				if len(args) != 1 || args[0] == "" {
					return flagError("chaos %s takes exactly one experiment id, got %q", name, args)
				}
				c, err := srv.client()
				if err != nil {
					return err
				}
				ctx, cancel := context.WithTimeout(ctx, callTimeout)
				defer cancel()
				e, err := c.SwitchChaos(ctx, args[0], on, *reason)
				if err != nil {
					return err
				}
				state := "inactive (outside its window)"
				if e.Active {
					state = "active"
				}
				if !e.Enabled {
					state = "off"
				}
				fmt.Fprintf(stdout, "%s %s: %s\n", did, e.ID, state)
				return nil
			}
		},
	}
}

func writeChaos(w io.Writer, all []client.ChaosExperiment) error {
	if len(all) == 0 {
		fmt.Fprintln(w, "no chaos experiments configured")
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tFAULT\tPROBABILITY\tMATCH\tSTATE\tINJECTED")
	for _, e := range all {
		var match []string
		for _, l := range []struct {
			name string
			v    []string
		}{{"tools", e.Match.Tools}, {"servers", e.Match.Servers}, {"models", e.Match.Models}} {
			if len(l.v) > 0 {
				match = append(match, l.name+"="+strings.Join(l.v, ","))
			}
		}
		state := "off"
		switch {
		case e.Active:
			state = "active"
		case e.Enabled:
			state = "on, outside its window"
		}
		fmt.Fprintf(tw, "%s\t%s\t%g\t%s\t%s\t%d\n", e.ID, e.Fault, e.Probability, strings.Join(match, " "), state, e.Injected)
	}
	return tw.Flush()
}
