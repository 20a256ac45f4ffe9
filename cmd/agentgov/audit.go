package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/agentgov/agentgov/audit"
	"github.com/agentgov/agentgov/store/postgres"
	"github.com/agentgov/agentgov/store/sqlite"
)

func init() {
	register(&command{
		name:    "audit",
		summary: "verify the audit log, or prove that an entry is in it",
		usage:   "verify|prove [ARGS]",
		help:    `Both read a data directory (or, with --store, the PostgreSQL database of several replicas) without changing it, also while a server runs on it.`,
		subs: []*command{
			{
				name: "verify", summary: "recompute every hash and checkpoint of the log; name the first bad index",
				usage: "verify [--data DIR | --store DSN] [--pub FILE] [--checkpoint FILE] [--wait DURATION]",
				help: `Exit 0 when the log is whole, 1 with the first bad index otherwise.

Examples:
  agentgov audit verify --data ./agentgov-data --pub /secure/audit.pub
  agentgov audit verify --data ./agentgov-data --checkpoint head.txt --wait 5s
  agentgov audit verify --store postgres://agentgov@db:5432/agentgov --pub replicas.pub`,
				setup: auditVerify,
			},
			{
				name: "prove", summary: "print an inclusion proof of one entry against the latest signed checkpoint",
				usage: "prove --index N [--data DIR | --store DSN --replica ID] [--pub FILE]",
				help:  "Example:\n  agentgov audit prove --data ./agentgov-data --index 42",
				setup: auditProve,
			},
		},
	})
}

// auditFlags are the flags both subcommands share.
type auditFlags struct {
	data    string
	pub     string
	store   string
	replica string
	fs      *flag.FlagSet
}

func (f *auditFlags) register(fs *flag.FlagSet) {
	f.fs = fs
	fs.StringVar(&f.data, "data", "./agentgov-data", "data `DIR` holding agentgov.db")
	fs.StringVar(&f.pub, "pub", "", "verifier key `FILE` kept away from the data directory (default DIR/audit.pub, which proves nothing against whoever can rewrite DIR); with --store, a file of the replicas' verifier keys, one a line")
	fs.StringVar(&f.store, "store", "", "PostgreSQL `DSN` of replicas sharing a database: check every replica's log, with the keys recorded in the database (or --pub)")
}

// check refuses --data together with --store: one names a SQLite
// directory, the other a PostgreSQL database.
func (f *auditFlags) check(cmd string) error {
	dataSet := false
	f.fs.Visit(func(fl *flag.Flag) { dataSet = dataSet || fl.Name == "data" })
	if dataSet && f.store != "" {
		return flagError("audit %s: give --data (SQLite) or --store (PostgreSQL), not both", cmd)
	}
	return nil
}

// open opens an existing data directory read-only: verifying must never
// create an empty database that then "verifies", nor change the evidence.
// It takes no lock, so a running server's directory can be verified. inDir
// says that the verifier key was read from the data directory itself.
func (f *auditFlags) open(ctx context.Context) (db *sqlite.DB, v note.Verifier, inDir bool, err error) {
	path := filepath.Join(f.data, sqlite.FileName)
	if _, err := os.Stat(path); err != nil {
		return nil, nil, false, fmt.Errorf("no agentgov database in %s: %w", f.data, err)
	}
	pub := f.pub
	if pub == "" {
		pub, inDir = filepath.Join(f.data, audit.PubFile), true
		if _, err := os.Stat(pub); errors.Is(err, fs.ErrNotExist) {
			return nil, nil, false, fmt.Errorf("no verifier key: %s does not exist (with audit.key_file the key is kept outside the data directory): pass --pub with its .pub file", pub)
		}
	}
	v, err = audit.LoadVerifier(pub)
	if err != nil {
		return nil, nil, false, err
	}
	db, err = sqlite.OpenAuditReadOnly(ctx, path)
	if err != nil {
		return nil, nil, false, err
	}
	return db, v, inDir, nil
}

// readHead reads a signed tree head kept outside the data directory: the
// note text of GET /v1/audit/checkpoint's "checkpoint" field, or that
// whole JSON answer.
func readHead(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--checkpoint: %w", err)
	}
	if t := bytes.TrimSpace(b); len(t) > 0 && t[0] == '{' {
		var resp struct {
			Checkpoint string `json:"checkpoint"`
		}
		if err := json.Unmarshal(t, &resp); err != nil || resp.Checkpoint == "" {
			return nil, fmt.Errorf("--checkpoint %s: JSON without a \"checkpoint\" note", path)
		}
		return []byte(resp.Checkpoint), nil
	}
	return b, nil
}

// verifyPoll is how often verify --wait looks again for a checkpoint.
const verifyPoll = 100 * time.Millisecond

func auditVerify(fl *flag.FlagSet) runner {
	var f auditFlags
	f.register(fl)
	headFile := fl.String("checkpoint", "", "signed tree head `FILE` kept away from the data directory (the \"checkpoint\" of GET /v1/audit/checkpoint): the log must hold it")
	wait := fl.Duration("wait", 0, "on a running server's directory, wait up to `DURATION` for a checkpoint to sign the entries found unsigned")
	return func(ctx context.Context, args []string, stdout, _ io.Writer) error {
		if len(args) > 0 {
			return flagError("audit verify: unexpected argument %q", args[0])
		}
		if err := f.check("verify"); err != nil {
			return err
		}
		return runAuditVerify(ctx, f, *headFile, *wait, stdout)
	}
}

