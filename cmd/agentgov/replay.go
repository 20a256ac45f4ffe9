package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/agentgov/agentgov/evidence"
	"github.com/agentgov/agentgov/models"
	"github.com/agentgov/agentgov/store/sqlite"
)

func init() {
	register(&command{
		name:    "replay",
		summary: "re-decide the audit log's past decisions under another policy set",
		usage:   "replay --policies PATH [--data DIR | --store DSN] [--since RFC3339] [--json]",
		help: `Offline: reads the data directory without changing it (also while a server runs
on it). Prints "N of M decisions change", then one line per changed decision:
id, old -> new effect, the new set's rules. Only the policy stage is re-decided;
kill switches, sessions, rate limits, budgets and approvals are state of their
moment. Values masked in the log (secrets, personal data, redact obligations) are
re-decided as masked: such decisions are marked "masked". docs/delivery.md says more.

Example:
  agentgov replay --policies ./candidate --data ./agentgov-data --since 2026-01-01T00:00:00Z`,
		setup: replayCmd,
	})
}

func replayCmd(fs *flag.FlagSet) runner {
	data := fs.String("data", "./agentgov-data", "data `DIR` holding agentgov.db")
	store := fs.String("store", "", "PostgreSQL `DSN` of replicas sharing a database: replay every replica's decisions")
	pub := fs.String("pub", "", "verifier key `FILE` of the log (default DIR/audit.pub); with --store, the replicas' keys, one a line (default: those recorded in the database)")
	pol := fs.String("policies", "", "the policy set to re-decide under: a directory, file or bundle (required)")
	since := fs.String("since", "", "only decisions made at or after this time (RFC 3339)")
	asJSON := fs.Bool("json", false, "print {total, changed, skipped, masked, decisions: [{id, old, new, rules, ...}]}")
	return func(ctx context.Context, args []string, stdout, _ io.Writer) error {
		if len(args) > 0 {
			return flagError("replay takes no arguments")
		}
		if *pol == "" {
			return flagError("replay needs --policies PATH, the set to re-decide under")
		}
		var from time.Time
		if *since != "" {
			t, err := time.Parse(time.RFC3339, *since)
			if err != nil {
				return flagError("--since: want an RFC 3339 time such as 2026-01-02T15:04:05Z, got %q", *since)
			}
			from = t
		}
		set, err := loadPolicies(*pol)
		if err != nil {
			return err
		}
		ds, unsigned, err := replayDecisions(ctx, fs, *data, *store, *pub, from)
		if err != nil {
			return err
		}
		cat := models.Shipped()
		res := evidence.Replay(ds, set, func(m string) string {
			if e, ok := cat.Lookup(m); ok {
				return e.Tier
			}
			return ""
		})
		res.Unsigned = unsigned
		if *asJSON {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(res)
		}
		printReplay(stdout, res)
		return nil
	}
}

// openLogReadOnly opens the database of a data directory without changing
// it: reading must never create an empty database, nor touch the evidence.
func openLogReadOnly(ctx context.Context, data string) (*sqlite.DB, error) {
	path := filepath.Join(data, sqlite.FileName)
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("no agentgov database in %s: %w", data, err)
	}
	return sqlite.OpenAuditReadOnly(ctx, path)
}

func printReplay(w io.Writer, res evidence.ReplayResult) {
	fmt.Fprintf(w, "%d of %d decisions change\n", res.Changed, res.Total)
	for _, c := range res.Decisions {
		rules := "a document's default"
		if len(c.Rules) > 0 {
			rules = strings.Join(c.Rules, ", ")
		}
		line := fmt.Sprintf("%s %s -> %s (rules: %s; agent %s, index %d)", c.ID, c.Old, c.New, rules, c.Agent, c.Index)
		if c.Masked {
			line += " masked"
		}
		fmt.Fprintln(w, line)
	}
	if res.Skipped > 0 {
		fmt.Fprintf(w, "%d decisions not re-decided: a kill switch, session state or an invalid action decided them before policy\n", res.Skipped)
	}
	if res.Masked > 0 {
		fmt.Fprintf(w, "%d decisions were re-decided on masked values: what the agent sent is not in the log\n", res.Masked)
	}
	if res.Unsigned > 0 {
		fmt.Fprintf(w, "%d decisions are newer than the latest signed checkpoint: nothing proves them as recorded yet\n", res.Unsigned)
	}
}

// replayDecisions reads the decisions of a data directory, or of every
// replica of a shared database in the order they were made, each log
// checked against its signed checkpoint as it is read. It returns how many
// of them are newer than their log's latest checkpoint.
func replayDecisions(ctx context.Context, fs *flag.FlagSet, data, store, pub string, from time.Time) ([]evidence.Decision, int, error) {
	logs, closeLogs, err := openLogs(ctx, fs, data, store, pub)
	if err != nil {
		return nil, 0, err
	}
	defer closeLogs()
	var all []evidence.Decision
	unsigned := 0
	for _, l := range logs {
		got, err := evidence.SignedDecisions(ctx, l.Store, l.Verifier, from)
		if err != nil {
			if l.Replica != "" {
				return nil, 0, fmt.Errorf("replica %s: %w", l.Replica, err)
			}
			return nil, 0, fmt.Errorf("replay: %w", err)
		}
		all = append(all, got.Decisions...)
		unsigned += got.Unsigned
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].Time.Before(all[j].Time) })
	return all, unsigned, nil
}
