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
	"slices"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/govern"
	"github.com/agentgov/agentgov/policies"
	"github.com/agentgov/agentgov/policy"
	"github.com/agentgov/agentgov/policy/policytest"
)

func init() {
	register(&command{
		name:    "policy",
		summary: "lint, test and evaluate policy documents",
		usage:   "lint|test|eval [ARGS]",
		help:    "The policy language is described in docs/policy.md.",
		subs: []*command{
			{
				name: "lint", summary: "check policy documents", usage: "lint PATH",
				help: `Every problem is printed as file:line: message, and any exits 1; warnings
(file:line: warning: ...) alone exit 0. PATH is a file or a directory.

Example:
  agentgov policy lint ./policies`,
				setup: func(*flag.FlagSet) runner {
					return func(_ context.Context, args []string, stdout, _ io.Writer) error {
						path, err := onePath(args, "lint")
						if err != nil {
							return err
						}
						return policyLint(path, stdout)
					}
				},
			},
			{
				name: "test", summary: "run the policy tests (*_test.yaml) beside the documents", usage: "test PATH",
				help: `The last line is "N passed, M failed"; any failure exits 1.

Example:
  agentgov policy test ./policies`,
				setup: func(*flag.FlagSet) runner {
					return func(ctx context.Context, args []string, stdout, _ io.Writer) error {
						path, err := onePath(args, "test")
						if err != nil {
							return err
						}
						return policyTest(ctx, path, stdout)
					}
				},
			},
			{
				name: "eval", summary: "decide one action and print the Decision", usage: "eval [--policies PATH] [--input FILE|-] [--fail-on deny|approval]",
				help: `The action is JSON as /v1/decide takes it, its agent included.

Example:
  echo '{"agent":{"id":"a1"},"tool":{"name":"read_file"},"args":{"path":"/etc/shadow"}}' |
    agentgov policy eval --policies ./policies --fail-on deny`,
				setup: policyEval,
			},
		},
	})
}

func onePath(args []string, what string) (string, error) {
	if len(args) != 1 {
		return "", flagError("policy %s takes one PATH (a file or a directory)", what)
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

func policyLint(path string, stdout io.Writer) error {
	set, err := policy.Load(path)
	if err != nil {
		return loadErrors(stdout, err)
	}
	for _, w := range set.Warnings() {
		fmt.Fprintf(stdout, "%s:%d: warning: %s\n", w.File, w.Line, w.Msg)
	}
	rules := 0
	for _, d := range set.Documents() {
		rules += len(d.Rules)
	}
	fmt.Fprintf(stdout, "ok: %d documents, %d rules, %d warnings, digest %s\n", len(set.Documents()), rules, len(set.Warnings()), set.Digest())
	return nil
}

func policyTest(ctx context.Context, path string, stdout io.Writer) error {
	set, err := policy.Load(path)
	if err != nil {
		return loadErrors(stdout, err)
	}
	dir := path
	if fi, err := os.Stat(path); err == nil && !fi.IsDir() {
		dir = filepath.Dir(path)
	}
	passed, failed, err := policytest.Run(ctx, os.DirFS(dir), dir, govern.New(set), stdout)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%d passed, %d failed\n", passed, failed)
	if failed > 0 {
		return &exitError{code: 1}
	}
	return nil
}

func policyEval(fl *flag.FlagSet) runner {
	dir := fl.String("policies", "", "policy file or directory `PATH` (default: the built-in pack)")
	input := fl.String("input", "-", "action JSON `FILE`, or - for standard input")
	failOn := fl.String("fail-on", "", "`MODE`: deny exits 3 when the decision is a deny, approval when it is a deny or a require_approval")
	return func(ctx context.Context, args []string, stdout, _ io.Writer) error {
		if len(args) > 0 {
			return flagError("policy eval takes no arguments, got %q", args)
		}
		return runPolicyEval(ctx, *dir, *input, *failOn, os.Stdin, stdout)
	}
}

func runPolicyEval(ctx context.Context, dir, input, failOn string, stdin io.Reader, stdout io.Writer) error {
	var failing []action.Effect
	switch failOn {
	case "":
	case "deny":
		failing = []action.Effect{action.Deny}
	case "approval":
		failing = []action.Effect{action.Deny, action.RequireApproval}
	default:
		return flagError("--fail-on must be deny or approval, not %q", failOn)
	}
	var set *policy.Set
	var err error
	if dir == "" {
		set, err = policies.Builtin()
	} else {
		set, err = loadPolicies(dir) // a bundle too
	}
	if err != nil {
		return loadErrors(stdout, err)
	}
	var data []byte
	if input == "-" {
		data, err = io.ReadAll(io.LimitReader(stdin, 4<<20))
	} else {
		data, err = os.ReadFile(input)
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
	if err := enc.Encode(d); err != nil {
		return err
	}
	if slices.Contains(failing, d.Effect) {
		return &exitError{code: 3, msg: fmt.Sprintf("decision is %s (--fail-on %s)", d.Effect, failOn)}
	}
	return nil
}
