package policy

import (
	"strings"
	"unicode/utf8"

	"cel.dev/cel-go/cel"
	celast "cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"

	"github.com/agentgov/agentgov/action"
)

// native is a condition, or a necessary part of one, compiled to Go. Most
// policy conditions are conjunctions and disjunctions of a few plain tests
// (args.amount > 1000, tool.annotations.destructiveHint == true,
// args_text.contains("rm")), and running those through the CEL interpreter
// costs far more than the tests themselves.
//
// eval follows CEL's logic exactly: && is false as soon as one side is
// false and || true as soon as one side is true, whatever the other side
// (even an error); a leaf that cannot answer for a value (an unexpected
// type) reports handled=false and the interpreter decides.
type native struct {
	kind   nativeKind
	kids   []native // and, or
	needle needle
	empty  emptyVar
	fc     *fastCond
}

type nativeKind uint8

const (
	nativeAnd nativeKind = iota
	nativeOr
	nativeNeedle
	nativeEmpty
	nativeCompare
)

func (n *native) eval(a *action.Action, t *texts) (v, handled bool) {
	switch n.kind {
	case nativeAnd:
		all := true
		for i := range n.kids {
			v, h := n.kids[i].eval(a, t)
			if h && !v {
				return false, true
			}
			all = all && h
		}
		return true, all
	case nativeOr:
		all := true
		for i := range n.kids {
			v, h := n.kids[i].eval(a, t)
			if h && v {
				return true, true
			}
			all = all && h
		}
		return false, all
	case nativeNeedle:
		if n.needle.any {
			return strings.ContainsAny(t.get(a.Args, n.needle.lower), n.needle.lit), true
		}
		return strings.Contains(t.get(a.Args, n.needle.lower), n.needle.lit), true
	case nativeEmpty:
		return n.empty.eval(a), true
	}
	return n.fc.eval(a)
}

// needle is args_text.contains("lit") or args_text.lowerAscii().contains("lit");
// with any, a disjunction of such tests of single bytes (any byte of lit).
type needle struct {
	lit   string
	lower bool
	any   bool
}

// mergeByteNeedles turns the one-byte needles of a disjunction into one
// scan: args_text.contains("'") || args_text.contains("$") || ... reads the
// text once, not once per byte.
func mergeByteNeedles(kids []native) []native {
	var out []native
	merged := map[bool]int{} // lower -> index in out
	for _, k := range kids {
		if k.kind != nativeNeedle || len(k.needle.lit) != 1 || k.needle.lit[0] >= utf8.RuneSelf {
			out = append(out, k)
			continue
		}
		if i, ok := merged[k.needle.lower]; ok {
			out[i].needle.lit += k.needle.lit
			out[i].needle.any = true
			continue
		}
		merged[k.needle.lower] = len(out)
		out = append(out, k)
	}
	return out
}

// emptyVar is destination, model or content compared with "".
type emptyVar struct {
	name  string
	equal bool // == "" rather than != ""
}

func (n emptyVar) eval(a *action.Action) bool {
	var s string
	switch n.name {
	case "destination":
		s = a.Destination
	case "model":
		s = a.Model
	default:
		s = a.Content
	}
	return (s == "") == n.equal
}

// compileNative returns a formula for e and whether it is exact (e fully
// recognised). An inexact formula is a necessary condition: when it is
// false, e is false; otherwise the interpreter must run. ok false means
// nothing is known.
func compileNative(e celast.Expr) (n native, exact, ok bool) {
	if e.Kind() == celast.CallKind {
		call := e.AsCall()
		switch call.FunctionName() {
		case "_&&_":
			n = native{kind: nativeAnd}
			exact = true
			for _, a := range call.Args() {
				k, ex, ok := compileNative(a)
				if ok {
					n.kids = append(n.kids, k)
				}
				exact = exact && ex && ok
			}
			return n, exact, len(n.kids) > 0
		case "_||_":
			n = native{kind: nativeOr}
			exact = true
			for _, a := range call.Args() {
				k, ex, ok := compileNative(a)
				if !ok {
					return native{}, false, false // one unknown side: the disjunction may be true
				}
				if k.kind == nativeOr {
					n.kids = append(n.kids, k.kids...) // a || b || c is one disjunction
				} else {
					n.kids = append(n.kids, k)
				}
				exact = exact && ex
			}
			n.kids = mergeByteNeedles(n.kids)
			if len(n.kids) == 1 {
				return n.kids[0], exact, true
			}
			return n, exact, true
		}
	}
	if nd, ok := needleOf(e); ok {
		return native{kind: nativeNeedle, needle: nd}, true, true
	}
	if ev, ok := emptyVarOf(e); ok {
		return native{kind: nativeEmpty, empty: ev}, true, true
	}
	if fc := fastLeaf(e); fc != nil {
		return native{kind: nativeCompare, fc: fc}, true, true
	}
	return native{}, false, false
}

