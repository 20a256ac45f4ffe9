package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/agentgov/agentgov/budget"
)

func init() {
	register(&command{
		name:    "budgets",
		summary: "list, set or delete budgets and show usage on a running server",
		usage:   "list|set|delete|usage [ARGS]",
		help: `Budgets hold token, cost and call limits per organisation, team, user, agent or session,
over a period; the engine reserves each allowed action's estimate and settles its outcome.
They need an admin token.`,
		subs: []*command{
			{
				name: "list", summary: "list the budgets", usage: "list [--json] [--server URL] [--token TOKEN]",
				setup: func(fs *flag.FlagSet) runner {
					srv := newServerFlags(fs, "an admin")
					asJSON := fs.Bool("json", false, "print the budgets as JSON, as the server sends them")
					return func(ctx context.Context, args []string, stdout, _ io.Writer) error {
						if len(args) != 0 {
							return flagError("budgets list takes no arguments, got %q", args)
						}
						c, err := srv.client()
						if err != nil {
							return err
						}
						ctx, cancel := context.WithTimeout(ctx, callTimeout)
						defer cancel()
						list, err := c.Budgets(ctx)
						if err != nil {
							return err
						}
						if *asJSON {
							return writeIndented(stdout, map[string]any{"budgets": nonNil(list)})
						}
						printBudgets(stdout, list)
						return nil
					}
				},
			},
			{
				name: "set", summary: "create or replace a budget",
				usage: "set FILE|- [--id ID] [--server URL] [--token TOKEN]\nset --id ID --period PERIOD [scope flags] [limit flags] [threshold flags] [--server URL] [--token TOKEN]",
				help: `The budget is a JSON document (docs/limits.md) from FILE or standard input (-), or is
given by flags. It is checked here, naming any mistake, before it is sent.

Examples:
  agentgov budgets set --id acme-monthly --org acme --period monthly --cost 5000 --soft 0.8
  agentgov budgets set budget.json`,
				setup: budgetsSet,
			},
			{
				name: "delete", summary: "delete a budget", usage: "delete ID [--server URL] [--token TOKEN]",
				setup: func(fs *flag.FlagSet) runner {
					srv := newServerFlags(fs, "an admin")
					return func(ctx context.Context, args []string, stdout, _ io.Writer) error {
						if len(args) != 1 || args[0] == "" {
							return flagError("budgets delete takes exactly one budget id")
						}
						c, err := srv.client()
						if err != nil {
							return err
						}
						ctx, cancel := context.WithTimeout(ctx, callTimeout)
						defer cancel()
						if err := c.DeleteBudget(ctx, args[0]); err != nil {
							return err
						}
						fmt.Fprintf(stdout, "deleted budget %s\n", args[0])
						return nil
					}
				},
			},
			{
				name: "usage", summary: "show what has been spent against the budgets", usage: "usage [scope flags] [--json] [--server URL] [--token TOKEN]",
				help: "Without scope flags, every budget; with them, the budgets that apply to an actor with that identity.\n\nExample:\n  agentgov budgets usage --org acme --agent researcher-1",
				setup: func(fs *flag.FlagSet) runner {
					srv := newServerFlags(fs, "an admin")
					scope := scopeFlags(fs)
					asJSON := fs.Bool("json", false, "print the usage as JSON, as the server sends it")
					return func(ctx context.Context, args []string, stdout, _ io.Writer) error {
						if len(args) != 0 {
							return flagError("budgets usage takes no arguments, got %q", args)
						}
						c, err := srv.client()
						if err != nil {
							return err
						}
						ctx, cancel := context.WithTimeout(ctx, callTimeout)
						defer cancel()
						list, err := c.Usage(ctx, budget.Scope{Org: *scope["org"], Team: *scope["team"], User: *scope["user"], Agent: *scope["agent"], Session: *scope["session"]})
						if err != nil {
							return err
						}
						if *asJSON {
							return writeIndented(stdout, map[string]any{"usage": nonNil(list)})
						}
						printUsage(stdout, list)
						return nil
					}
				},
			},
		},
	})
}

// scopeFlags are the identity a budget applies to: it applies when every
// one it sets matches.
func scopeFlags(fs *flag.FlagSet) map[string]*string {
	m := map[string]*string{}
	for _, k := range []struct{ name, what string }{
		{"org", "the organisation `NAME`"}, {"team", "the team `NAME`"}, {"user", "the user `NAME`"},
		{"agent", "the agent `ID`"}, {"session", "the session `ID`"},
	} {
		m[k.name] = fs.String(k.name, "", "scope: "+k.what)
	}
	return m
}

