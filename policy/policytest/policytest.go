// Package policytest runs policy tests (*_test.yaml beside the documents):
// each names an action and the decision it must get. They run through the
// Decider the caller gives, the production Engine over the set under test,
// so a test that passes here passes in the server.
package policytest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/policy"
)

// testFile is the format of *_test.yaml.
type testFile struct {
	Tests []struct {
		Name   string    `yaml:"name"`
		Action yaml.Node `yaml:"action"`
		Expect struct {
			Effect  action.Effect `yaml:"effect"`
			Rules   *[]string     `yaml:"rules"`
			Flagged *bool         `yaml:"flagged"`
		} `yaml:"expect"`
	} `yaml:"tests"`
}

// Decider decides an action; a *govern.Engine over the policy set under
// test is one, so that a test that passes here passes in the server.
type Decider interface {
	Decide(ctx context.Context, a action.Action) (action.Decision, error)
}

// Run runs every *_test.yaml in the root of fsys against d, printing a line
// per test to w. A test file that cannot be read counts as a failure with
// its file:line, so that a typo in a test never passes silently.
func Run(ctx context.Context, fsys fs.FS, display string, d Decider, w io.Writer) (passed, failed int, err error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return 0, 0, fmt.Errorf("policy test %s: %w", display, err)
	}
	var files []string
	for _, e := range entries {
		if !e.IsDir() && policy.IsTestFile(e.Name()) {
			files = append(files, e.Name())
		}
	}
	sort.Strings(files)
	for _, f := range files {
		shown := filepath.Join(display, f)
		data, err := fs.ReadFile(fsys, f)
		if err != nil {
			return passed, failed, fmt.Errorf("policy test %s: %w", shown, err)
		}
		var tf testFile
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		if err := dec.Decode(&tf); err != nil {
			fmt.Fprintf(w, "FAIL %s: %s\n", shown, strings.TrimPrefix(err.Error(), "yaml: "))
			failed++
			continue
		}
		for _, tc := range tf.Tests {
			where := fmt.Sprintf("%s:%d", shown, tc.Action.Line)
			if msg := runCase(ctx, d, &tc.Action, tc.Expect.Effect, tc.Expect.Rules, tc.Expect.Flagged); msg != "" {
				fmt.Fprintf(w, "FAIL %s %s: %s\n", where, tc.Name, msg)
				failed++
			} else {
				fmt.Fprintf(w, "ok   %s\n", tc.Name)
				passed++
			}
		}
	}
	return passed, failed, nil
}

func runCase(ctx context.Context, eng Decider, node *yaml.Node, effect action.Effect, rules *[]string, flagged *bool) string {
	if !effect.Valid() || effect == action.Audit {
		return fmt.Sprintf("expect.effect must be allow, require_approval or deny, not %q", effect)
	}
	var raw any
	if err := node.Decode(&raw); err != nil {
		return "action: " + err.Error()
	}
	js, err := json.Marshal(raw)
	if err != nil {
		return "action: " + err.Error()
	}
	a, err := action.Decode(js)
	if err != nil {
		return "action: " + err.Error()
	}
	d, _ := eng.Decide(ctx, a)
	var problems []string
	if d.Effect != effect {
		problems = append(problems, fmt.Sprintf("expected effect %s, got %s", effect, d.Effect))
	}
	if rules != nil && !sameSet(*rules, d.Rules) {
		problems = append(problems, fmt.Sprintf("expected rules %v, got %v", *rules, d.Rules))
	}
	if flagged != nil && *flagged != d.Flagged {
		problems = append(problems, fmt.Sprintf("expected flagged %v, got %v", *flagged, d.Flagged))
	}
	if len(problems) == 0 {
		return ""
	}
	return strings.Join(problems, "; ") + fmt.Sprintf(" (matched rules %v; reasons: %s)", d.Rules, strings.Join(d.Reasons, "; "))
}

func sameSet(a, b []string) bool {
	x, y := slices.Clone(a), slices.Clone(b)
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(x, y)
}
