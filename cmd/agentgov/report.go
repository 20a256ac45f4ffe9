package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/agentgov/agentgov/audit"
	"github.com/agentgov/agentgov/config"
	"github.com/agentgov/agentgov/report"
	"github.com/agentgov/agentgov/store/postgres"
)

func init() {
	var subs []*command
	for _, f := range []struct{ name, summary string }{
		{"owasp", "the OWASP Top 10 for Agentic Applications: controls in force per risk, what they did, the gaps"},
		{"eu-ai-act", "EU AI Act Article 12 record-keeping: what the log records, requirement by requirement"},
		{"soc2", "SOC 2 CC7 system operations: detection, monitoring, response and recovery in the log"},
	} {
		subs = append(subs, &command{
			name: f.name, summary: f.summary,
			usage: f.name + " [--data DIR | --store DSN] [--pub FILE] [--config FILE] [--policies PATH] [--since RFC3339] [--format json|html] [--out FILE]",
			help: `Computed from the audit log, over the entries its latest signed checkpoint
covers, which the report carries with the log's public key; a log that does not
verify is refused. Controls are the rules of the policy set in force (by
metadata.owasp) and the built-in controls the configuration enables.

Example:
  agentgov report ` + f.name + ` --data ./agentgov-data --format html --out report.html`,
			setup: reportCmd(f.name),
		})
	}
	register(&command{
		name:    "report",
		summary: "compliance reports from the audit log",
		usage:   "owasp|eu-ai-act|soc2 [FLAGS]",
		help:    "docs/compliance.md describes each report.",
		subs:    subs,
	})
}

// builtinControls are the built-in controls cfg enables, as reports and
// threat models count them.
func builtinControls(cfg *config.Config) report.Builtin {
	return report.Builtin{
		KillSwitch: true,
		DriftPins:  len(cfg.MCP.Servers) > 0,
		Identity:   cfg.Identity.Credentials(),
	}
}

func reportCmd(kind string) func(fs *flag.FlagSet) runner {
	return func(fs *flag.FlagSet) runner {
		data := fs.String("data", "./agentgov-data", "data `DIR` holding agentgov.db")
		pub := fs.String("pub", "", "verifier key `FILE` of the log (default DIR/audit.pub); with --store, the replicas' keys, one a line (default: those recorded in the database)")
		store := fs.String("store", "", "PostgreSQL `DSN` of replicas sharing a database: count every replica's log")
		cfgPath := fs.String("config", "", "the server's agentgov.yaml, for its policies and built-in controls")
		pol := fs.String("policies", "", "the policy set in force (default: the configuration's, else the built-in pack)")
		since := fs.String("since", "", "count decisions made at or after this time (RFC 3339)")
		format := fs.String("format", "json", "json or html")
		out := fs.String("out", "", "write to this `FILE` instead of standard output")
		return func(ctx context.Context, args []string, stdout, _ io.Writer) error {
			if len(args) > 0 {
				return flagError("report %s takes no arguments", kind)
			}
			if *format != "json" && *format != "html" {
				return flagError("--format: want json or html, got %q", *format)
			}
			in := report.Input{Now: time.Now(), Builtin: report.Builtin{KillSwitch: true}}
			if *since != "" {
				t, err := time.Parse(time.RFC3339, *since)
				if err != nil {
					return flagError("--since: want an RFC 3339 time such as 2026-01-02T15:04:05Z, got %q", *since)
				}
				in.Since = t
			}
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
			set, err := loadPolicies(source)
			if err != nil {
				return err
			}
			in.Set, in.Source = set, source
			if source == "" {
				in.Source = "builtin"
			}
			logs, closeLogs, err := openLogs(ctx, fs, *data, *store, *pub)
			if err != nil {
				return err
			}
			defer closeLogs()
			in.Logs = logs

			var rep interface {
				WriteHTML(io.Writer) error
			}
			switch kind {
			case "owasp":
				rep, err = report.ComputeOWASP(ctx, in)
			case "eu-ai-act":
				rep, err = report.ComputeEUAIAct(ctx, in)
			default:
				rep, err = report.ComputeSOC2(ctx, in)
			}
			if err != nil {
				return err
			}
			w := stdout
			if *out != "" {
				f, err := os.Create(*out)
				if err != nil {
					return err
				}
				defer f.Close()
				w = f
			}
			if *format == "html" {
				err = rep.WriteHTML(w)
			} else {
				enc := json.NewEncoder(w)
				enc.SetIndent("", "  ")
				err = enc.Encode(rep)
			}
			if err != nil {
				return fmt.Errorf("write report: %w", err)
			}
			return nil
		}
	}
}

// openLogs opens the audit logs a report or a replay reads: the data
// directory's, or with store every replica's in the shared database, each
// with its verifier key. Nothing is written.
func openLogs(ctx context.Context, fs *flag.FlagSet, data, store, pub string) ([]report.Log, func(), error) {
	if store == "" {
		pubPath := pub
		if pubPath == "" {
			pubPath = filepath.Join(data, audit.PubFile)
		}
		v, err := audit.LoadVerifier(pubPath)
		if err != nil {
			return nil, nil, err
		}
		key, _ := os.ReadFile(pubPath)
		db, err := openLogReadOnly(ctx, data)
		if err != nil {
			return nil, nil, err
		}
		return []report.Log{{Store: db, Verifier: v, PublicKey: strings.TrimSpace(string(key))}}, func() { db.Close() }, nil
	}
	dataSet := false
	fs.Visit(func(f *flag.Flag) { dataSet = dataSet || f.Name == "data" })
	if dataSet {
		return nil, nil, flagError("give --data (SQLite) or --store (PostgreSQL), not both")
	}
	var keys map[string]note.Verifier
	if pub != "" {
		var err error
		if keys, err = storeKeys(pub); err != nil {
			return nil, nil, err
		}
	}
	r, err := postgres.OpenReader(ctx, store, postgres.Options{})
	if err != nil {
		return nil, nil, err
	}
	reps, err := r.Replicas(ctx)
	if err != nil {
		r.Close()
		return nil, nil, err
	}
	if len(reps) == 0 {
		r.Close()
		return nil, nil, errors.New("no replica has started on this database: there is no log to read")
	}
	var logs []report.Log
	for _, rep := range reps {
		v, err := storeVerifier(rep, keys)
		if err != nil {
			r.Close()
			return nil, nil, err
		}
		logs = append(logs, report.Log{Replica: rep.ID, Store: r.Log(rep.ID), Verifier: v, PublicKey: rep.AuditKey})
	}
	return logs, func() { r.Close() }, nil
}