func runAuditVerify(ctx context.Context, f auditFlags, headFile string, wait time.Duration, stdout io.Writer) error {
	if wait < 0 {
		return flagError("audit verify: --wait must not be negative")
	}
	var head []byte
	if headFile != "" {
		var err error
		if head, err = readHead(headFile); err != nil {
			return err
		}
	}
	if f.store != "" {
		return verifyStore(ctx, f, head, headFile, wait, stdout)
	}
	db, v, inDir, err := f.open(ctx)
	if err != nil {
		return err
	}
	defer db.Close()
	if inDir {
		fmt.Fprintf(stdout, "note: the verifier key is %s, in the data directory itself: this proves nothing against someone who could rewrite the directory (they can sign again with its audit.key, or replace both keys); verify with --pub set to a copy kept elsewhere\n",
			filepath.Join(f.data, audit.PubFile))
	}
	if err := verifyLog(ctx, db, v, audit.VerifyOptions{Head: head}, headFile, wait, stdout); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "ok")
	return nil
}

// verifyLog verifies one log and prints what it found; a log that does not
// verify is an *exitError of code 1 saying why.
func verifyLog(ctx context.Context, st audit.Store, v note.Verifier, opts audit.VerifyOptions, headFile string, wait time.Duration, stdout io.Writer) error {
	rep, err := audit.Verify(ctx, st, v, opts)
	if err != nil {
		return err
	}
	// A live server signs what it has written within its checkpoint
	// interval. Only entries present at the first look must become signed:
	// those appended since are outside this verification.
	seen := rep.Entries
	for deadline := time.Now().Add(wait); rep.Unsigned > 0 && rep.Signed < seen && time.Now().Before(deadline); {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(verifyPoll):
		}
		if rep, err = audit.Verify(ctx, st, v, opts); err != nil {
			return err
		}
	}
	late := rep.Unsigned > 0 && wait > 0 && rep.Signed >= seen

	signed := "none covering any entry"
	if rep.Signed > 0 {
		signed = fmt.Sprintf("the latest covering indices 0..%d", rep.Signed-1)
	}
	fmt.Fprintf(stdout, "audit log %s: %d entries checked; %d signed checkpoints verified, %s\n",
		rep.Origin, rep.Entries, rep.Checkpoints, signed)
	if rep.Head != nil {
		fmt.Fprintf(stdout, "head %s (tree size %d): the log holds it\n", headFile, rep.Head.Size)
	}
	switch {
	case late:
		fmt.Fprintf(stdout, "%d entries appended while verifying are not signed yet\n", rep.Unsigned)
	case rep.Unsigned > 0:
		return &exitError{code: 1, msg: fmt.Sprintf("first bad index %d: %s.\n"+
			"If agentgov was killed, start it again on this directory: it signs them at start; then verify again.\n"+
			"If agentgov is running, it signs them within audit.checkpoint_interval: verify with --wait 5s.\n"+
			"If it was stopped cleanly, its final checkpoint was deleted: treat entries from %d on as rewritten.",
			rep.FirstBad, rep.Reason, rep.FirstBad)}
	case !rep.OK():
		return &exitError{code: 1, msg: fmt.Sprintf("first bad index %d: %s", rep.FirstBad, rep.Reason)}
	}
	return nil
}

func auditProve(fs *flag.FlagSet) runner {
	var f auditFlags
	f.register(fs)
	index := fs.String("index", "", "`N`, the index of the entry to prove (required)")
	fs.StringVar(&f.replica, "replica", "", "with --store, the `ID` of the replica whose log holds the entry")
	return func(ctx context.Context, args []string, stdout, _ io.Writer) error {
		if len(args) > 0 {
			return flagError("audit prove: unexpected argument %q", args[0])
		}
		if err := f.check("prove"); err != nil {
			return err
		}
		if (f.store == "") != (f.replica == "") {
			return flagError("audit prove: --store and --replica go together: the replica names the log, the store holds it")
		}
		n, err := strconv.ParseUint(*index, 10, 64)
		if err != nil {
			return flagError("audit prove: --index N is required (N >= 0), got %q", *index)
		}
		return runAuditProve(ctx, f, n, stdout)
	}
}

func runAuditProve(ctx context.Context, f auditFlags, index uint64, stdout io.Writer) error {
	var p audit.Proof
	if f.store != "" {
		var err error
		if p, err = proveInStore(ctx, f, index); err != nil {
			return err
		}
	} else {
		db, v, _, err := f.open(ctx)
		if err != nil {
			return err
		}
		defer db.Close()
		if p, err = audit.Prove(ctx, db, v, index); err != nil {
			return err
		}
	}
	out, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s\n", out)
	return nil
}

