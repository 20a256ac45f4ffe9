package policy

import (
	"slices"
	"testing"
	"time"

	"github.com/agentgov/agentgov/action"
)

func mustSet(t testing.TB, docs ...string) *Set {
	t.Helper()
	var parsed []*Document
	for i, src := range docs {
		d, err := Parse("doc"+string(rune('a'+i))+".yaml", []byte(src))
		if err != nil {
			t.Fatalf("parse doc %d: %v", i, err)
		}
		parsed = append(parsed, d)
	}
	s, err := Compile(parsed)
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	return s
}

func decode(t testing.TB, js string) action.Action {
	t.Helper()
	a, err := action.Decode([]byte(js))
	if err != nil {
		t.Fatalf("decode %s: %v", js, err)
	}
	return a
}

var env = Env{Now: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)}

type evalCase struct {
	name    string
	action  string
	effect  action.Effect
	rules   []string
	flagged bool
}

func runCases(t *testing.T, s *Set, cases []evalCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := decode(t, c.action)
			r := s.Evaluate(&a, env)
			if r.Effect != c.effect {
				t.Errorf("effect = %s, want %s (reasons %v)", r.Effect, c.effect, r.Reasons)
			}
			got := slices.Clone(r.Rules)
			slices.Sort(got)
			want := slices.Clone(c.rules)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("rules = %v, want %v", r.Rules, c.rules)
			}
			if r.Flagged != c.flagged {
				t.Errorf("flagged = %v, want %v", r.Flagged, c.flagged)
			}
		})
	}
}

const designExample = `
version: agentgov/v1
name: production-baseline
default: deny
rules:
  - id: read-tools
    match:
      points: [pre_tool_call]
      tools: ["read_*", "github/list_*"]
    effect: allow
  - id: no-etc
    match: {tools: ["read_file"]}
    when: 'clean_path(args.path).startsWith("/etc/")'
    effect: deny
    severity: high
    reason: system files are off limits
  - id: big-payments
    match: {tools: ["payments/send"]}
    when: 'args.amount > 1000'
    effect: require_approval
    approval: {approvers: ["group:finance"], timeout: 30m, on_timeout: deny}
  - id: egress
    match: {points: [pre_tool_call], destinations: ["*"]}
    when: '!(destination in ["api.github.com", "api.internal.example"])'
    effect: deny
    severity: medium
  - id: flag-shell
    match: {tools: ["shell"]}
    effect: audit
`

func TestWithinADocumentTheStrongestRuleWins(t *testing.T) {
	s := mustSet(t, designExample)
	runCases(t, s, []evalCase{
		{"allow by glob", `{"agent":{"id":"r1"},"tool":{"name":"read_file"},"args":{"path":"/tmp/x"}}`, action.Allow, []string{"read-tools"}, false},
		{"deny beats allow", `{"agent":{"id":"r1"},"tool":{"name":"read_file"},"args":{"path":"/etc/shadow"}}`, action.Deny, []string{"no-etc"}, false},
		{"no rule: document default", `{"agent":{"id":"r1"},"tool":{"name":"write_file"}}`, action.Deny, nil, false},
		{"server/name glob matches", `{"agent":{"id":"r1"},"tool":{"server":"github","name":"list_issues"}}`, action.Allow, []string{"read-tools"}, false},
		{"server/name glob needs the server", `{"agent":{"id":"r1"},"tool":{"server":"gitlab","name":"list_issues"}}`, action.Deny, nil, false},
		{"name pattern matches on any server", `{"agent":{"id":"r1"},"tool":{"server":"fs","name":"read_text"}}`, action.Allow, []string{"read-tools"}, false},
		{"points restrict a rule", `{"agent":{"id":"r1"},"point":"post_tool_call","tool":{"name":"read_text"}}`, action.Deny, nil, false},
		{"integer over threshold", `{"agent":{"id":"r1"},"tool":{"server":"payments","name":"send"},"args":{"amount":5000}}`, action.RequireApproval, []string{"big-payments"}, false},
		{"float over threshold", `{"agent":{"id":"r1"},"tool":{"server":"payments","name":"send"},"args":{"amount":5000.5}}`, action.RequireApproval, []string{"big-payments"}, false},
		{"under threshold falls to default", `{"agent":{"id":"r1"},"tool":{"server":"payments","name":"send"},"args":{"amount":10}}`, action.Deny, nil, false},
		{"missing argument makes when false", `{"agent":{"id":"r1"},"tool":{"server":"payments","name":"send"},"args":{}}`, action.Deny, nil, false},
		{"missing argument on a deny rule does not deny", `{"agent":{"id":"r1"},"tool":{"name":"read_file"},"args":{}}`, action.Allow, []string{"read-tools"}, false},
		{"destination not on the list", `{"agent":{"id":"r1"},"tool":{"name":"read_url"},"destination":"evil.example"}`, action.Deny, []string{"egress"}, false},
		{"destination on the list", `{"agent":{"id":"r1"},"tool":{"name":"read_url"},"destination":"api.github.com"}`, action.Allow, []string{"read-tools"}, false},
		{"no destination never matches *", `{"agent":{"id":"r1"},"tool":{"name":"read_url"}}`, action.Allow, []string{"read-tools"}, false},
		{"audit is a flagged allow", `{"agent":{"id":"r1"},"tool":{"name":"shell"}}`, action.Allow, []string{"flag-shell"}, true},
	})
}

