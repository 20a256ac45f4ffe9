package policy

import (
	"strings"
	"testing"

	"github.com/agentgov/agentgov/action"
)

// An agent that sends a string, number or boolean where a condition reads a
// field of a map (or an item of a list) gets the same error from CEL as an
// argument that is absent. It is a value of the wrong type, not a missing
// argument: a deny rule must fire on it, not be walked around by it.
func TestWrongShapeArgumentFailsClosed(t *testing.T) {
	s := mustSet(t, `version: agentgov/v1
name: shapes
default: allow
rules:
  - id: outside
    match: {tools: [send_email]}
    when: '!args.recipient.email.endsWith("@acme.com")'
    effect: deny
  - id: admin-mode
    match: {tools: [configure]}
    when: 'args.config["mode"] == "admin"'
    effect: deny
  - id: big-first-item
    match: {tools: [order]}
    when: 'args.items[0].price > 1000'
    effect: require_approval
  - id: big-any-item
    match: {tools: [bulk_order]}
    when: 'args.items.exists(i, i.price > 1000)'
    effect: deny
  - id: bound
    match: {tools: [send_sms]}
    when: 'cel.bind(r, args.recipient, r.phone.startsWith("+1900"))'
    effect: deny
  - id: annotated
    match: {tools: [purge]}
    when: 'tool.annotations.hints.destructive == true'
    effect: deny
`)
	cases := []struct {
		name, action string
		effect       action.Effect
	}{
		{"a string where a map is expected", `{"tool":{"name":"send_email"},"args":{"recipient":"x@evil.example"}}`, action.Deny},
		{"a number where a map is expected", `{"tool":{"name":"send_email"},"args":{"recipient":5}}`, action.Deny},
		{"a boolean where a map is expected", `{"tool":{"name":"configure"},"args":{"config":true}}`, action.Deny},
		{"a string indexed as a map", `{"tool":{"name":"configure"},"args":{"config":"admin"}}`, action.Deny},
		{"a string where a list is expected", `{"tool":{"name":"order"},"args":{"items":"5000"}}`, action.RequireApproval},
		{"a map where a list is expected", `{"tool":{"name":"order"},"args":{"items":{"0":{"price":5000}}}}`, action.RequireApproval},
		{"a string item where a map item is expected", `{"tool":{"name":"bulk_order"},"args":{"items":["5000"]}}`, action.Deny},
		{"a map iterated by its keys", `{"tool":{"name":"bulk_order"},"args":{"items":{"a":{"price":5000}}}}`, action.Deny},
		{"a bound variable of the wrong shape", `{"tool":{"name":"send_sms"},"args":{"recipient":"+19005550100"}}`, action.Deny},
		{"an annotation of the wrong shape", `{"tool":{"name":"purge","annotations":{"hints":"destructive"}},"args":{}}`, action.Deny},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := decode(t, `{"agent":{"id":"a1"},`+c.action[1:])
			r := s.Evaluate(&a, env)
			if r.Effect != c.effect {
				t.Fatalf("effect = %s, want %s (reasons %v)", r.Effect, c.effect, r.Reasons)
			}
			if !strings.Contains(strings.Join(r.Reasons, "; "), "failing closed") {
				t.Errorf("reasons %v do not say the condition failed closed", r.Reasons)
			}
		})
	}
}

// Absent arguments stay false, as documented: a missing key, a missing
// field of an item, null, and a present value of the expected shape.
func TestMissingArgumentStillFalse(t *testing.T) {
	s := mustSet(t, `version: agentgov/v1
name: shapes
default: allow
rules:
  - id: outside
    match: {tools: [send_email]}
    when: '!args.recipient.email.endsWith("@acme.com")'
    effect: deny
  - id: big-any-item
    match: {tools: [bulk_order]}
    when: 'args.items.exists(i, i.price > 1000)'
    effect: deny
  - id: allow-small
    match: {tools: [refund]}
    when: 'args.refund.amount < 10'
    effect: allow
  - id: refunds
    match: {tools: [refund]}
    effect: require_approval
`)
	for _, c := range []struct {
		name, action string
		effect       action.Effect
	}{
		{"no recipient", `{"tool":{"name":"send_email"},"args":{}}`, action.Allow},
		{"a recipient without email", `{"tool":{"name":"send_email"},"args":{"recipient":{"name":"Ana"}}}`, action.Allow},
		{"a null recipient", `{"tool":{"name":"send_email"},"args":{"recipient":null}}`, action.Allow},
		{"an acme recipient", `{"tool":{"name":"send_email"},"args":{"recipient":{"email":"ana@acme.com"}}}`, action.Allow},
		{"an item without a price", `{"tool":{"name":"bulk_order"},"args":{"items":[{"sku":"x"}]}}`, action.Allow},
		// The fail-closed rule never lets an allow rule fire on a wrong shape.
		{"an allow rule on a wrong shape", `{"tool":{"name":"refund"},"args":{"refund":"5"}}`, action.RequireApproval},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := decode(t, `{"agent":{"id":"a1"},`+c.action[1:])
			if r := s.Evaluate(&a, env); r.Effect != c.effect {
				t.Fatalf("effect = %s, want %s (reasons %v)", r.Effect, c.effect, r.Reasons)
			}
		})
	}
}
