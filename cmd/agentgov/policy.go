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

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/govern"
	"github.com/agentgov/agentgov/policies"
	"github.com/agentgov/agentgov/policy"
	"github.com/agentgov/agentgov/policy/policytest"
)

func init() {
	commands["policy"] = command{summary: "lint, test and evaluate policy documents", run: runPolicy}
}

const policyUsage = `usage:
  agentgov policy lint PATH                              check documents; exit 1 on any problem
  agentgov policy test PATH                              run *_test.yaml beside the documents
  agentgov policy eval [--policies PATH] [--input FILE|-] decide one action and print the Decision`

func runPolicy(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return &exitError{code: 2, msg: policyUsage}
	}
	switch args[0] {
	case "lint":
		return policyLint(args[1:], stdout)
	case "test":
		return policyTest(ctx, args[1:], stdout)
	case "eval":
		return policyEval(ctx, args[1:], os.Stdin, stdout)
	}
	return &exitError{code: 2, msg: fmt.Sprintf("unknown policy subcommand %q\n%s", args[0], policyUsage)}
}

func onePath(args []string, what string) (string, error) {
	if len(args) != 1 {
		return "", &exitError{code: 2, msg: fmt.Sprintf("policy %s takes one PATH (a file or a directory)\n%s", what, policyUsage)}
	}
	return args[0], nil
}

// loadErrors prints every problem of a failed load, one per line, and
// returns the exit error.
func loadErrors(w io.Writer, err error) error {
	var el policy.ErrorList
	if errors.As(err, &el) {
		for _, e := range el {
			fmt.Fprintln(w, e)
		}
		return &exitError{code: 1, msg: fmt.Sprintf("%d problem(s)", len(el))}
	}
	return &exitError{code: 1, msg: err.Error()}
}

func policyLint(args []string, stdout io.Writer) error {
	path, err := onePath(args, "lint")
	if err != nil {
		return err
	}
	set, err := policy.Load(path)
	if err != nil {
		return loadErrors(stdout, err)
	}
	rules := 0
	for _, d := range set.Documents() {
		rules += len(d.Rules)
	}
	fmt.Fprintf(stdout, "ok: %d documents, %d rules, digest %s\n", len(set.Documents()), rules, set.Digest())
	return nil
}

func policyTest(ctx context.Context, args []string, stdout io.Writer) error {
	path, err := onePath(args, "test")
	if err != nil {
		return err
	}
	set, err := policy.Load(path)
	if err != nil {
		return loadErrors(stdout, err)
	}
	dir := path
	if fi, err := os.Stat(path); err == nil && !fi.IsDir() {
		dir = filepath.Dir(path)
	}
	passed, failed, err := policytest.Run(ctx, os.DirFS(dir), dir, set, stdout)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%d passed, %d failed\n", passed, failed)
	if failed > 0 {
		return &exitError{code: 1}
	}
	return nil
}

func policyEval(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) error {
	fl := flag.NewFlagSet("policy eval", flag.ContinueOnError)
	fl.SetOutput(io.Discard)
	dir := fl.String("policies", "", "policy file or directory (default: the built-in pack)")
	input := fl.String("input", "-", "action JSON file, or - for standard input")
	if err := fl.Parse(args); err != nil {
		return &exitError{code: 2, msg: err.Error() + "\n" + policyUsage}
	}
	var set *policy.Set
	var err error
	if *dir == "" {
		set, err = policies.Builtin()
	} else {
		set, err = policy.Load(*dir)
	}
	if err != nil {
		return loadErrors(stdout, err)
	}
	var data []byte
	if *input == "-" {
		data, err = io.ReadAll(io.LimitReader(stdin, 4<<20))
	} else {
		data, err = os.ReadFile(*input)
	}
	if err != nil {
		return fmt.Errorf("read action: %w", err)
	}
	a, err := action.Decode(data)
	if err != nil {
		return &exitError{code: 1, msg: "invalid action: " + err.Error()}
	}
	d, _ := govern.New(set).Decide(ctx, a)
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(d)
}
