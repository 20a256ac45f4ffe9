package policy

import (
	"math"
	"strings"

	"github.com/agentgov/agentgov/action"

	celast "cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/types"
)

// fastCond is a condition of the most common shapes, compiled to Go instead
// of run through the CEL interpreter:
//
//	args.NAME <op> CONSTANT          op one of == != < <= > >=, constant a number or string
//	args.NAME.startsWith("...")      also endsWith and contains
//
// It answers only where CEL's semantics are plain (a missing argument is
// false; a number against a number constant, a string against a string
// constant) and leaves every other case to the interpreter.
// FuzzFastPathMatchesCEL checks it against CEL.
type fastCond struct {
	annotations bool // tool.annotations.NAME rather than args.NAME
	field       string
	op          string // "==", "!=", "<", "<=", ">", ">=", "startsWith", "endsWith", "contains"
	num         bool   // constant is a number
	i           int64  // constant as int, when isInt
	isInt       bool
	f           float64 // constant as float
	s           string  // constant as string
	isBool      bool
	b           bool
}

var fastOps = map[string]string{
	"_==_": "==", "_!=_": "!=", "_<_": "<", "_<=_": "<=", "_>_": ">", "_>=_": ">=",
	"startsWith": "startsWith", "endsWith": "endsWith", "contains": "contains",
}

// fastLeaf recognises a comparison fastCond can run, or returns nil.
func fastLeaf(e celast.Expr) *fastCond {
	if e.Kind() != celast.CallKind {
		return nil
	}
	call := e.AsCall()
	op, ok := fastOps[call.FunctionName()]
	if !ok {
		return nil
	}
	member := op == "startsWith" || op == "endsWith" || op == "contains"
	var field, lit celast.Expr
	switch {
	case member && call.IsMemberFunction() && len(call.Args()) == 1:
		field, lit = call.Target(), call.Args()[0]
	case !member && !call.IsMemberFunction() && len(call.Args()) == 2:
		field, lit = call.Args()[0], call.Args()[1]
	default:
		return nil
	}
	if field.Kind() != celast.SelectKind || lit.Kind() != celast.LiteralKind {
		return nil
	}
	sel := field.AsSelect()
	if sel.IsTestOnly() {
		return nil
	}
	fc := &fastCond{field: sel.FieldName(), op: op}
	switch o := sel.Operand(); {
	case o.Kind() == celast.IdentKind && o.AsIdent() == "args":
	case o.Kind() == celast.SelectKind && !o.AsSelect().IsTestOnly() && o.AsSelect().FieldName() == "annotations" &&
		o.AsSelect().Operand().Kind() == celast.IdentKind && o.AsSelect().Operand().AsIdent() == "tool":
		fc.annotations = true
	default:
		return nil
	}
	switch v := lit.AsLiteral().(type) {
	case types.Int:
		fc.num, fc.isInt, fc.i, fc.f = true, true, int64(v), float64(v)
	case types.Double:
		fc.num, fc.f = true, float64(v)
	case types.String:
		fc.s = string(v)
	case types.Bool:
		if op != "==" && op != "!=" {
			return nil
		}
		fc.isBool, fc.b = true, bool(v)
	default:
		return nil
	}
	if fc.num && member {
		return nil
	}
	return fc
}

// eval returns the condition's value when the argument is missing (false)
// or of the constant's own kind (a number for a number, a string for a
// string). For anything else (a NaN, a value of another type) handled is
// false and the caller runs the CEL program, so the fast path never has to
// reproduce the interpreter's corner cases.
func (fc *fastCond) eval(a *action.Action) (v, handled bool) {
	m := a.Args
	if fc.annotations {
		m = a.Tool.Annotations
	}
	x, ok := m[fc.field]
	if !ok {
		return false, true
	}
	if fc.isBool {
		b, ok := x.(bool)
		if !ok {
			return false, false
		}
		return (b == fc.b) == (fc.op == "=="), true
	}
	if !fc.num {
		s, ok := x.(string)
		if !ok {
			return false, false
		}
		switch fc.op {
		case "startsWith":
			return strings.HasPrefix(s, fc.s), true
		case "endsWith":
			return strings.HasSuffix(s, fc.s), true
		case "contains":
			return strings.Contains(s, fc.s), true
		}
		return ordered(fc.op, strings.Compare(s, fc.s)), true
	}
	c, ok := compareNumber(x, fc)
	if !ok {
		return false, false
	}
	return ordered(fc.op, c), true
}

func ordered(op string, c int) bool {
	switch op {
	case "==":
		return c == 0
	case "!=":
		return c != 0
	case "<":
		return c < 0
	case "<=":
		return c <= 0
	case ">":
		return c > 0
	}
	return c >= 0
}

// compareNumber compares a Go number with the constant as CEL does: ints
// exactly, and int against double as doubles.
func compareNumber(v any, fc *fastCond) (c int, ok bool) {
	switch x := v.(type) {
	case int64:
		return cmpInt(x, fc), true
	case int:
		return cmpInt(int64(x), fc), true
	case float64:
		if math.IsNaN(x) {
			return 0, false
		}
		if fc.isInt {
			return -cmpIntFloat(fc.i, x), true
		}
		return cmpFloat(x, fc.f), true
	}
	// Other Go number types (uint64, float32, ...) are rare in decoded
	// actions; CEL decides them.
	return 0, false
}

func cmpInt(x int64, fc *fastCond) int {
	if fc.isInt {
		switch {
		case x < fc.i:
			return -1
		case x > fc.i:
			return 1
		}
		return 0
	}
	return cmpIntFloat(x, fc.f)
}

// cmpIntFloat compares an int with a double as cel-go does: the int is
// converted to a double first (so 2^63-1 equals 9.223372036854775807e18).
func cmpIntFloat(i int64, f float64) int { return cmpFloat(float64(i), f) }

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
