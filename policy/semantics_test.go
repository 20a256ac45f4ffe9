package policy

import (
	"testing"

	"github.com/agentgov/agentgov/action"
)

// The semantics docs/policy.md promises, checked through both the compiled
// fast path and the CEL interpreter.

// A missing argument makes a condition false: a deny rule on it does not
// fire, and a plain allow rule after it allows.
func TestMissingArgumentMakesTheConditionFalse(t *testing.T) {
	s := mustSet(t, `
version: agentgov/v1
name: mail
default: deny
rules:
  - id: outside-acme
    match: {tools: [send_email]}
    when: '!args.to.matches("@acme[.]com$")'
    effect: deny
  - id: mail
    match: {tools: [send_email]}
    effect: allow
  - id: big
    match: {tools: [pay]}
    when: 'args.amount > 1000'
    effect: deny
  - id: pay
    match: {tools: [pay]}
    effect: allow
  - id: nested
    match: {tools: [ship]}
    when: 'args.items.exists(i, i.weight > 30)'
    effect: require_approval
  - id: ship
    match: {tools: [ship]}
    effect: allow
`)
	runCases(t, s, []evalCase{
		{"to outside acme is denied", `{"agent":{"id":"a"},"tool":{"name":"send_email"},"args":{"to":"x@evil.example"}}`, action.Deny, []string{"outside-acme"}, false},
		{"no to: the allow rule allows", `{"agent":{"id":"a"},"tool":{"name":"send_email"},"args":{"cc":"x@evil.example"}}`, action.Allow, []string{"mail"}, false},
		{"no amount (fast path): allowed", `{"agent":{"id":"a"},"tool":{"name":"pay"},"args":{}}`, action.Allow, []string{"pay"}, false},
		{"an item without weight: allowed", `{"agent":{"id":"a"},"tool":{"name":"ship"},"args":{"items":[{"sku":"x"}]}}`, action.Allow, []string{"ship"}, false},
	})
}

// A type error is not a missing argument: deny and approval rules fire, allow
// rules do not.
func TestTypeErrorFailsClosed(t *testing.T) {
	s := mustSet(t, `
version: agentgov/v1
name: typed
default: allow
rules:
  - id: big
    match: {tools: [pay]}
    when: 'args.amount > 1000'
    effect: deny
  - id: list-command
    match: {tools: [shell]}
    when: 'args.command.contains("rm -rf")'
    effect: deny
  - id: small-refund
    match: {tools: [refund]}
    when: 'args.amount < 10'
    effect: allow
  - id: refund-default
    match: {tools: [refund]}
    effect: require_approval
`)
	runCases(t, s, []evalCase{
		{"a string amount is denied", `{"agent":{"id":"a"},"tool":{"name":"pay"},"args":{"amount":"5000"}}`, action.Deny, []string{"big"}, false},
		{"a command given as a list is denied", `{"agent":{"id":"a"},"tool":{"name":"shell"},"args":{"command":["rm","-rf","/"]}}`, action.Deny, []string{"list-command"}, false},
		{"a string refund does not allow", `{"agent":{"id":"a"},"tool":{"name":"refund"},"args":{"amount":"5"}}`, action.RequireApproval, []string{"refund-default"}, false},
	})
}

// An error message that quotes the request must not pass for a missing
// argument: the engine tells them apart by the error's kind, not its text.
func TestAnErrorQuotingTheRequestIsNotAMissingArgument(t *testing.T) {
	s := mustSet(t, `
version: agentgov/v1
name: dates
default: allow
rules:
  - id: backdated
    match: {tools: [transfer]}
    when: 'timestamp(args.value_date) < now'
    effect: deny
  - id: office-hours
    match: {tools: [deploy]}
    when: 'now.getHours(args.timezone) < 8'
    effect: deny
`)
	runCases(t, s, []evalCase{
		{"a bad date is denied", `{"agent":{"id":"a"},"tool":{"name":"transfer"},"args":{"value_date":"tomorrow"}}`, action.Deny, []string{"backdated"}, false},
		{"a bad date that says no such key is denied", `{"agent":{"id":"a"},"tool":{"name":"transfer"},"args":{"value_date":"no such key"}}`, action.Deny, []string{"backdated"}, false},
		{"a bad time zone that says no such key is denied", `{"agent":{"id":"a"},"tool":{"name":"deploy"},"args":{"timezone":"no such key"}}`, action.Deny, []string{"office-hours"}, false},
		{"a bad time zone that says no such attribute is denied", `{"agent":{"id":"a"},"tool":{"name":"deploy"},"args":{"timezone":"x: no such attribute"}}`, action.Deny, []string{"office-hours"}, false},
		{"a missing date is not denied", `{"agent":{"id":"a"},"tool":{"name":"transfer"},"args":{}}`, action.Allow, nil, false},
	})
}
