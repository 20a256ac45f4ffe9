package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/client"
	"github.com/agentgov/agentgov/identity"
)

// stringList is a flag given several times.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

func init() {
	register(&command{
		name:    "agents",
		summary: "register, list or revoke agents on a running server",
		usage:   "register|list|revoke [ARGS]",
		help: `The agent registry (admin): an agent registered with its public keys signs its own
short-lived JWTs (see docs/identity.md); a SPIFFE ID maps JWT-SVIDs to it. Revoking an agent
refuses every credential of it from the next request on, on every replica.`,
		subs: []*command{
			{
				name: "register", summary: "register an agent and its public keys",
				usage: "register ID --pub FILE [--kid NAME] [--type TYPE] [--ring N] [--label K=V]... [--user U] [--team T] [--org O] [--spiffe-id ID] [--server URL] [--token TOKEN]",
				help:  "Example:\n  agentgov keygen --out researcher-1\n  agentgov agents register researcher-1 --pub researcher-1.pub --type assistant --label env=production --token $ADMIN_TOKEN",
				setup: func(fs *flag.FlagSet) runner {
					srv := newServerFlags(fs, "an admin's")
					var pubs, labels stringList
					fs.Var(&pubs, "pub", "a public key `FILE` from keygen (repeat for several keys)")
					kid := fs.String("kid", "", "the key's `NAME` in JWT headers (default k1, k2, ... in the order given)")
					typ := fs.String("type", "", "the agent's `TYPE`")
					ring := fs.Int("ring", 3, "the agent's ring `N`, 0 (most privileged) to 3")
					fs.Var(&labels, "label", "a label `K=V` (repeat)")
					user := fs.String("user", "", "the principal's `USER`")
					team := fs.String("team", "", "the principal's `TEAM`")
					org := fs.String("org", "", "the principal's `ORG`")
					spiffe := fs.String("spiffe-id", "", "the SPIFFE `ID` whose JWT-SVIDs act as this agent")
					return func(ctx context.Context, args []string, stdout, _ io.Writer) error {
						if len(args) != 1 || args[0] == "" {
							return flagError("agents register takes one agent ID, got %q", args)
						}
						reg := client.AgentRegistration{ID: args[0], Type: *typ, Ring: ring, SPIFFEID: *spiffe,
							Principal: action.Principal{User: *user, Team: *team, Org: *org}}
						if *kid != "" && len(pubs) != 1 {
							return flagError("--kid names one key: give exactly one --pub with it")
						}
						for i, p := range pubs {
							b, err := os.ReadFile(p)
							if err != nil {
								return flagError("--pub: %v", err)
							}
							if _, err := identity.ParsePublicKey(string(b)); err != nil {
								return flagError("--pub %s: %v", p, err)
							}
							name := fmt.Sprintf("k%d", i+1)
							if *kid != "" {
								name = *kid
							}
							reg.Keys = append(reg.Keys, client.AgentKey{KID: name, PublicKey: strings.TrimSpace(string(b))})
						}
						for _, l := range labels {
							k, v, ok := strings.Cut(l, "=")
							if !ok || k == "" {
								return flagError("--label: want K=V, got %q", l)
							}
							if reg.Labels == nil {
								reg.Labels = map[string]string{}
							}
							reg.Labels[k] = v
						}
						c, err := srv.client()
						if err != nil {
							return err
						}
						ctx, cancel := context.WithTimeout(ctx, callTimeout)
						defer cancel()
						a, err := c.RegisterAgent(ctx, reg)
						if err != nil {
							return err
						}
						fmt.Fprintf(stdout, "registered %s (ring %d)\n", a.ID, a.Ring)
						for _, k := range a.Keys {
							fmt.Fprintf(stdout, "  key %s thumbprint %s\n", k.KID, k.Thumbprint)
						}
						return nil
					}
				},
			},
			{
				name: "list", summary: "list the registered agents", usage: "list [--json] [--server URL] [--token TOKEN]",
				setup: func(fs *flag.FlagSet) runner {
					srv := newServerFlags(fs, "an admin's")
					asJSON := fs.Bool("json", false, "print the agents as JSON, as the server sends them")
					return func(ctx context.Context, args []string, stdout, _ io.Writer) error {
						if len(args) != 0 {
							return flagError("agents list takes no arguments, got %q", args)
						}
						c, err := srv.client()
						if err != nil {
							return err
						}
						ctx, cancel := context.WithTimeout(ctx, callTimeout)
						defer cancel()
						all, err := c.Agents(ctx)
						if err != nil {
							return err
						}
						if *asJSON {
							return writeIndented(stdout, map[string]any{"agents": nonNil(all)})
						}
						tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
						fmt.Fprintln(tw, "ID\tTYPE\tRING\tKEYS\tSTATE\tREGISTERED")
						for _, a := range all {
							state := "active"
							if a.Revoked() {
								state = "revoked " + a.RevokedAt.Format(time.RFC3339)
							}
							fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\n", a.ID, a.Type, a.Ring, len(a.Keys), state, a.CreatedAt.Format(time.RFC3339))
						}
						return tw.Flush()
					}
				},
			},
			{
				name: "revoke", summary: "revoke an agent: every credential of it is refused", usage: "revoke ID [--server URL] [--token TOKEN]",
				setup: func(fs *flag.FlagSet) runner {
					srv := newServerFlags(fs, "an admin's")
					return func(ctx context.Context, args []string, stdout, _ io.Writer) error {
						if len(args) != 1 || args[0] == "" {
							return flagError("agents revoke takes one agent ID, got %q", args)
						}
						c, err := srv.client()
						if err != nil {
							return err
						}
						ctx, cancel := context.WithTimeout(ctx, callTimeout)
						defer cancel()
						a, err := c.RevokeAgent(ctx, args[0])
						if err != nil {
							return err
						}
						fmt.Fprintf(stdout, "revoked %s at %s\n", a.ID, a.RevokedAt.Format(time.RFC3339))
						return nil
					}
				},
			},
		},
	})
}
