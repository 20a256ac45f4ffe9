package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/agentgov/agentgov/policy"
	"github.com/agentgov/agentgov/report"
)

func init() {
	c := root.sub("policy")
	c.subs = append(c.subs, &command{
		name: "review", summary: "list the documents overdue for review (review: {frequency, reviewed})",
		usage: "review [PATH] [--at YYYY-MM-DD] [--json] [--fail-on-overdue]",
		help: `PATH is a directory, file or bundle (default: the built-in pack). A document is
due when its review.reviewed date plus its review.frequency has passed, or when it
has a frequency and was never reviewed. The last line is "N overdue for review".

Example:
  agentgov policy review ./policies --fail-on-overdue`,
		setup: func(fs *flag.FlagSet) runner {
			at := fs.String("at", "", "judge as of this date (YYYY-MM-DD; default today)")
			asJSON := fs.Bool("json", false, "print the overdue documents as JSON")
			fail := fs.Bool("fail-on-overdue", false, "exit 1 when any document is overdue")
			return func(_ context.Context, args []string, stdout, _ io.Writer) error {
				if len(args) > 1 {
					return flagError("policy review takes at most one PATH")
				}
				path := ""
				if len(args) == 1 {
					path = args[0]
				}
				now := time.Now()
				if *at != "" {
					t, err := time.Parse(policy.ReviewDate, *at)
					if err != nil {
						return flagError("--at: want a date YYYY-MM-DD, got %q", *at)
					}
					now = t
				}
				set, err := loadPolicies(path)
				if err != nil {
					return err
				}
				due := report.Overdue(set, now)
				if *asJSON {
					enc := json.NewEncoder(stdout)
					enc.SetIndent("", "  ")
					if err := enc.Encode(due); err != nil {
						return err
					}
				} else {
					for _, r := range due {
						last := "never reviewed"
						if r.Reviewed != "" {
							last = "last reviewed " + r.Reviewed + ", due " + r.Due.Format(policy.ReviewDate)
						}
						who := "no approvers named"
						if len(r.Approvers) > 0 {
							who = "approvers " + strings.Join(r.Approvers, ", ")
						}
						fmt.Fprintf(stdout, "%s (%s): %s review %s; %s\n", r.Document, r.File, r.Frequency, last, who)
					}
					fmt.Fprintf(stdout, "%d overdue for review\n", len(due))
				}
				if *fail && len(due) > 0 {
					return &exitError{code: 1}
				}
				return nil
			}
		},
	})
}
