package policycmp

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/cedar-policy/cedar-go"
	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/agentgov/agentgov/action"
)

var (
	sizes   = []int{1, 100, 1000}
	engines = []string{"agentgov", "opa", "opa-indexed", "cedar"}
)

func workloads() []workload {
	var ws []workload
	for _, n := range sizes {
		for _, cond := range []bool{false, true} {
			ws = append(ws, workload{rules: n, cond: cond})
		}
	}
	return ws
}

// BenchmarkDecide decides the same allowed call with each engine, its policy
// compiled and its input built once, outside the loop. The decision of the
// last iteration is checked, so a benchmark that stopped deciding cannot
// pass as fast. The engines of one workload run one after another, so that
// on a shared machine they are compared under the same load.
func BenchmarkDecide(b *testing.B) {
	for _, w := range workloads() {
		for _, engine := range engines {
			b.Run(fmt.Sprintf("engine=%s/rules=%d/cond=%v", engine, w.rules, w.cond), func(b *testing.B) {
				switch engine {
				case "agentgov":
					benchAgentgov(b, w)
				case "opa":
					benchOPA(b, w, false)
				case "opa-indexed":
					benchOPA(b, w, true)
				case "cedar":
					benchCedar(b, w)
				}
			})
		}
	}
}

// BenchmarkTimeNow is an anchor for reading agentgov's profile: Decide reads
// the clock once per decision, and on a virtual machine that read is a
// visible share of a match-only decision.
func BenchmarkTimeNow(b *testing.B) {
	var t time.Time
	for b.Loop() {
		t = time.Now()
	}
	if t.IsZero() {
		b.Fatal("no time")
	}
}

func benchAgentgov(b *testing.B, w workload) {
	ctx := context.Background()
	eng := newAgentgov(b, w)
	a := hit(w).action()
	var d action.Decision
	var err error
	b.ReportAllocs()
	for b.Loop() {
		d, err = eng.Decide(ctx, a)
	}
	want := []string{fmt.Sprintf("r%d", w.rules/2)}
	if err != nil || d.Effect != action.Allow || !slices.Equal(d.Rules, want) {
		b.Fatalf("agentgov decided %s by %v (err %v), want allow by %v", d.Effect, d.Rules, err, want)
	}
}

// benchOPA uses EvalParsedInput with the input converted to an AST value
// once: the cheapest way to call a prepared query, and so the most
// favourable to OPA. BenchmarkOPAInputForm measures what EvalInput adds.
func benchOPA(b *testing.B, w workload, indexed bool) {
	ctx := context.Background()
	pq := newOPA(b, w, indexed)
	in := hit(w).opaInput(b)
	var rs rego.ResultSet
	var err error
	b.ReportAllocs()
	for b.Loop() {
		rs, err = pq.Eval(ctx, rego.EvalParsedInput(in))
	}
	if err != nil || !rs.Allowed() {
		b.Fatalf("opa decided %v (err %v), want allow", rs, err)
	}
}

func benchCedar(b *testing.B, w workload) {
	ps, entities := newCedar(b, w)
	req := hit(w).cedarRequest()
	var d cedar.Decision
	var diag cedar.Diagnostic
	b.ReportAllocs()
	for b.Loop() {
		d, diag = cedar.Authorize(ps, entities, req)
	}
	if d != cedar.Allow || len(diag.Errors) > 0 || len(diag.Reasons) != 1 {
		b.Fatalf("cedar decided %v with %+v, want allow by one policy", d, diag)
	}
}

// BenchmarkOPAInputForm compares OPA's two ways of passing input on one
// workload: a Go map that OPA converts on every evaluation (EvalInput), and
// an AST value converted once by the caller (EvalParsedInput, which
// BenchmarkDecide uses).
func BenchmarkOPAInputForm(b *testing.B) {
	ctx := context.Background()
	w := workload{rules: 100, cond: true}
	pq := newOPA(b, w, false)
	b.Run("form=EvalInput", func(b *testing.B) {
		in := hit(w).opaGoInput(b)
		var rs rego.ResultSet
		var err error
		b.ReportAllocs()
		for b.Loop() {
			rs, err = pq.Eval(ctx, rego.EvalInput(in))
		}
		if err != nil || !rs.Allowed() {
			b.Fatalf("opa decided %v (err %v), want allow", rs, err)
		}
	})
	b.Run("form=EvalParsedInput", func(b *testing.B) {
		in := hit(w).opaInput(b)
		var rs rego.ResultSet
		var err error
		b.ReportAllocs()
		for b.Loop() {
			rs, err = pq.Eval(ctx, rego.EvalParsedInput(in))
		}
		if err != nil || !rs.Allowed() {
			b.Fatalf("opa decided %v (err %v), want allow", rs, err)
		}
	})
}

// TestEnginesAgree is what makes the benchmark a comparison of equal work:
// at every size, with and without the condition, each engine allows exactly
// the calls the policy means to allow, namely a known tool and, when the
// rules are conditional, an amount above the threshold.
func TestEnginesAgree(t *testing.T) {
	ctx := context.Background()
	for _, w := range workloads() {
		t.Run(fmt.Sprintf("rules=%d/cond=%v", w.rules, w.cond), func(t *testing.T) {
			mid, last := toolName(w.rules/2), toolName(w.rules-1)
			calls := []call{
				{tool: toolName(0), amount: 5000},
				{tool: mid, amount: 5000},
				{tool: last, amount: 5000},
				{tool: mid, amount: threshold + 1},
				{tool: mid, amount: threshold},
				{tool: mid, amount: -7},
				{tool: mid, noAmount: true},
				{tool: toolName(w.rules), amount: 5000}, // one past the last rule
				{tool: "Tool_0", amount: 5000},          // names are case-sensitive
				{tool: "", amount: 5000},
			}
			eng := newAgentgov(t, w)
			opa := newOPA(t, w, false)
			opaIndexed := newOPA(t, w, true)
			ps, entities := newCedar(t, w)
			for _, c := range calls {
				want := known(w, c.tool) && (!w.cond || (!c.noAmount && c.amount > threshold))
				d, err := eng.Decide(ctx, c.action())
				if err != nil {
					t.Fatalf("agentgov %+v: %v", c, err)
				}
				got := map[string]bool{"agentgov": d.Effect == action.Allow}
				for name, pq := range map[string]rego.PreparedEvalQuery{"opa": opa, "opa-indexed": opaIndexed} {
					rs, err := pq.Eval(ctx, rego.EvalParsedInput(c.opaInput(t)))
					if err != nil {
						t.Fatalf("%s %+v: %v", name, c, err)
					}
					got[name] = rs.Allowed()
				}
				cd, diag := cedar.Authorize(ps, entities, c.cedarRequest())
				if len(diag.Errors) > 0 {
					t.Fatalf("cedar %+v: %v", c, diag.Errors)
				}
				got["cedar"] = cd == cedar.Allow
				for _, e := range engines {
					if got[e] != want {
						t.Errorf("%+v: %s allowed=%v, want %v", c, e, got[e], want)
					}
				}
			}
		})
	}
}

func known(w workload, tool string) bool {
	for i := range w.rules {
		if toolName(i) == tool {
			return true
		}
	}
	return false
}