func TestDocumentsComposeByStrongestEffect(t *testing.T) {
	orgBaseline := `
version: agentgov/v1
name: org-baseline
default: allow
rules:
  - id: no-delete
    match: {tools: ["*delete*"]}
    effect: deny
`
	teamAllowList := `
version: agentgov/v1
name: team-search
scope: {teams: [search]}
default: deny
rules:
  - id: search-tools
    match: {tools: ["search", "read_*", "delete_draft"]}
    effect: allow
`
	s := mustSet(t, orgBaseline, teamAllowList)
	runCases(t, s, []evalCase{
		{"outside the team only the baseline applies", `{"agent":{"id":"a"},"principal":{"team":"ads"},"tool":{"name":"write_file"}}`, action.Allow, nil, false},
		{"team default deny wins over baseline default allow", `{"agent":{"id":"a"},"principal":{"team":"search"},"tool":{"name":"write_file"}}`, action.Deny, nil, false},
		{"both allow: rules of every deciding document", `{"agent":{"id":"a"},"principal":{"team":"search"},"tool":{"name":"read_file"}}`, action.Allow, []string{"search-tools"}, false},
		{"baseline deny beats team allow", `{"agent":{"id":"a"},"principal":{"team":"search"},"tool":{"name":"delete_draft"}}`, action.Deny, []string{"no-delete"}, false},
	})
}

func TestNoDocumentInScopeDenies(t *testing.T) {
	s := mustSet(t, `
version: agentgov/v1
name: prod-only
scope: {environments: [production], agent_types: [assistant], agents: ["researcher-*"]}
default: allow
`)
	runCases(t, s, []evalCase{
		{"in scope", `{"agent":{"id":"researcher-1","type":"assistant","labels":{"env":"production"}},"tool":{"name":"x"}}`, action.Allow, nil, false},
		{"wrong environment", `{"agent":{"id":"researcher-1","type":"assistant","labels":{"env":"staging"}},"tool":{"name":"x"}}`, action.Deny, nil, false},
		{"wrong agent glob", `{"agent":{"id":"writer-1","type":"assistant","labels":{"env":"production"}},"tool":{"name":"x"}}`, action.Deny, nil, false},
	})
	a := decode(t, `{"agent":{"id":"writer-1"}}`)
	if r := s.Evaluate(&a, env); r.Reasons[0] != "no policy document applies to this action" {
		t.Errorf("reason = %q", r.Reasons[0])
	}
}

