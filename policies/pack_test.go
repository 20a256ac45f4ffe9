package policies_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/govern"
	"github.com/agentgov/agentgov/policies"
	"github.com/agentgov/agentgov/policy/policytest"
)

// The pack's own *_test.yaml files, run as `agentgov policy test policies`
// runs them, against the embedded copy the server uses by default.
func TestBuiltinPackPassesItsPolicyTests(t *testing.T) {
	set, err := policies.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	passed, failed, err := policytest.Run(context.Background(), policies.FS(), "policies", govern.New(set), &out)
	if err != nil {
		t.Fatal(err)
	}
	if failed > 0 || passed < 100 {
		t.Fatalf("%d passed, %d failed:\n%s", passed, failed, out.String())
	}
}

// Typical actions against the whole pack: what the default server pays for
// policy on each call.
func BenchmarkBuiltinPack(b *testing.B) {
	set, err := policies.Builtin()
	if err != nil {
		b.Fatal(err)
	}
	eng := govern.New(set)
	ctx := context.Background()
	for _, c := range []struct {
		name   string
		a      action.Action
		effect action.Effect
	}{
		{"read_file", action.Action{Agent: action.Agent{ID: "a"}, Tool: action.Tool{Name: "read_file"}, Args: map[string]any{"path": "/tmp/notes.txt"}}, action.Allow},
		{"shell_ok", action.Action{Agent: action.Agent{ID: "a"}, Tool: action.Tool{Name: "run_command"}, Args: map[string]any{"command": "go test ./... && git status"}}, action.Allow},
		{"shell_rm_rf_root", action.Action{Agent: action.Agent{ID: "a"}, Tool: action.Tool{Name: "run_command"}, Args: map[string]any{"command": "rm -rf /"}}, action.Deny},
		{"sql_select", action.Action{Agent: action.Agent{ID: "a"}, Tool: action.Tool{Name: "query"}, Args: map[string]any{"sql": "SELECT id, name FROM users WHERE team = 'search' LIMIT 10"}}, action.Allow},
		{"payment_large", action.Action{Agent: action.Agent{ID: "a"}, Tool: action.Tool{Name: "send_money"}, Args: map[string]any{"amount": int64(5000), "recipient": "ACME"}}, action.RequireApproval},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			var d action.Decision
			for b.Loop() {
				d, _ = eng.Decide(ctx, c.a)
			}
			if d.Effect != c.effect {
				b.Fatalf("effect %s, want %s (%v)", d.Effect, c.effect, d.Reasons)
			}
		})
	}
}
