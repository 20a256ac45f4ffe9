package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/agentgov/agentgov/govern"
	"github.com/agentgov/agentgov/policies"
	"github.com/agentgov/agentgov/policy"
	"github.com/agentgov/agentgov/provenance"
	"github.com/agentgov/agentgov/replay"
)

func init() {
	register(&command{
		name:    "replay-runs",
		summary: "measure policies on recorded agent runs",
		usage:   "replay-runs --format agentdojo [--policies PATH] [--runs stopped|all] [--perturb constants,PHRASING] [--seed N] FILE.jsonl",
		help: `Each run is played call by call through the decision pipeline, in a session
of its own with provenance tracked: the user's request at point input, each
tool call at pre_tool_call, each tool result at post_tool_call. A run stops
at the first decision that is not an allow. The table says, per suite and
overall, how many successful attacks were stopped and how many benign runs
were interrupted (any non-allow) or denied; then which rules stopped runs.
See docs/provenance.md.

--perturb rewrites the attacks before the replay, to check that the figures
hold for other attackers: "constants" gives every value an injection
introduces (an account, address, host, phone number or name found in the
injection and in no benign run or user request) a freshly generated value of
its kind, consistently across the run; a phrasing replaces the words around
each injection's goal with another style (bare, ignore, todo, system,
urgent, tools, note, comment).
The model's recorded calls are kept: the replay asks whether the policies
stop the same calls when what the model read looks different.

Example:
  agentgov replay-runs --format agentdojo runs/gpt-4o-2024-05-13.jsonl`,
		setup: replayRuns,
	})
}

func replayRuns(fl *flag.FlagSet) runner {
	format := fl.String("format", "", "`FORMAT` of the runs: agentdojo (AgentDojo's recorded runs, one JSON object a line)")
	dir := fl.String("policies", "", "policy file or directory `PATH` (default: the built-in pack)")
	runs := fl.String("runs", "", "`WHICH` runs to list after the table, one a line: stopped or all")
	perturb := fl.String("perturb", "", "comma-separated `LIST`: constants, and at most one phrasing ("+strings.Join(replay.Phrasings(), ", ")+")")
	seed := fl.Uint64("seed", 1, "`N` seeds the values --perturb constants draws")
	return func(ctx context.Context, args []string, stdout, _ io.Writer) error {
		if len(args) != 1 {
			return flagError("replay-runs takes one FILE of runs")
		}
		if *format != "agentdojo" {
			return flagError("--format must be agentdojo, not %q", *format)
		}
		if *runs != "" && *runs != "stopped" && *runs != "all" {
			return flagError("--runs must be stopped or all, not %q", *runs)
		}
		p, err := parsePerturb(*perturb)
		if err != nil {
			return err
		}
		p.Seed = *seed
		return runReplay(ctx, *dir, args[0], *runs, p, stdout)
	}
}

// parsePerturb reads --perturb.
func parsePerturb(list string) (replay.Perturbation, error) {
	var p replay.Perturbation
	if list == "" {
		return p, nil
	}
	for _, item := range strings.Split(list, ",") {
		switch item = strings.TrimSpace(item); {
		case item == "constants":
			p.Constants = true
		case slices.Contains(replay.Phrasings(), item):
			if p.Phrasing != "" {
				return p, flagError("--perturb takes one phrasing, not %s and %s", p.Phrasing, item)
			}
			p.Phrasing = item
		default:
			return p, flagError("--perturb: %q is neither constants nor a phrasing (%s)", item, strings.Join(replay.Phrasings(), ", "))
		}
	}
	return p, nil
}

func runReplay(ctx context.Context, dir, file, runs string, p replay.Perturbation, stdout io.Writer) error {
	var set *policy.Set
	var err error
	if dir == "" {
		set, err = policies.Builtin()
	} else {
		set, err = policy.Load(dir)
	}
	if err != nil {
		return loadErrors(stdout, err)
	}
	f, err := os.Open(file)
	if err != nil {
		return fmt.Errorf("replay-runs: %w", err)
	}
	defer f.Close()
	recorded, err := replay.ReadAgentDojo(f)
	if err != nil {
		return fmt.Errorf("replay-runs: %s: %w", file, err)
	}
	if p.Constants || p.Phrasing != "" {
		var st *replay.PerturbStats
		if recorded, st, err = replay.Perturb(recorded, p); err != nil {
			return fmt.Errorf("replay-runs: --perturb: %w", err)
		}
		fmt.Fprintf(stdout, "perturbed: phrasing %s, constants %v (seed %d): %d of %d tool results holding an injection rephrased; constants rewritten: %s\n\n",
			cmp.Or(p.Phrasing, "as recorded"), p.Constants, p.Seed, st.Rephrased, st.InjectedResults, formatCounts(st.Constants))
		if runs != "" {
			// What the rewriting took for the attacker's: a reader checks it.
			for _, kind := range slices.Sorted(maps.Keys(st.Found)) {
				fmt.Fprintf(stdout, "attacker %s: %s\n", kind, strings.Join(st.Found[kind], " | "))
			}
			for _, suite := range slices.Sorted(maps.Keys(st.Goals)) {
				for _, g := range st.Goals[suite] {
					fmt.Fprintf(stdout, "goal %s: %s\n", suite, strings.ReplaceAll(g, "\n", " "))
				}
			}
			fmt.Fprintln(stdout)
		}
	}
	eng := govern.New(set, govern.WithProvenance(provenance.New(provenance.Config{})))
	rep, err := replay.Replay(ctx, eng, recorded)
	if err != nil {
		return fmt.Errorf("replay-runs: %w", err)
	}
	if err := rep.Write(stdout); err != nil || runs == "" {
		return err
	}
	fmt.Fprintln(stdout)
	return rep.WriteRuns(stdout, runs == "all")
}

func formatCounts(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%d %s", m[k], k))
	}
	return strings.Join(parts, ", ")
}
