package policy

import (
	"fmt"
	"math"
	"testing"

	"cel.dev/cel-go/cel"

	"github.com/agentgov/agentgov/action"
)

// The compiled fast path must agree with the CEL interpreter on every value:
// same truth value, and an error exactly where CEL has one (missing keys
// excepted, which both treat as false).
func checkFastAgrees(t *testing.T, env *cel.Env, expr string, args map[string]any) {
	t.Helper()
	ast, iss := env.Compile(expr)
	if iss != nil && iss.Err() != nil {
		return // not a valid expression for this constant: nothing to compare
	}
	fc := fastLeaf(ast.NativeRep().Expr())
	if fc == nil {
		t.Fatalf("%s: not compiled to the fast path", expr)
	}
	prg, err := env.Program(ast)
	if err != nil {
		t.Fatal(err)
	}
	r := &compiledRule{prg: prg, strength: 3, rule: &Rule{ID: "r"}}
	act := &activation{a: actionWithArgs(args)}
	wantV, wantFail := r.eval(act)
	a := actionWithArgs(args)
	gotV, handled := fc.eval(&a)
	if !handled {
		return // the interpreter decides this one
	}
	if wantFail != "" || wantV != gotV {
		t.Fatalf("%s with args %#v: CEL says (%v, %q), fast path %v", expr, args, wantV, wantFail, gotV)
	}
}

func TestFastPathMatchesCEL(t *testing.T) {
	env, err := newEnv()
	if err != nil {
		t.Fatal(err)
	}
	values := []any{int64(5000), int64(1000), int64(999), 1000.0, 1000.5, 999.999, math.Copysign(0, -1), math.NaN(), math.Inf(1), math.Inf(-1),
		int64(math.MaxInt64), int64(math.MinInt64), uint64(math.MaxUint64), int(7), float32(1000), "1000", "/etc/passwd", "", true, nil,
		map[string]any{"a": 1}, []any{1}, 9.223372036854775807e18}
	consts := []string{"1000", "1000.0", "999.5", "-1", "9223372036854775807", "-9223372036854775808", "1e300", `"/etc/"`, `"1000"`, `"passwd"`}
	for _, op := range []string{"==", "!=", "<", "<=", ">", ">="} {
		for _, c := range consts {
			for _, v := range values {
				checkFastAgrees(t, env, fmt.Sprintf("args.x %s %s", op, c), map[string]any{"x": v})
			}
			checkFastAgrees(t, env, fmt.Sprintf("args.x %s %s", op, c), map[string]any{})
		}
	}
	for _, fn := range []string{"startsWith", "endsWith", "contains"} {
		for _, v := range values {
			checkFastAgrees(t, env, fmt.Sprintf(`args.x.%s("/etc/")`, fn), map[string]any{"x": v})
		}
	}
}

func FuzzFastPathMatchesCEL(f *testing.F) {
	env, err := newEnv()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(uint8(0), int64(5000), 1000.5, "x", uint8(0), int64(1000), 0.0, "")
	f.Fuzz(func(t *testing.T, kind uint8, i int64, fl float64, s string, op uint8, ci int64, cf float64, cs string) {
		var v any
		switch kind % 4 {
		case 0:
			v = i
		case 1:
			v = fl
		case 2:
			v = s
		default:
			v = uint64(i)
		}
		ops := []string{"==", "!=", "<", "<=", ">", ">="}
		consts := []string{fmt.Sprint(ci), fmt.Sprintf("%#v", cf), fmt.Sprintf("%q", cs)}
		for _, c := range consts {
			if math.IsNaN(cf) || math.IsInf(cf, 0) {
				continue
			}
			checkFastAgrees(t, env, fmt.Sprintf("args.x %s %s", ops[int(op)%len(ops)], c), map[string]any{"x": v})
		}
	})
}

func actionWithArgs(args map[string]any) (a action.Action) {
	a.Args = args
	return a
}

// A disjunction of one-byte needles is read in one scan, and agrees with
// the interpreter.
func TestMergedNeedlesMatchCEL(t *testing.T) {
	env, err := newEnv()
	if err != nil {
		t.Fatal(err)
	}
	exprs := []string{
		`args_text.contains("'") || args_text.contains("$") || args_text.contains("rm") || args_text.contains("{")`,
		`args_text.lowerAscii().contains("q") || args_text.contains("Q") || (args_text.contains("x") || args_text.contains("é"))`,
		`(args_text.contains("a") || args_text.contains("b")) && args_text.contains("c")`,
	}
	inputs := []string{"", "plain", "it's", "$HOME", "rm", "{x}", "Q", "q", "xé", "é", "ab", "ac", "bc", "c"}
	for _, expr := range exprs {
		ast, iss := env.Compile(expr)
		if iss.Err() != nil {
			t.Fatal(iss.Err())
		}
		nat, exact := compileNativeAST(ast)
		if nat == nil || !exact {
			t.Fatalf("%s: not compiled natively", expr)
		}
		prg, err := env.Program(ast)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range inputs {
			a := actionWithArgs(map[string]any{"s": s})
			var tx texts
			got, handled := nat.eval(&a, &tx)
			out, _, err := prg.Eval(&activation{a: a})
			if err != nil || !handled || out.Value().(bool) != got {
				t.Errorf("%s on %q: native %v (handled %v), CEL %v %v", expr, s, got, handled, out, err)
			}
		}
	}
}