func TestConditionErrorsFailClosed(t *testing.T) {
	s := mustSet(t, `
version: agentgov/v1
name: typed
default: allow
rules:
  - id: big
    match: {tools: [pay]}
    when: 'args.amount > 1000'
    effect: deny
  - id: allow-small
    match: {tools: [refund]}
    when: 'args.amount < 10'
    effect: allow
`)
	// A string where a number is expected cannot be compared: the deny rule
	// applies rather than letting the payment through.
	a := decode(t, `{"agent":{"id":"a"},"tool":{"name":"pay"},"args":{"amount":"5000"}}`)
	r := s.Evaluate(&a, env)
	if r.Effect != action.Deny || !slices.Contains(r.Rules, "big") {
		t.Fatalf("type error in a deny rule: effect %s rules %v, want deny by big", r.Effect, r.Rules)
	}
	// The same error in an allow rule must not allow (the default decides).
	a = decode(t, `{"agent":{"id":"a"},"tool":{"name":"refund"},"args":{"amount":"5"}}`)
	if r := s.Evaluate(&a, env); len(r.Rules) != 0 {
		t.Fatalf("type error in an allow rule matched: %v", r.Rules)
	}
}

func TestCELVariables(t *testing.T) {
	s := mustSet(t, `
version: agentgov/v1
name: vars
default: allow
rules:
  - id: prod-writes
    match: {tools: ["*"]}
    when: >-
      agent.labels.env == "production" && principal.org == "acme" && resource.permission == "write"
      && point == "pre_tool_call" && tool.annotations.destructiveHint == true
      && estimate.cost_usd > 0.5 && now.getFullYear() == 2026 && session.id == "s-1"
    effect: require_approval
  - id: shell-text
    match: {tools: ["*"]}
    when: 'args_text.matches("rm\\s+-rf")'
    effect: deny
`)
	a := decode(t, `{"agent":{"id":"a","labels":{"env":"production"}},"principal":{"org":"acme"},"session":"s-1",
		"resource":{"permission":"write"},"tool":{"name":"x","annotations":{"destructiveHint":true}},"estimate":{"cost_usd":1}}`)
	if r := s.Evaluate(&a, env); r.Effect != action.RequireApproval {
		t.Fatalf("effect %s reasons %v, want require_approval", r.Effect, r.Reasons)
	}
	a = decode(t, `{"agent":{"id":"a"},"tool":{"name":"bash"},"args":{"input":{"script":["echo hi","rm  -rf /"]}}}`)
	if r := s.Evaluate(&a, env); r.Effect != action.Deny {
		t.Fatalf("nested shell text: effect %s, want deny", r.Effect)
	}
}

func TestApprovalSpecAndObligationsComeFromDecidingRules(t *testing.T) {
	s := mustSet(t, designExample, `
version: agentgov/v1
name: redact
default: allow
rules:
  - id: pw
    match: {tools: [login]}
    effect: allow
    obligations: [{type: redact, fields: [args.password]}]
`)
	a := decode(t, `{"agent":{"id":"a"},"tool":{"server":"payments","name":"send"},"args":{"amount":2000}}`)
	r := s.Evaluate(&a, env)
	if r.Approval == nil || r.Approval.Approvers[0] != "group:finance" || time.Duration(r.Approval.Timeout) != 30*time.Minute {
		t.Fatalf("approval spec = %+v", r.Approval)
	}
	a = decode(t, `{"agent":{"id":"a"},"tool":{"name":"login"}}`)
	r = s.Evaluate(&a, env)
	// production-baseline denies login by default, so pw does not decide.
	if r.Effect != action.Deny || len(r.Obligations) != 0 {
		t.Fatalf("effect %s obligations %v", r.Effect, r.Obligations)
	}
	s = mustSet(t, `
version: agentgov/v1
name: redact
default: deny
rules:
  - id: pw
    match: {tools: [login]}
    effect: allow
    obligations: [{type: redact, fields: [args.password]}]
`)
	r = s.Evaluate(&a, env)
	if r.Effect != action.Allow || len(r.Obligations) != 1 || r.Obligations[0].Fields[0] != "args.password" {
		t.Fatalf("effect %s obligations %v", r.Effect, r.Obligations)
	}
}

