package govern_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/agentgov/agentgov/govern"
)

// A library caller owns the Decision it gets back. Writing into its rules,
// reasons or obligations must not change the decisions of later actions, nor
// what the audit log records for them: a caller that blanks the redacted
// field would otherwise send every later password to the log in clear.
func TestWritingIntoADecisionChangesNoLaterDecision(t *testing.T) {
	log, _ := openAudit(t)
	eng := govern.New(mustSet(t, basic), govern.WithAudit(log))
	ctx := context.Background()
	login := func() (rules []string, entry string) {
		d, _ := eng.Decide(ctx, tool("login", map[string]any{"user": "bob", "password": "hunter2"}))
		rules = slices.Clone(d.Rules)
		entry = allowedEntry(t, log, d)
		d.Rules[0] = "hijacked"
		d.Reasons[0] = "hijacked"
		d.Obligations[0].Fields[0] = "args.nothing"
		return rules, entry
	}
	login()
	rules, entry := login()
	if !slices.Equal(rules, []string{"login"}) {
		t.Errorf("rules of the next decision = %v, want [login]", rules)
	}
	if strings.Contains(entry, "hijacked") || strings.Contains(entry, "hunter2") {
		t.Errorf("the next audit entry carries the caller's edits: %s", entry)
	}
}
