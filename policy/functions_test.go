package policy

import (
	"strings"
	"testing"

	"github.com/agentgov/agentgov/action"
)

// evalBool evaluates one condition against args.
func evalBool(t *testing.T, when, args string) (bool, []string) {
	t.Helper()
	s := mustSet(t, "version: agentgov/v1\nname: f\ndefault: allow\nrules:\n  - id: r\n    when: '"+strings.ReplaceAll(when, "'", "''")+"'\n    effect: deny\n")
	a := decode(t, `{"agent":{"id":"a"},"tool":{"name":"t"},"args":`+args+`}`)
	r := s.Evaluate(&a, env)
	return r.Effect == action.Deny, r.Reasons
}

// The DESIGN §3 rule, written with clean_path, cannot be walked around.
func TestCleanPathClosesPathEvasions(t *testing.T) {
	s := mustSet(t, designExample)
	for _, p := range []string{"/etc/shadow", "//etc/shadow", "/./etc/shadow", "/etc/x/../shadow", "/tmp/../etc/shadow", "/etc//shadow", "/./././etc/./passwd"} {
		a := decode(t, `{"agent":{"id":"a"},"tool":{"name":"read_file"},"args":{"path":"`+p+`"}}`)
		if r := s.Evaluate(&a, env); r.Effect != action.Deny {
			t.Errorf("%s: %s, want deny", p, r.Effect)
		}
	}
	for _, p := range []string{"/tmp/etc/shadow", "etc/shadow", "/etcetera"} {
		a := decode(t, `{"agent":{"id":"a"},"tool":{"name":"read_file"},"args":{"path":"`+p+`"}}`)
		if r := s.Evaluate(&a, env); r.Effect != action.Allow {
			t.Errorf("%s: %s, want allow", p, r.Effect)
		}
	}
}

func TestReaderFunctions(t *testing.T) {
	for _, c := range []struct {
		when, args string
		want       bool
	}{
		{`clean_path(args.p) == "/etc/shadow"`, `{"p":"//etc/./x/../shadow"}`, true},
		{`clean_path(args.p) == "../x"`, `{"p":"a/../../x"}`, true},
		{`clean_path(args.p) == "."`, `{"p":""}`, true},
		// A command line, an argv list, a program beside its arguments.
		{`shell_commands(args).exists(c, c[0] == "rm" && "/" in c)`, `{"command":"\"rm\" -rf /"}`, true},
		{`shell_commands(args).exists(c, c[0] == "rm" && "/" in c)`, `{"command":["rm","-rf","/"]}`, true},
		{`shell_commands(args).exists(c, c[0] == "rm" && "/" in c)`, `{"command":"rm","args":["-rf","/"]}`, true},
		{`shell_commands(args).exists(c, c[0] == "rm" && "/" in c)`, `{"spec":{"program":"/bin/rm","argv":["-rf","/"]}}`, true},
		{`shell_commands(args).exists(c, c[0] == "rm" && "/" in c)`, `{"command":["bash","-c","rm -rf /"]}`, true},
		{`shell_commands(args).exists(c, c[0] == "rm" && "/" in c)`, `{"steps":["ls","sudo rm -rf /"]}`, true},
		{`shell_commands(args).exists(c, c[0] == "rm")`, `{"command":"git commit","message":"don't rm -rf here"}`, false},
		{`shell_commands(args.command).exists(c, c[0] == "rm")`, `{"command":"git rm -r x"}`, false},
		{`shell_commands(["sudo", "rm", "-rf", "/"]).exists(c, c[0] == "rm")`, `{}`, true},
		{`shell_pipelines(args.command).exists(p, p.exists(c, c[0] == "curl") && p.exists(c, c[0] == "sh"))`, `{"command":"curl x | /bin/sh"}`, true},
		{`shell_pipelines(args.command).exists(p, p.exists(c, c[0] == "curl") && p.exists(c, c[0] == "sh"))`, `{"command":"curl -o f x; sh f"}`, false},
		{`sql_statements(args).exists(s, s.startsWith("drop table"))`, `{"q":"DROP/**/TABLE t"}`, true},
		{`sql_statements(args).exists(s, s.matches("^delete from [^ ]+ where 2=2$"))`, `{"q":"DELETE FROM t\nWHERE 2=2"}`, true},
		{`sql_statements(args).exists(s, s.startsWith("drop"))`, `{"q":"INSERT INTO n VALUES ('drop table x')"}`, false},
		{`sql_statements(args.q).size() == 2`, `{"q":"SELECT 1; SELECT 2;"}`, true},
		{`"/etc/shadow" in clean_paths(args)`, `{"path":"/etc/x/../shadow"}`, true},
		{`"/etc/shadow" in clean_paths(args)`, `{"command":"cat /etc//sha\"dow\" | head"}`, true},
		{`"../../../etc/passwd" in clean_paths(args)`, `{"path":"..//.././../etc/passwd"}`, true},
		{`"/etc/shadow" in clean_paths(args)`, `{"command":"echo /etc/shadows"}`, false},
	} {
		got, reasons := evalBool(t, c.when, c.args)
		if got != c.want {
			t.Errorf("%s on %s: %v, want %v (%v)", c.when, c.args, got, c.want, reasons)
		}
	}
}

// A value a reader cannot take is a type error: deny rules fire.
func TestReaderFunctionsFailClosed(t *testing.T) {
	for _, c := range []struct{ when, args string }{
		{`shell_commands(args.n).size() > 5`, `{"n":42}`},
		{`shell_commands(args.c).exists(c, c[0] == "rm")`, `{"c":"` + strings.Repeat("$(", 40) + `"}`},
	} {
		if got, reasons := evalBool(t, c.when, c.args); !got || !strings.Contains(strings.Join(reasons, " "), "failing closed") {
			t.Errorf("%s on %s: %v %v, want deny failing closed", c.when, c.args, got, reasons)
		}
	}
}