// budgetsSet builds a config from a JSON file or from flags, checks it
// locally (so that a mistake is named before anything is sent) and PUTs it,
// which creates or replaces the budget.
func budgetsSet(fs *flag.FlagSet) runner {
	srv := newServerFlags(fs, "an admin")
	id := fs.String("id", "", "the budget's `ID` (overrides the file's)")
	period := fs.String("period", "", "`PERIOD`: session, daily, weekly, monthly, none, or a rolling window such as 5h or 7d")
	tz := fs.String("timezone", "", "`TZ` of the calendar periods (default UTC)")
	scope := scopeFlags(fs)
	limits := map[string]*string{}
	for _, k := range []struct{ name, what string }{
		{"cost", "cost limit in `USD`, exact to the micro-dollar"}, {"tokens", "limit of `N` tokens, input and output"},
		{"input-tokens", "limit of `N` input tokens"}, {"output-tokens", "limit of `N` output tokens"}, {"calls", "limit of `N` calls"},
	} {
		limits[k.name] = fs.String(k.name, "", k.what)
	}
	thresholds := map[string]*string{}
	for _, k := range []struct{ name, what string }{
		{"soft", "alert at this `FRACTION` of a limit"}, {"throttle", "throttle from this `FRACTION` of a limit"},
		{"hard", "deny from this `FRACTION` of a limit (default 1)"}, {"kill", "engage the kill switch at this `FRACTION` of a limit"},
	} {
		thresholds[k.name] = fs.String(k.name, "", k.what)
	}
	mode := fs.String("throttle-mode", "", "`MODE` of the throttle: require_approval (default) or rate:N/DURATION")
	return func(ctx context.Context, pos []string, stdout, _ io.Writer) error {
		var err error
		var body []byte
		switch len(pos) {
		case 1:
			if set := setFlags(fs); len(set) > 0 && (len(set) > 1 || set[0] != "id") {
				return flagError("budgets set takes a file or flags, not both (got --%s)", strings.Join(set, ", --"))
			}
			if pos[0] == "-" {
				body, err = io.ReadAll(io.LimitReader(os.Stdin, 1<<20))
			} else {
				body, err = os.ReadFile(pos[0])
			}
			if err != nil {
				return fmt.Errorf("read budget: %w", err)
			}
		case 0:
			// Assemble the JSON the server takes; numbers go through as written
			// so that a cost keeps every digit.
			doc := map[string]any{"id": *id, "period": *period}
			if *tz != "" {
				doc["timezone"] = *tz
			}
			sc := map[string]string{}
			for k, v := range scope {
				if *v != "" {
					sc[k] = *v
				}
			}
			doc["scope"] = sc
			lim := map[string]json.Number{}
			for k, v := range limits {
				if *v != "" {
					name := strings.ReplaceAll(k, "-", "_")
					if k == "cost" {
						name = "cost_usd"
					}
					if _, err := strconv.ParseFloat(*v, 64); err != nil {
						return flagError("--%s %q is not a number", k, *v)
					}
					lim[name] = json.Number(*v)
				}
			}
			doc["limits"] = lim
			th := map[string]json.Number{}
			for k, v := range thresholds {
				if *v != "" {
					if _, err := strconv.ParseFloat(*v, 64); err != nil {
						return flagError("--%s %q is not a number", k, *v)
					}
					th[k] = json.Number(*v)
				}
			}
			if len(th) > 0 {
				doc["thresholds"] = th
			}
			if *mode != "" {
				doc["throttle"] = *mode
			}
			body, _ = json.Marshal(doc)
		default:
			return flagError("budgets set takes at most one file, got %q", pos)
		}
		c, err := budget.DecodeConfig(body)
		if err != nil {
			return &exitError{code: 1, msg: "budget: " + err.Error()}
		}
		if *id != "" {
			c.ID = *id
		}
		if c.ID == "" {
			return flagError("the budget needs an id (in the JSON or --id)")
		}
		api, err := srv.client()
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(ctx, callTimeout)
		defer cancel()
		if _, err := api.PutBudget(ctx, c); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "saved budget %s\n", c.ID)
		return nil
	}
}

