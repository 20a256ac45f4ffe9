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

	"golang.org/x/mod/sumdb/note"

	"github.com/agentgov/agentgov/audit"
	"github.com/agentgov/agentgov/store/sqlite"
)

func init() {
	commands["audit"] = command{summary: "verify the audit log, or prove that an entry is in it", run: runAudit}
}

const auditUsage = `usage:
  agentgov audit verify [--data DIR] [--pub FILE]
  agentgov audit prove  [--data DIR] [--pub FILE] --index N`

func runAudit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return &exitError{code: 2, msg: "audit: missing subcommand\n" + auditUsage}
	}
	switch args[0] {
	case "verify":
		return runAuditVerify(ctx, args[1:], stdout, stderr)
	case "prove":
		return runAuditProve(ctx, args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprintln(stderr, auditUsage)
		return nil
	}
	return &exitError{code: 2, msg: fmt.Sprintf("audit: unknown subcommand %q\n%s", args[0], auditUsage)}
}

// auditFlags are the flags both subcommands share.
type auditFlags struct {
	data string
	pub  string
}

func (f *auditFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.data, "data", "./agentgov-data", "data `DIR` holding agentgov.db and the audit key")
	fs.StringVar(&f.pub, "pub", "", "verifier key `FILE` (default DIR/audit.pub); keep a copy away from the data to detect re-signing")
}

func parseAuditFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return &exitError{code: 0}
		}
		return &exitError{code: 2, msg: err.Error()}
	}
	if fs.NArg() > 0 {
		return &exitError{code: 2, msg: fmt.Sprintf("audit %s: unexpected argument %q", fs.Name(), fs.Arg(0))}
	}
	return nil
}

// open opens an existing data directory read-only: verifying must never
// create an empty database that then "verifies", nor change the evidence.
func (f *auditFlags) open(ctx context.Context) (*sqlite.DB, note.Verifier, error) {
	path := filepath.Join(f.data, sqlite.FileName)
	if _, err := os.Stat(path); err != nil {
		return nil, nil, fmt.Errorf("no agentgov database in %s: %w", f.data, err)
	}
	pub := f.pub
	if pub == "" {
		pub = filepath.Join(f.data, audit.PubFile)
	}
	v, err := audit.LoadVerifier(pub)
	if err != nil {
		return nil, nil, err
	}
	db, err := sqlite.OpenAuditReadOnly(ctx, path)
	if err != nil {
		return nil, nil, err
	}
	return db, v, nil
}

func runAuditVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f auditFlags
	f.register(fs)
	if err := parseAuditFlags(fs, args); err != nil {
		return err
	}
	db, v, err := f.open(ctx)
	if err != nil {
		return err
	}
	defer db.Close()
	rep, err := audit.Verify(ctx, db, v)
	if err != nil {
		return err
	}
	signed := "none covering any entry"
	if rep.Signed > 0 {
		signed = fmt.Sprintf("the latest covering indices 0..%d", rep.Signed-1)
	}
	fmt.Fprintf(stdout, "audit log %s: %d entries checked; %d signed checkpoints verified, %s\n",
		rep.Origin, rep.Entries, rep.Checkpoints, signed)
	if !rep.OK() {
		return &exitError{code: 1, msg: fmt.Sprintf("first bad index %d: %s", rep.FirstBad, rep.Reason)}
	}
	if rep.Signed < rep.Entries {
		fmt.Fprintf(stdout, "%d entries after the latest checkpoint are intact but not yet signed\n", rep.Entries-rep.Signed)
	}
	fmt.Fprintln(stdout, "ok")
	return nil
}

func runAuditProve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("prove", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f auditFlags
	f.register(fs)
	index := fs.Int64("index", -1, "`N`, the index of the entry to prove")
	if err := parseAuditFlags(fs, args); err != nil {
		return err
	}
	if *index < 0 {
		return &exitError{code: 2, msg: "audit prove: --index N is required (N >= 0)"}
	}
	db, v, err := f.open(ctx)
	if err != nil {
		return err
	}
	defer db.Close()
	p, err := audit.Prove(ctx, db, v, uint64(*index))
	if err != nil {
		return err
	}
	out, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s\n", out)
	return nil
}
