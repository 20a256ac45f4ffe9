package policy

import (
	"slices"
	"testing"
	"time"

	"github.com/agentgov/agentgov/action"
)

const isolationPolicy = `
version: agentgov/v1
name: isolation
default: deny
rules:
  - id: no-delete
    match: {tools: [delete_all]}
    effect: deny
    reason: deletes everything
  - id: login
    match: {tools: [login]}
    effect: allow
    obligations: [{type: redact, fields: [args.password]}]
  - id: pay
    match: {tools: [pay]}
    effect: require_approval
    approval: {approvers: ["group:finance"], timeout: 30m}
`

// A library caller owns the Result it gets back: writing into it must not
// reach into the compiled set and rewrite the decisions (and audit records)
// of every later action.
func TestResultDoesNotShareMemoryWithTheSet(t *testing.T) {
	s := mustSet(t, isolationPolicy)
	cases := []struct {
		name   string
		action string
	}{
		{"a rule decides", `{"agent":{"id":"a"},"tool":{"name":"delete_all"}}`},
		{"the default decides", `{"agent":{"id":"a"},"tool":{"name":"other"}}`},
		{"an obligation", `{"agent":{"id":"a"},"tool":{"name":"login"}}`},
		{"an approval", `{"agent":{"id":"a"},"tool":{"name":"pay"}}`},
		{"a bad point", `{"agent":{"id":"a"},"tool":{"name":"x"}}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := decode(t, c.action)
			if c.name == "a bad point" {
				a.Point = "nowhere" // Decode refuses it; a library caller need not decode
			}
			first := s.Evaluate(&a, env)
			want := deepCopyResult(first)
			for i := range first.Rules {
				first.Rules[i] = "hijacked"
			}
			for i := range first.Reasons {
				first.Reasons[i] = "hijacked"
			}
			for _, o := range first.Obligations {
				for i := range o.Fields {
					o.Fields[i] = "args.nothing"
				}
			}
			if first.Approval != nil {
				first.Approval.Approvers[0] = "user:mallory"
				first.Approval.Timeout = Duration(time.Hour * 1000)
				first.Approval.OnTimeout = action.Allow
			}
			second := s.Evaluate(&a, env)
			if !sameResult(second, want) {
				t.Fatalf("a write into one result changed the next:\n got  %+v\n want %+v", second, want)
			}
		})
	}
}

// The same for the documents: a caller that edits the documents it compiled,
// or the ones Documents returns, does not change the compiled set.
func TestEditingDocumentsDoesNotChangeTheSet(t *testing.T) {
	d, err := Parse("iso.yaml", []byte(isolationPolicy))
	if err != nil {
		t.Fatal(err)
	}
	s, err := Compile([]*Document{d})
	if err != nil {
		t.Fatal(err)
	}
	login := decode(t, `{"agent":{"id":"a"},"tool":{"name":"login"}}`)
	pay := decode(t, `{"agent":{"id":"a"},"tool":{"name":"pay"}}`)
	wantLogin, wantPay := deepCopyResult(s.Evaluate(&login, env)), deepCopyResult(s.Evaluate(&pay, env))
	digest := s.Digest()
	for _, doc := range []*Document{d, s.Documents()[0]} {
		doc.Rules[1].Obligations[0].Fields[0] = "args.nothing"
		doc.Rules[1].Severity = action.SeverityCritical
		doc.Rules[2].Approval.Approvers[0] = "user:mallory"
		doc.Rules[0].ID = "renamed"
		doc.Default = action.Allow
	}
	if got := s.Evaluate(&login, env); !sameResult(got, wantLogin) {
		t.Errorf("login: got %+v, want %+v", got, wantLogin)
	}
	if got := s.Evaluate(&pay, env); !sameResult(got, wantPay) {
		t.Errorf("pay: got %+v, want %+v", got, wantPay)
	}
	if s.Documents()[0].Rules[0].ID != "no-delete" || s.Documents()[0].Default != action.Deny {
		t.Errorf("Documents reflects the caller's edits: %+v", s.Documents()[0])
	}
	if s.Digest() != digest {
		t.Errorf("digest changed")
	}
}

func deepCopyResult(r Result) Result {
	c := r
	c.Rules = slices.Clone(r.Rules)
	c.Reasons = slices.Clone(r.Reasons)
	c.Responses = slices.Clone(r.Responses)
	c.Obligations = nil
	for _, o := range r.Obligations {
		c.Obligations = append(c.Obligations, action.Obligation{Type: o.Type, Fields: slices.Clone(o.Fields)})
	}
	if r.Approval != nil {
		a := *r.Approval
		a.Approvers = slices.Clone(a.Approvers)
		c.Approval = &a
	}
	return c
}

func sameResult(a, b Result) bool {
	if a.Effect != b.Effect || a.Flagged != b.Flagged || a.Severity != b.Severity ||
		!slices.Equal(a.Rules, b.Rules) || !slices.Equal(a.Reasons, b.Reasons) || !slices.Equal(a.Responses, b.Responses) ||
		len(a.Obligations) != len(b.Obligations) || (a.Approval == nil) != (b.Approval == nil) {
		return false
	}
	for i := range a.Obligations {
		if a.Obligations[i].Type != b.Obligations[i].Type || !slices.Equal(a.Obligations[i].Fields, b.Obligations[i].Fields) {
			return false
		}
	}
	if a.Approval != nil {
		x, y := *a.Approval, *b.Approval
		return slices.Equal(x.Approvers, y.Approvers) && x.Timeout == y.Timeout && x.OnTimeout == y.OnTimeout
	}
	return true
}