func setFlags(fs *flag.FlagSet) []string {
	var names []string
	fs.Visit(func(f *flag.Flag) {
		if f.Name != "server" && f.Name != "token" {
			names = append(names, f.Name)
		}
	})
	return names
}

// amountsView reads amounts loosely: the CLI shows what the server says.
type amountsView struct {
	CostUSD      json.Number `json:"cost_usd"`
	Tokens       int64       `json:"tokens"`
	InputTokens  int64       `json:"input_tokens"`
	OutputTokens int64       `json:"output_tokens"`
	Calls        int64       `json:"calls"`
}

func (a amountsView) String() string { return a.format(true) }

// format lists the non-zero amounts; the usage table leaves out the
// input/output split (--json has it).
func (a amountsView) format(split bool) string {
	var parts []string
	if c := a.CostUSD.String(); c != "" && c != "0" {
		parts = append(parts, "$"+dollars(c))
	}
	items := []struct {
		n    int64
		unit string
	}{{a.Tokens, "tokens"}, {a.InputTokens, "input tokens"}, {a.OutputTokens, "output tokens"}, {a.Calls, "calls"}}
	for i, p := range items {
		if p.n != 0 && (split || i == 0 || i == 3) {
			parts = append(parts, fmt.Sprintf("%d %s", p.n, p.unit))
		}
	}
	if parts == nil {
		return "-"
	}
	return strings.Join(parts, ", ")
}

// dollars pads an exact decimal to at least cents: 5000 → 5000.00, 0.5 →
// 0.50, 0.123456 stays.
func dollars(s string) string {
	i := strings.IndexByte(s, '.')
	switch {
	case strings.ContainsAny(s, "eE"):
		return s
	case i < 0:
		return s + ".00"
	case len(s)-i == 2:
		return s + "0"
	}
	return s
}

// amountsOf reads amounts as the server writes them, cost as an exact
// decimal, for display.
func amountsOf(a budget.Amounts) amountsView {
	var v amountsView
	if b, err := json.Marshal(a); err == nil {
		_ = json.Unmarshal(b, &v)
	}
	return v
}

func scopeText(s budget.Scope) string {
	var parts []string
	for _, kv := range [][2]string{{"org", s.Org}, {"team", s.Team}, {"user", s.User}, {"agent", s.Agent}, {"session", s.Session}} {
		if kv[1] != "" {
			parts = append(parts, kv[0]+"="+kv[1])
		}
	}
	if parts == nil {
		return "global"
	}
	return strings.Join(parts, ",")
}

func printBudgets(w io.Writer, list []budget.Config) {
	if len(list) == 0 {
		fmt.Fprintln(w, "no budgets")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSCOPE\tPERIOD\tLIMITS\tTHRESHOLDS")
	for _, b := range list {
		period := b.Period
		if b.Timezone != "" && b.Timezone != "UTC" && (period == "daily" || period == "weekly" || period == "monthly") {
			period += " (" + b.Timezone + ")"
		}
		var th []string
		for _, t := range []struct {
			name string
			v    float64
		}{{"soft", b.Thresholds.Soft}, {"throttle", b.Thresholds.Throttle}, {"hard", b.Thresholds.Hard}, {"kill", b.Thresholds.Kill}} {
			if t.v != 0 {
				s := fmt.Sprintf("%s %g%%", t.name, t.v*100)
				if t.name == "throttle" && b.Throttle != "" && b.Throttle != budget.ThrottleApproval {
					s += " (" + b.Throttle + ")"
				}
				th = append(th, s)
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", b.ID, scopeText(b.Scope), period, amountsOf(b.Limits), dash(strings.Join(th, ", ")))
	}
	tw.Flush()
}

func printUsage(w io.Writer, list []budget.Usage) {
	if len(list) == 0 {
		fmt.Fprintln(w, "no budgets apply")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSCOPE\tPERIOD\tSINCE\tSPENT\tRESERVED\tLIMITS\tUSED")
	for _, u := range list {
		since := "-"
		if !u.PeriodStart.IsZero() {
			since = u.PeriodStart.Format(time.RFC3339)
		}
		period := u.Period
		if u.Session != "" {
			period += " " + u.Session
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.1f%%\n", u.ID, scopeText(u.Scope), period, since, amountsOf(u.Spent).format(false), amountsOf(u.Reserved).format(false), amountsOf(u.Limits), u.Fraction*100)
	}
	tw.Flush()
}
