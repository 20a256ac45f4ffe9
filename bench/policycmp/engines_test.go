package policycmp

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	"github.com/cedar-policy/cedar-go"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/govern"
	"github.com/agentgov/agentgov/policy"
)

// call is one tool call, independent of any engine's input form.
type call struct {
	tool   string
	amount int64
	// noAmount leaves the amount argument out of the call altogether.
	noAmount bool
}

// action is the call as agentgov receives it.
func (c call) action() action.Action {
	a := action.Action{Agent: action.Agent{ID: "a1"}, Tool: action.Tool{Name: c.tool}, Args: map[string]any{}}
	if !c.noAmount {
		a.Args["amount"] = c.amount
	}
	return a
}

// opaInput is the call as OPA input: agentgov's Action JSON, parsed into an
// AST value, so that both engines see the same document.
func (c call) opaInput(tb testing.TB) ast.Value {
	tb.Helper()
	a := c.action()
	raw, err := json.Marshal(&a)
	if err != nil {
		tb.Fatal(err)
	}
	v, err := ast.ValueFromReader(bytes.NewReader(raw))
	if err != nil {
		tb.Fatalf("opa input: %v", err)
	}
	return v
}

// opaGoInput is the same input as Go values, the form rego.EvalInput takes.
func (c call) opaGoInput(tb testing.TB) map[string]any {
	tb.Helper()
	a := c.action()
	raw, err := json.Marshal(&a)
	if err != nil {
		tb.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		tb.Fatal(err)
	}
	return m
}

// cedarRequest is the call as a Cedar request: the agent is the principal,
// the tool the resource, the arguments the context.
func (c call) cedarRequest() cedar.Request {
	ctx := cedar.RecordMap{}
	if !c.noAmount {
		ctx["amount"] = cedar.Long(c.amount)
	}
	return cedar.Request{
		Principal: cedar.NewEntityUID("Agent", "a1"),
		Action:    cedar.NewEntityUID("Action", "call_tool"),
		Resource:  cedar.NewEntityUID("Tool", cedar.String(c.tool)),
		Context:   cedar.NewRecord(ctx),
	}
}

// hit is the call every benchmark decides: it selects the rule in the
// middle of the set and satisfies the condition, so every engine allows it.
func hit(w workload) call { return call{tool: toolName(w.rules / 2), amount: 5000} }

func newAgentgov(tb testing.TB, w workload) *govern.Engine {
	tb.Helper()
	doc, err := policy.Parse("policycmp.yaml", agentgovPolicy(w))
	if err != nil {
		tb.Fatalf("agentgov parse: %v", err)
	}
	set, err := policy.Compile([]*policy.Document{doc})
	if err != nil {
		tb.Fatalf("agentgov compile: %v", err)
	}
	return govern.New(set)
}

// newOPA prepares the query data.agentgov.allow once. With indexed, the
// policy is the data-driven form and its data is stored as AST values, as
// OPA's server stores it, so that reading it costs no conversion.
func newOPA(tb testing.TB, w workload, indexed bool) rego.PreparedEvalQuery {
	tb.Helper()
	opts := []func(*rego.Rego){rego.Query("data.agentgov.allow")}
	if indexed {
		data, err := ast.InterfaceToValue(regoIndexedData(w))
		if err != nil {
			tb.Fatal(err)
		}
		opts = append(opts,
			rego.Module("policycmp.rego", string(regoIndexedPolicy(w))),
			rego.Store(inmem.NewFromASTObject(data.(ast.Object))))
	} else {
		opts = append(opts, rego.Module("policycmp.rego", string(regoPolicy(w))))
	}
	pq, err := rego.New(opts...).PrepareForEval(context.Background())
	if err != nil {
		tb.Fatalf("opa prepare: %v", err)
	}
	return pq
}

// newCedar parses the policy set and builds the entities (the agent and
// every tool) once.
func newCedar(tb testing.TB, w workload) (*cedar.PolicySet, cedar.EntityMap) {
	tb.Helper()
	ps, err := cedar.NewPolicySetFromBytes("policycmp.cedar", cedarPolicy(w))
	if err != nil {
		tb.Fatalf("cedar parse: %v", err)
	}
	entities := cedar.EntityMap{}
	agent := cedar.NewEntityUID("Agent", "a1")
	entities[agent] = cedar.Entity{UID: agent}
	for i := range w.rules {
		tool := cedar.NewEntityUID("Tool", cedar.String(toolName(i)))
		entities[tool] = cedar.Entity{UID: tool}
	}
	return ps, entities
}