// storeKeys reads the verifier keys of --pub for --store: one a line,
// blank lines and lines starting with # skipped.
func storeKeys(path string) (map[string]note.Verifier, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--pub: %w", err)
	}
	keys := map[string]note.Verifier{}
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		v, err := note.NewVerifier(line)
		if err != nil {
			return nil, fmt.Errorf("--pub %s:%d: %w", path, i+1, err)
		}
		keys[line] = v
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("--pub %s: no verifier key in it", path)
	}
	return keys, nil
}

// storeVerifier is the key that verifies replica rep's log: the one
// recorded in the database, which must be among keys when --pub gave some.
func storeVerifier(rep postgres.Replica, keys map[string]note.Verifier) (note.Verifier, error) {
	if keys != nil {
		v, ok := keys[rep.AuditKey]
		if !ok {
			return nil, fmt.Errorf("replica %s: the key recorded for it in the database (%s) is not among the keys given with --pub", rep.ID, keyLabel(rep.AuditKey))
		}
		return v, nil
	}
	v, err := note.NewVerifier(rep.AuditKey)
	if err != nil {
		return nil, fmt.Errorf("replica %s: its recorded key: %w", rep.ID, err)
	}
	return v, nil
}

// keyLabel is a verifier key's name and hash, without the key.
func keyLabel(vkey string) string {
	if i := strings.LastIndexByte(vkey, '+'); i > 0 {
		return vkey[:i]
	}
	return vkey
}

// verifyStore verifies the log of every replica that ever started on the
// database, each with its own key, and finds logs no replica owns.
func verifyStore(ctx context.Context, f auditFlags, head []byte, headFile string, wait time.Duration, stdout io.Writer) error {
	var keys map[string]note.Verifier
	if f.pub != "" {
		var err error
		if keys, err = storeKeys(f.pub); err != nil {
			return err
		}
	}
	r, err := postgres.OpenReader(ctx, f.store, postgres.Options{})
	if err != nil {
		return err
	}
	defer r.Close()
	reps, err := r.Replicas(ctx)
	if err != nil {
		return err
	}
	if len(reps) == 0 {
		return &exitError{code: 1, msg: "no replica has started on this database: nothing to verify (check the DSN and its search_path)"}
	}
	if keys == nil {
		fmt.Fprintln(stdout, "note: the verifier keys are the ones recorded in the database itself: this proves nothing against someone who could rewrite the database (they can record their own key with their own log); verify with --pub set to a file of the replicas' keys kept elsewhere")
	}
	var failed []string
	headUsed := false
	for _, rep := range reps {
		fmt.Fprintf(stdout, "replica %s:\n", rep.ID)
		v, err := storeVerifier(rep, keys)
		if err != nil {
			failed = append(failed, err.Error())
			fmt.Fprintln(stdout, err)
			continue
		}
		opts := audit.VerifyOptions{}
		if head != nil {
			if _, err := audit.OpenCheckpoint(head, v); err == nil {
				opts.Head, headUsed = head, true
			}
		}
		if err := verifyLog(ctx, r.Log(rep.ID), v, opts, headFile, wait, stdout); err != nil {
			var ee *exitError
			if !errors.As(err, &ee) {
				return err
			}
			failed = append(failed, fmt.Sprintf("replica %s: %s", rep.ID, ee.msg))
			fmt.Fprintf(stdout, "replica %s: %s\n", rep.ID, ee.msg)
		}
	}
	orphans, err := r.Orphans(ctx)
	if err != nil {
		return err
	}
	for _, id := range orphans {
		msg := fmt.Sprintf("replica %s: audit rows with no recorded replica or key: no agentgov replica wrote them", id)
		failed = append(failed, msg)
		fmt.Fprintln(stdout, msg)
	}
	if head != nil && !headUsed {
		failed = append(failed, fmt.Sprintf("the head %s is signed by none of the replicas' keys", headFile))
	}
	if len(failed) > 0 {
		return &exitError{code: 1, msg: fmt.Sprintf("%d of %d replica logs failed:\n%s", len(failed), len(reps), strings.Join(failed, "\n"))}
	}
	fmt.Fprintf(stdout, "ok: %d replica logs verified\n", len(reps))
	return nil
}

// proveInStore proves entry index of one replica's log in a PostgreSQL
// store.
func proveInStore(ctx context.Context, f auditFlags, index uint64) (audit.Proof, error) {
	var keys map[string]note.Verifier
	if f.pub != "" {
		var err error
		if keys, err = storeKeys(f.pub); err != nil {
			return audit.Proof{}, err
		}
	}
	r, err := postgres.OpenReader(ctx, f.store, postgres.Options{})
	if err != nil {
		return audit.Proof{}, err
	}
	defer r.Close()
	reps, err := r.Replicas(ctx)
	if err != nil {
		return audit.Proof{}, err
	}
	for _, rep := range reps {
		if rep.ID != f.replica {
			continue
		}
		v, err := storeVerifier(rep, keys)
		if err != nil {
			return audit.Proof{}, err
		}
		return audit.Prove(ctx, r.Log(rep.ID), v, index)
	}
	return audit.Proof{}, &exitError{code: 1, msg: fmt.Sprintf("audit prove: no replica %s has started on this database", f.replica)}
}
