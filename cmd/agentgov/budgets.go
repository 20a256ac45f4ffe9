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
	commands["budgets"] = command{
		summary: "list, set or delete budgets and show usage on a running server",
		run:     runBudgets,
	}
}

const budgetsUsage = `usage: agentgov budgets list [--json]
       agentgov budgets set FILE|-            a budget as JSON (DESIGN §5), from a file or stdin
       agentgov budgets set --id ID --period PERIOD [scope flags] [limit flags] [threshold flags]
       agentgov budgets delete ID
       agentgov budgets usage [scope flags] [--json]   the budgets that apply to an actor with
                                                   this identity (all budgets without flags)

scope flags (a budget applies when every one it sets matches):
  --org NAME --team NAME --user NAME --agent ID --session ID
set flags:
  --period P         session, daily, weekly, monthly, none, or a rolling window such as 5h or 7d
  --timezone TZ      for calendar periods (default UTC)
  --cost USD         cost limit in dollars, exact to the micro-dollar
  --tokens N  --input-tokens N  --output-tokens N  --calls N
  --soft F --throttle F --hard F --kill F    fractions of the limits (default: --hard 1)
  --throttle-mode M  require_approval (default) or rate:N/DURATION

flags common to every subcommand:
  --server URL   the agentgov server (default $AGENTGOV_SERVER or http://127.0.0.1:8420)
  --token TOKEN  an admin token (default $AGENTGOV_TOKEN)`

func runBudgets(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if done, err := helpOrMissing(args, budgetsUsage, stderr); done {
		return err
	}
	sub, rest := args[0], args[1:]
	fs, srv := remoteFlagSet("budgets " + sub)
	switch sub {
	case "list":
		asJSON := fs.Bool("json", false, "")
		pos, err := parseFlags(fs, rest)
		if err != nil {
			return usageError(err, budgetsUsage)
		}
		if len(pos) != 0 {
			return usageError(fmt.Errorf("budgets list takes no arguments, got %q", pos), budgetsUsage)
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
	case "set":
		return runBudgetsSet(ctx, fs, srv, rest, stdout)
	case "delete":
		pos, err := parseFlags(fs, rest)
		if err != nil {
			return usageError(err, budgetsUsage)
		}
		if len(pos) != 1 || pos[0] == "" {
			return usageError(fmt.Errorf("budgets delete takes exactly one budget id"), budgetsUsage)
		}
		c, err := srv.client()
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(ctx, callTimeout)
		defer cancel()
		if err := c.DeleteBudget(ctx, pos[0]); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "deleted budget %s\n", pos[0])
		return nil
	case "usage":
		scope := scopeFlags(fs)
		asJSON := fs.Bool("json", false, "")
		pos, err := parseFlags(fs, rest)
		if err != nil {
			return usageError(err, budgetsUsage)
		}
		if len(pos) != 0 {
			return usageError(fmt.Errorf("budgets usage takes no arguments, got %q", pos), budgetsUsage)
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
	return usageError(fmt.Errorf("unknown budgets subcommand %q", sub), budgetsUsage)
}

func scopeFlags(fs *flag.FlagSet) map[string]*string {
	m := map[string]*string{}
	for _, k := range []string{"org", "team", "user", "agent", "session"} {
		m[k] = fs.String(k, "", "")
	}
	return m
}

// runBudgetsSet builds a config from a JSON file or from flags, checks it
// locally (so that a mistake is named before anything is sent) and PUTs it,
// which creates or replaces the budget.
func runBudgetsSet(ctx context.Context, fs *flag.FlagSet, srv serverFlags, args []string, stdout io.Writer) error {
	id := fs.String("id", "", "")
	period := fs.String("period", "", "")
	tz := fs.String("timezone", "", "")
	scope := scopeFlags(fs)
	limits := map[string]*string{}
	for _, k := range []string{"cost", "tokens", "input-tokens", "output-tokens", "calls"} {
		limits[k] = fs.String(k, "", "")
	}
	thresholds := map[string]*string{}
	for _, k := range []string{"soft", "throttle", "hard", "kill"} {
		thresholds[k] = fs.String(k, "", "")
	}
	mode := fs.String("throttle-mode", "", "")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return usageError(err, budgetsUsage)
	}
	var body []byte
	switch len(pos) {
	case 1:
		if set := setFlags(fs); len(set) > 0 && (len(set) > 1 || set[0] != "id") {
			return usageError(fmt.Errorf("budgets set takes a file or flags, not both (got --%s)", strings.Join(set, ", --")), budgetsUsage)
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
					return usageError(fmt.Errorf("--%s %q is not a number", k, *v), budgetsUsage)
				}
				lim[name] = json.Number(*v)
			}
		}
		doc["limits"] = lim
		th := map[string]json.Number{}
		for k, v := range thresholds {
			if *v != "" {
				if _, err := strconv.ParseFloat(*v, 64); err != nil {
					return usageError(fmt.Errorf("--%s %q is not a number", k, *v), budgetsUsage)
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
		return usageError(fmt.Errorf("budgets set takes at most one file, got %q", pos), budgetsUsage)
	}
	c, err := budget.DecodeConfig(body)
	if err != nil {
		return &exitError{code: 1, msg: "budget: " + err.Error()}
	}
	if *id != "" {
		c.ID = *id
	}
	if c.ID == "" {
		return usageError(fmt.Errorf("the budget needs an id (in the JSON or --id)"), budgetsUsage)
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
