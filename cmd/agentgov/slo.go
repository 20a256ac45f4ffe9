package main

import (
	"context"
	"flag"
	"io"

	"github.com/agentgov/agentgov/sre"
)

func init() {
	register(&command{
		name:    "slo",
		summary: "service level objectives: Prometheus rules for them",
		usage:   "rules [--config FILE]",
		subs: []*command{{
			name:    "rules",
			summary: "print Prometheus recording and alerting rules for the configured SLOs",
			usage:   "rules [--config FILE]",
			help: `Prints, for every SLO under slos: in the configuration, Prometheus recording rules of its
error ratio over 5m, 30m, 1h, 6h, 3d and its own window, computed from the counter
agentgov_slo_events_total that /metrics exports, its objective, error budget and burn rates,
and the SRE workbook's multiwindow burn-rate alerts: a page at 14.4x over 1h and 5m or 6x
over 6h and 30m, a ticket at 1x over 3d and 6h. The shape and labels are those Sloth
generates, so dashboards made for Sloth read them; promtool check rules accepts them.

Example:
  agentgov slo rules --config agentgov.yaml > agentgov-slo.rules.yaml`,
			setup: func(fs *flag.FlagSet) runner {
				cfgPath := fs.String("config", "", "the configuration file (default agentgov.yaml when present)")
				return func(_ context.Context, args []string, stdout, _ io.Writer) error {
					if len(args) != 0 {
						return flagError("slo rules takes no arguments, got %q", args)
					}
					cfg, err := loadConfig(*cfgPath)
					if err != nil {
						return err
					}
					return sre.Rules(cfg.Reliability(), stdout)
				}
			},
		}},
	})
}
