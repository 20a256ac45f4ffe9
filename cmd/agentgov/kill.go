package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/agentgov/agentgov/killswitch"
)

func init() {
	commands["kill"] = command{
		summary: "engage, release or list kill switches on a running server",
		run:     runKill,
	}
}

const killUsage = `usage: agentgov kill system --reason TEXT
       agentgov kill agent|session AGENT_OR_SESSION_ID --reason TEXT
       agentgov kill principal user:NAME|team:NAME|org:NAME --reason TEXT
       agentgov kill release ID
       agentgov kill list [--all] [--json]

flags common to every subcommand:
  --server URL   the agentgov server (default $AGENTGOV_SERVER or http://127.0.0.1:8420)
  --token TOKEN  an admin token (default $AGENTGOV_TOKEN)`

func runKill(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if done, err := helpOrMissing(args, killUsage, stderr); done {
		return err
	}
	sub, rest := args[0], args[1:]
	fs, srv := remoteFlagSet("kill " + sub)
	switch sub {
	case "system", "agent", "session", "principal":
		reason := fs.String("reason", "", "")
		pos, err := parseFlags(fs, rest)
		if err != nil {
			return usageError(err, killUsage)
		}
		var target string
		switch {
		case sub == "system" && len(pos) != 0:
			return usageError(fmt.Errorf("kill system takes no target, got %q", pos), killUsage)
		case sub != "system" && (len(pos) != 1 || pos[0] == ""):
			return usageError(fmt.Errorf("kill %s takes exactly one target", sub), killUsage)
		case sub != "system":
			target = pos[0]
		}
		if *reason == "" {
			return usageError(fmt.Errorf("--reason is required"), killUsage)
		}
		c, err := srv.client()
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(ctx, callTimeout)
		defer cancel()
		sw, err := c.Kill(ctx, killswitch.Scope(sub), target, *reason)
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
	case "release":
		pos, err := parseFlags(fs, rest)
		if err != nil {
			return usageError(err, killUsage)
		}
		if len(pos) != 1 || pos[0] == "" {
			return usageError(fmt.Errorf("kill release takes exactly one kill switch id"), killUsage)
		}
		c, err := srv.client()
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(ctx, callTimeout)
		defer cancel()
		if err := c.ReleaseKill(ctx, pos[0]); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "released %s\n", pos[0])
		return nil
	case "list":
		all := fs.Bool("all", false, "")
		asJSON := fs.Bool("json", false, "")
		pos, err := parseFlags(fs, rest)
		if err != nil {
			return usageError(err, killUsage)
		}
		if len(pos) != 0 {
			return usageError(fmt.Errorf("kill list takes no arguments, got %q", pos), killUsage)
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
	return usageError(fmt.Errorf("unknown kill subcommand %q", sub), killUsage)
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
