package policy

import (
	"strings"
	"testing"

	"github.com/agentgov/agentgov/action"
)

// Conditions written the way CEL's documentation teaches them load: an
// argument's size is bounded by the request that carries it.
func TestConditionsAsCELTeachesThemLoad(t *testing.T) {
	for _, c := range []struct {
		when string
		hit  string // args that make it true
		miss string // args that make it false
	}{
		{`args.command.contains("rm -rf")`, `{"command":"rm -rf /"}`, `{"command":"ls"}`},
		{`!args.to.matches("@acme[.]com$")`, `{"to":"x@evil.example"}`, `{"to":"ana@acme.com"}`},
		{`args.recipients.exists(r, !r.endsWith("@acme.com"))`, `{"recipients":["ana@acme.com","x@evil.example"]}`, `{"recipients":["ana@acme.com"]}`},
		{`"prod" in args.tags`, `{"tags":["dev","prod"]}`, `{"tags":["dev"]}`},
		{`args.items.all(i, i.price < 100)`, `{"items":[{"price":5},{"price":99}]}`, `{"items":[{"price":5},{"price":500}]}`},
		{`args.url.contains("webhook")`, `{"url":"https://x.example/webhook/1"}`, `{"url":"https://x.example/"}`},
		{`args.command.lowerAscii().contains("sudo")`, `{"command":"SUDO ls"}`, `{"command":"ls"}`},
		{`args.urls.exists(u, u.matches("^https://evil[.]"))`, `{"urls":["https://evil.example"]}`, `{"urls":["https://good.example"]}`},
		{`args.rows.all(r, r.all(c, c != ""))`, `{"rows":[["a","b"],["c"]]}`, `{"rows":[["a",""]]}`},
		{`args.body.contains(args.needle)`, `{"body":"abc","needle":"b"}`, `{"body":"abc","needle":"x"}`},
		{`args.to.split(",").exists(r, r.trim().endsWith("@evil.example"))`, `{"to":"a@acme.com, b@evil.example"}`, `{"to":"a@acme.com"}`},
	} {
		t.Run(c.when, func(t *testing.T) {
			s := mustSet(t, "version: agentgov/v1\nname: c\ndefault: allow\nrules:\n  - id: r\n    when: '"+strings.ReplaceAll(c.when, "'", "''")+"'\n    effect: deny\n")
			for args, want := range map[string]action.Effect{c.hit: action.Deny, c.miss: action.Allow} {
				a := decode(t, `{"agent":{"id":"a"},"tool":{"name":"t"},"args":`+args+`}`)
				if r := s.Evaluate(&a, env); r.Effect != want {
					t.Errorf("%s: %s, want %s (%v)", args, r.Effect, want, r.Reasons)
				}
			}
		})
	}
}

// A condition whose cost grows faster than the request is refused, and the
// error names the part to blame and why, in words.
func TestTooExpensiveSaysWhichPartAndWhy(t *testing.T) {
	for _, c := range []struct{ when, want string }{
		{`args.a.exists(x, args.b.exists(y, x == y))`,
			"too expensive: `args.b.exists(y, x == y)` goes through `args.b` once for every item of `args.a`, so its cost grows faster than the request"},
		{`args.a.exists(x, x in args.b)`,
			"too expensive: `x in args.b` looks through `args.b` once for every item of `args.a`"},
		{`args.subject.matches(args.pattern)`,
			"too expensive: `args.subject.matches(args.pattern)` matches against a pattern taken from the request"},
		{`args_text.matches("` + strings.Repeat("(a|b)", 2500) + `")`,
			"too expensive: it can take 312 steps per byte of the request (at most 250); use fewer or shorter regular expressions"},
	} {
		t.Run(c.want[:40], func(t *testing.T) {
			d, err := Parse("x.yaml", []byte("version: agentgov/v1\nname: c\nrules:\n  - id: r\n    when: '"+c.when+"'\n    effect: deny\n"))
			if err != nil {
				t.Fatal(err)
			}
			_, err = Compile([]*Document{d})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error:\n  %v\nwant it to contain:\n  %s", err, c.want)
			}
			if !strings.HasPrefix(err.Error(), "x.yaml:5: rule r: when: ") {
				t.Errorf("error does not name file, line and rule: %v", err)
			}
		})
	}
}

// The runtime limit still guards a loop on a request larger than any
// estimate: the evaluation stops and the rule fails closed.
func TestRuntimeCostLimitFailsClosed(t *testing.T) {
	s := mustSet(t, `
version: agentgov/v1
name: c
default: allow
rules:
  - id: r
    when: 'args.items.exists(i, i.matches("^(`+strings.Repeat("a|", 500)+`b)*c$"))'
    effect: deny
`)
	items := make([]any, 10_000)
	for i := range items {
		items[i] = strings.Repeat("ab", 128)
	}
	a := action.Action{Agent: action.Agent{ID: "a"}, Tool: action.Tool{Name: "t"}, Args: map[string]any{"items": items}}
	r := s.Evaluate(&a, env)
	if r.Effect != action.Deny || !strings.Contains(strings.Join(r.Reasons, " "), "failing closed") {
		t.Fatalf("effect %s reasons %v, want deny failing closed", r.Effect, r.Reasons)
	}
}
