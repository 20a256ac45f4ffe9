package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"

	"github.com/agentgov/agentgov/config"
	"github.com/agentgov/agentgov/report"
	"github.com/agentgov/agentgov/threatmodel"
)

func init() {
	register(&command{
		name:    "threatmodel",
		summary: "weigh a threat model against the controls in force",
		usage:   "report FILE.yaml [FLAGS]",
		help:    "docs/compliance.md describes the format; threatmodel/examples/agent-deployment.yaml is an example.",
		subs: []*command{{
			name: "report", summary: "rank threats by residual risk; flag those no enforced control covers",
			usage: "report FILE.yaml [--policies PATH] [--config FILE] [--format json|md] [--fail-on-flagged]",
			help: `Inherent risk is likelihood x impact (low 1, medium 2, high 3). A mitigation lowers
it only when its control is in force in the policy set and configuration given:
by 20%, 50% or 75% for low, medium or high effectiveness. A threat none of whose
mitigations is in force is flagged. Exit 0 even with flagged threats, unless
--fail-on-flagged.

Example:
  agentgov threatmodel report threatmodel/examples/agent-deployment.yaml --format md`,
			setup: func(fs *flag.FlagSet) runner {
				pol := fs.String("policies", "", "the policy set in force (default: the configuration's, else the built-in pack)")
				cfgPath := fs.String("config", "", "the server's agentgov.yaml, for its built-in controls")
				format := fs.String("format", "json", "json or md")
				fail := fs.Bool("fail-on-flagged", false, "exit 1 when any threat is flagged")
				return func(_ context.Context, args []string, stdout, _ io.Writer) error {
					if len(args) != 1 {
						return flagError("threatmodel report takes one FILE.yaml")
					}
					if *format != "json" && *format != "md" {
						return flagError("--format: want json or md, got %q", *format)
					}
					m, err := threatmodel.Load(args[0])
					if err != nil {
						return err
					}
					in := report.Input{Builtin: report.Builtin{KillSwitch: true}}
					source := *pol
					if *cfgPath != "" {
						cfg, err := config.Load(*cfgPath)
						if err != nil {
							return err
						}
						if source == "" {
							source = cfg.Policies
						}
						in.Builtin = builtinControls(cfg)
					}
					if in.Set, err = loadPolicies(source); err != nil {
						return err
					}
					c := threatmodel.Controls{Builtin: report.BuiltinControls(in), Rules: map[string]bool{}}
					for _, d := range in.Set.Documents() {
						for _, r := range d.Rules {
							c.Rules[r.ID] = true
						}
					}
					rep, err := threatmodel.Assess(m, c)
					if err != nil {
						return fmt.Errorf("%s: %w", args[0], err)
					}
					if *format == "md" {
						err = rep.WriteMarkdown(stdout)
					} else {
						enc := json.NewEncoder(stdout)
						enc.SetIndent("", "  ")
						err = enc.Encode(rep)
					}
					if err != nil {
						return err
					}
					if *fail && rep.Flagged > 0 {
						return &exitError{code: 1, msg: fmt.Sprintf("%d threats flagged", rep.Flagged)}
					}
					return nil
				}
			},
		}},
	})
}