func TestResponsesOnDeny(t *testing.T) {
	s := mustSet(t, `
version: agentgov/v1
name: resp
default: allow
rules:
  - id: exfil
    match: {tools: [upload]}
    effect: deny
    severity: high
responses:
  high: [isolate, notify]
`)
	a := decode(t, `{"agent":{"id":"a"},"tool":{"name":"upload"}}`)
	r := s.Evaluate(&a, env)
	if r.Severity != action.SeverityHigh || !slices.Equal(r.Responses, []string{"isolate", "notify"}) {
		t.Fatalf("severity %s responses %v", r.Severity, r.Responses)
	}
}

func TestDigestIgnoresFormatting(t *testing.T) {
	a := mustSet(t, "version: agentgov/v1\nname: x\ndefault: allow\n")
	b := mustSet(t, "# comment\nname: x\nversion: agentgov/v1\ndefault:   allow\n")
	c := mustSet(t, "version: agentgov/v1\nname: x\ndefault: deny\n")
	if a.Digest() != b.Digest() || a.Digest() == c.Digest() {
		t.Fatalf("digests: %s %s %s", a.Digest(), b.Digest(), c.Digest())
	}
}

func TestGlob(t *testing.T) {
	for _, c := range []struct {
		p, s string
		ok   bool
	}{
		{"*", "", true}, {"read_*", "read_file", true}, {"read_*", "xread_file", false},
		{"a?c", "abc", true}, {"a?c", "ac", false}, {"*_file", "read_file", true},
		{"*a*b*", "xxaxxbxx", true}, {"*a*b", "xxaxxbxxc", false}, {"exact", "exact", true},
	} {
		if got := glob(c.p, c.s); got != c.ok {
			t.Errorf("glob(%q, %q) = %v, want %v", c.p, c.s, got, c.ok)
		}
	}
}

func TestDetectorFunctions(t *testing.T) {
	s := mustSet(t, `
version: agentgov/v1
name: results
default: allow
rules:
  - id: no-secrets-out
    match: {points: [post_tool_call]}
    when: 'has_secret(content)'
    effect: deny
  - id: flag-pii
    match: {points: [post_tool_call]}
    when: 'has_pii(content)'
    effect: audit
`)
	runCases(t, s, []evalCase{
		{"a key in a result", `{"agent":{"id":"a"},"point":"post_tool_call","content":"key: AKIAIOSFODNN7EXAMPLE secret"}`, action.Deny, []string{"no-secrets-out"}, false},
		{"a card in a result", `{"agent":{"id":"a"},"point":"post_tool_call","content":"card 4111 1111 1111 1111"}`, action.Allow, []string{"flag-pii"}, true},
		{"a clean result", `{"agent":{"id":"a"},"point":"post_tool_call","content":"commit 3f786850e387550fdab836ed7e6dc881de23001b"}`, action.Allow, nil, false},
	})
}

func TestDeniesUnconditionally(t *testing.T) {
	s := mustSet(t, designExample)
	for _, c := range []struct {
		action string
		want   bool
	}{
		{`{"agent":{"id":"a"},"tool":{"name":"write_file"}}`, true},                // no rule can allow it
		{`{"agent":{"id":"a"},"tool":{"name":"read_file"}}`, false},                // allowed unless the path is under /etc
		{`{"agent":{"id":"a"},"tool":{"server":"payments","name":"send"}}`, false}, // needs approval only for some amounts
	} {
		a := decode(t, c.action)
		if got := s.DeniesUnconditionally(&a); got != c.want {
			t.Errorf("%s: %v, want %v", c.action, got, c.want)
		}
	}
	conditionalAllow := mustSet(t, `
version: agentgov/v1
name: c
default: deny
rules:
  - {id: small, match: {tools: [pay]}, when: 'args.amount < 10', effect: allow}
`)
	a := decode(t, `{"agent":{"id":"a"},"tool":{"name":"pay"}}`)
	if conditionalAllow.DeniesUnconditionally(&a) {
		t.Error("a tool some arguments would allow is reported as always denied")
	}
}
