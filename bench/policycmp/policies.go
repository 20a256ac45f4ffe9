// Package policycmp compares agentgov's policy engine with OPA and cedar-go
// on the same policies and the same actions, so that the claim "agentgov
// decides faster than the general-purpose engines" is a number measured in
// one run rather than a belief. The policies are the common case of a tool
// allow list: rule i allows tool_i, optionally only when the call's amount
// argument exceeds 1000. Each engine gets the policy written the way its own
// users would write it; TestEnginesAgree checks that the four forms decide
// alike, so the benchmark compares equal work.
package policycmp

import (
	"fmt"
	"strings"
)

// workload is one point of the comparison: how many rules, and whether each
// rule carries a condition on an argument.
type workload struct {
	rules int
	cond  bool
}

// threshold is the amount a call must exceed when rules are conditional.
const threshold = 1000

func toolName(i int) string { return fmt.Sprintf("tool_%d", i) }

// agentgovPolicy is the agentgov document: one rule per tool, matched by
// exact tool name (the indexed path), default deny.
func agentgovPolicy(w workload) []byte {
	var b strings.Builder
	b.WriteString("version: agentgov/v1\nname: policycmp\ndefault: deny\nrules:\n")
	for i := range w.rules {
		fmt.Fprintf(&b, "  - id: r%d\n    match: {tools: [%s]}\n    effect: allow\n", i, toolName(i))
		if w.cond {
			fmt.Fprintf(&b, "    when: 'args.amount > %d'\n", threshold)
		}
	}
	return []byte(b.String())
}

// regoPolicy is the Rego module with one allow rule per tool. OPA's rule
// index turns the equality on input.tool.name into a lookup, so this is the
// form an OPA user would expect to scale.
func regoPolicy(w workload) []byte {
	var b strings.Builder
	b.WriteString("package agentgov\n\ndefault allow := false\n")
	for i := range w.rules {
		if w.cond {
			fmt.Fprintf(&b, "\nallow if {\n\tinput.tool.name == %q\n\tinput.args.amount > %d\n}\n", toolName(i), threshold)
		} else {
			fmt.Fprintf(&b, "\nallow if input.tool.name == %q\n", toolName(i))
		}
	}
	return []byte(b.String())
}

// regoIndexedPolicy is the data-driven Rego form: the allowed tools are a
// data document (see regoIndexedData) and one rule looks the tool up in it.
func regoIndexedPolicy(w workload) []byte {
	if w.cond {
		return fmt.Appendf(nil, "package agentgov\n\ndefault allow := false\n\nallow if {\n\tdata.tools[input.tool.name]\n\tinput.args.amount > %d\n}\n", threshold)
	}
	return []byte("package agentgov\n\ndefault allow := false\n\nallow if data.tools[input.tool.name]\n")
}

// regoIndexedData is the data document of regoIndexedPolicy:
// {"tools": {"tool_0": true, ...}}.
func regoIndexedData(w workload) map[string]any {
	tools := make(map[string]any, w.rules)
	for i := range w.rules {
		tools[toolName(i)] = true
	}
	return map[string]any{"tools": tools}
}

// cedarPolicy is the Cedar policy set: one permit per tool, the tool being
// the resource, the amount travelling in the request context.
func cedarPolicy(w workload) []byte {
	var b strings.Builder
	for i := range w.rules {
		fmt.Fprintf(&b, "@id(%q)\npermit (principal, action == Action::\"call_tool\", resource == Tool::%q)", fmt.Sprintf("r%d", i), toolName(i))
		if w.cond {
			fmt.Fprintf(&b, "\nwhen { context has amount && context.amount > %d }", threshold)
		}
		b.WriteString(";\n\n")
	}
	return []byte(b.String())
}