func compileNativeAST(ast *cel.Ast) (*native, bool) {
	n, exact, ok := compileNative(ast.NativeRep().Expr())
	if !ok {
		return nil, false
	}
	return &n, exact
}

func needleOf(e celast.Expr) (needle, bool) {
	if e.Kind() != celast.CallKind {
		return needle{}, false
	}
	call := e.AsCall()
	if call.FunctionName() != "contains" || !call.IsMemberFunction() || len(call.Args()) != 1 || call.Args()[0].Kind() != celast.LiteralKind {
		return needle{}, false
	}
	lit, ok := call.Args()[0].AsLiteral().(types.String)
	if !ok {
		return needle{}, false
	}
	lower, ok := isArgsText(call.Target())
	if !ok {
		return needle{}, false
	}
	return needle{lit: string(lit), lower: lower}, true
}

func emptyVarOf(e celast.Expr) (emptyVar, bool) {
	if e.Kind() != celast.CallKind {
		return emptyVar{}, false
	}
	call := e.AsCall()
	op := call.FunctionName()
	if (op != "_==_" && op != "_!=_") || len(call.Args()) != 2 {
		return emptyVar{}, false
	}
	v, lit := call.Args()[0], call.Args()[1]
	if v.Kind() != celast.IdentKind || lit.Kind() != celast.LiteralKind {
		return emptyVar{}, false
	}
	name := v.AsIdent()
	if name != "destination" && name != "model" && name != "content" {
		return emptyVar{}, false
	}
	if s, ok := lit.AsLiteral().(types.String); !ok || s != "" {
		return emptyVar{}, false
	}
	return emptyVar{name: name, equal: op == "_==_"}, true
}

// isArgsText reports whether e is args_text, or args_text.lowerAscii().
func isArgsText(e celast.Expr) (lower, ok bool) {
	switch e.Kind() {
	case celast.IdentKind:
		return false, e.AsIdent() == "args_text"
	case celast.CallKind:
		c := e.AsCall()
		if c.FunctionName() == "lowerAscii" && c.IsMemberFunction() && len(c.Args()) == 0 {
			if l, ok := isArgsText(c.Target()); ok && !l {
				return true, true
			}
		}
	}
	return false, false
}

// texts caches args_text, its lower-case form and what the readers made of
// the arguments, for one evaluation.
type texts struct {
	text, lower       string
	hasText, hasLower bool
	textVal           ref.Val // text as a CEL value
	reads             argReads
}

// merge takes what o computed and t has not.
func (t *texts) merge(o *texts) {
	if o.hasText && !t.hasText {
		t.text, t.hasText = o.text, true
	}
	if o.hasLower && !t.hasLower {
		t.lower, t.hasLower = o.lower, true
	}
	if t.textVal == nil {
		t.textVal = o.textVal
	}
	if t.reads.done == nil {
		t.reads = o.reads
	}
}

func (t *texts) get(a map[string]any, lower bool) string {
	if !t.hasText {
		t.text, t.hasText = ArgsText(a), true
	}
	if !lower {
		return t.text
	}
	if !t.hasLower {
		t.lower, t.hasLower = lowerASCII(t.text), true
	}
	return t.lower
}

// lowerASCII lowers A-Z only, as CEL's lowerAscii does.
func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}
