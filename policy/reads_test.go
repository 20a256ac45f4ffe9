package policy

import (
	"testing"

	"github.com/agentgov/agentgov/action"
)

// shell_commands(args) in many rules and documents reads the arguments once
// per evaluation, and gives the same answers as reading them afresh.
func TestReadersOfArgsAreSharedAndAgree(t *testing.T) {
	s := mustSet(t, `
version: agentgov/v1
name: one
default: allow
rules:
  - {id: a, when: 'shell_commands(args).exists(c, c[0] == "rm")', effect: deny}
  - {id: b, when: 'shell_pipelines(args).exists(p, p.size() > 1)', effect: audit}
  - {id: c, when: 'sql_statements(args).exists(s, s.startsWith("drop"))', effect: deny}
`, `
version: agentgov/v1
name: two
default: allow
rules:
  - {id: d, when: 'shell_commands(args).size() == shell_commands(args.command).size()', effect: audit}
  - {id: e, when: 'sql_injected(args).exists(s, s.startsWith("?; drop"))', effect: deny}
  - {id: f, when: '["ls"].exists(args, shell_commands(args).size() == 1)', effect: audit}
`)
	// The DROP is inside a literal when q is read as SQL (c does not
	// fire), and a second statement when q is pasted after a quote (e does).
	a := decode(t, `{"agent":{"id":"a"},"tool":{"name":"t"},"args":{"command":"ls | wc -l; rm -rf x","q":"x'; DROP TABLE t"}}`)
	for range 2 {
		r := s.Evaluate(&a, env)
		if r.Effect != action.Deny || !sameStrings(r.Rules, []string{"a", "e"}) {
			t.Fatalf("effect %s rules %v reasons %v", r.Effect, r.Rules, r.Reasons)
		}
	}
	a = decode(t, `{"agent":{"id":"a"},"tool":{"name":"t"},"args":{"command":"ls | wc -l"}}`)
	if r := s.Evaluate(&a, env); r.Effect != action.Allow || !r.Flagged || !sameStrings(r.Rules, []string{"b", "d", "f"}) {
		t.Fatalf("effect %s flagged %v rules %v", r.Effect, r.Flagged, r.Rules)
	}
}

func sameStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	m := map[string]int{}
	for _, x := range a {
		m[x]++
	}
	for _, x := range b {
		m[x]--
	}
	for _, v := range m {
		if v != 0 {
			return false
		}
	}
	return true
}

func TestOnlyLoopsOverTheRequestAreCostTracked(t *testing.T) {
	env, _ := newEnv()
	for src, want := range map[string]bool{
		`shell_commands(args).exists(c, c.exists(w, w == "x"))`:           false,
		`shell_pipelines(args.c).exists(p, p.exists(c, c[0] == "sh"))`:    false,
		`args_text.split("\n").exists(l, l == "x")`:                       false,
		`["a", "b"].exists(x, x == "a")`:                                  false,
		`args.items.exists(i, i == 1)`:                                    true,
		`shell_commands(args).exists(c, args.items.exists(i, i == c[0]))`: true,
	} {
		ast, iss := env.Compile(src)
		if iss.Err() != nil {
			t.Fatal(iss.Err())
		}
		if got := loopsOverRequest(ast); got != want {
			t.Errorf("%s: %v, want %v", src, got, want)
		}
	}
}
