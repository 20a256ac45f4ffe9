package policy

import (
	"strconv"
	"strings"

	celast "cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/types"

	"github.com/agentgov/agentgov/action"
)

// CEL reports a field selected on a string, number or boolean ("no such key")
// with the same error as a key absent from a map. The first is a value of the
// wrong type, which must fail closed; the second an absent argument, which
// makes a condition false. shapePaths are the paths a condition reads into
// the request, so that a "missing" error can be checked against the request:
// when one of them meets a value it cannot be read into, the error was (or
// may have been) a type error.

type stepKind uint8

const (
	stepKey   stepKind = iota // a field, or an index by a constant string
	stepIndex                 // an index by a constant int
	stepAny                   // an index by a computed value
	stepElem                  // a one-variable loop's variable: a list's items, a map's keys
	stepValue                 // a two-variable loop's second variable: a list's items, a map's values
	stepFirst                 // a two-variable loop's first variable: a list's indexes, a map's keys
)

type shapeStep struct {
	kind stepKind
	key  string
	idx  int64
}

// shapePath is a path into args or tool.annotations.
type shapePath struct {
	annotations bool
	steps       []shapeStep
}

func (p shapePath) extend(s shapeStep) shapePath {
	return shapePath{annotations: p.annotations, steps: append(p.steps[:len(p.steps):len(p.steps)], s)}
}

// shapePathsOf collects the paths of e that go on into a value of the
// request, each ending in a selection or an index of it.
func shapePathsOf(e celast.Expr) []shapePath {
	var out []shapePath
	seen := map[string]bool{}
	add := func(p shapePath) {
		k := p.String()
		if !seen[k] {
			seen[k] = true
			out = append(out, p)
		}
	}
	var visit func(e celast.Expr, scope map[string]*shapePath)
	// pathOf is the path e denotes, when it denotes one.
	var pathOf func(e celast.Expr, scope map[string]*shapePath) (shapePath, bool)
	pathOf = func(e celast.Expr, scope map[string]*shapePath) (shapePath, bool) {
		switch e.Kind() {
		case celast.IdentKind:
			name := e.AsIdent()
			if p, ok := scope[name]; ok {
				if p == nil {
					return shapePath{}, false
				}
				return *p, true
			}
			if name == "args" {
				return shapePath{}, true
			}
		case celast.SelectKind:
			sel := e.AsSelect()
			if sel.IsTestOnly() {
				return shapePath{}, false
			}
			op := sel.Operand()
			if op.Kind() == celast.IdentKind && op.AsIdent() == "tool" && sel.FieldName() == "annotations" {
				if _, shadowed := scope["tool"]; !shadowed {
					return shapePath{annotations: true}, true
				}
			}
			if p, ok := pathOf(op, scope); ok {
				return p.extend(shapeStep{kind: stepKey, key: sel.FieldName()}), true
			}
		case celast.CallKind:
			call := e.AsCall()
			if call.FunctionName() != "_[_]" || len(call.Args()) != 2 {
				return shapePath{}, false
			}
			p, ok := pathOf(call.Args()[0], scope)
			if !ok {
				return shapePath{}, false
			}
			idx := call.Args()[1]
			if idx.Kind() == celast.LiteralKind {
				switch v := idx.AsLiteral().(type) {
				case types.String:
					return p.extend(shapeStep{kind: stepKey, key: string(v)}), true
				case types.Int:
					return p.extend(shapeStep{kind: stepIndex, idx: int64(v)}), true
				}
			}
			return p.extend(shapeStep{kind: stepAny}), true
		}
		return shapePath{}, false
	}
	with := func(scope map[string]*shapePath, name string, p *shapePath) map[string]*shapePath {
		if name == "" {
			return scope
		}
		next := make(map[string]*shapePath, len(scope)+1)
		for k, v := range scope {
			next[k] = v
		}
		next[name] = p // nil: a name that shadows args or a loop variable and denotes no path
		return next
	}
	visit = func(e celast.Expr, scope map[string]*shapePath) {
		switch e.Kind() {
		case celast.SelectKind:
			sel := e.AsSelect()
			if p, ok := pathOf(e, scope); ok && len(p.steps) > 0 {
				add(p)
			}
			visit(sel.Operand(), scope)
		case celast.CallKind:
			call := e.AsCall()
			if call.FunctionName() == "_[_]" {
				if p, ok := pathOf(e, scope); ok && len(p.steps) > 0 {
					add(p)
				}
			}
			if call.IsMemberFunction() {
				visit(call.Target(), scope)
			}
			for _, a := range call.Args() {
				visit(a, scope)
			}
		case celast.ListKind:
			for _, el := range e.AsList().Elements() {
				visit(el, scope)
			}
		case celast.MapKind:
			for _, en := range e.AsMap().Entries() {
				visit(en.AsMapEntry().Key(), scope)
				visit(en.AsMapEntry().Value(), scope)
			}
		case celast.ComprehensionKind:
			c := e.AsComprehension()
			visit(c.IterRange(), scope)
			visit(c.AccuInit(), scope)
			inner := scope
			var accu *shapePath
			if p, ok := pathOf(c.AccuInit(), scope); ok {
				accu = &p // cel.bind names a value as the accumulator
			}
			inner = with(inner, c.AccuVar(), accu)
			rng, ranged := pathOf(c.IterRange(), scope)
			var first, second *shapePath
			if ranged {
				if c.IterVar2() == "" {
					p := rng.extend(shapeStep{kind: stepElem})
					first = &p
				} else {
					p1, p2 := rng.extend(shapeStep{kind: stepFirst}), rng.extend(shapeStep{kind: stepValue})
					first, second = &p1, &p2
				}
			}
			inner = with(inner, c.IterVar(), first)
			inner = with(inner, c.IterVar2(), second)
			visit(c.LoopCondition(), inner)
			visit(c.LoopStep(), inner)
			visit(c.Result(), inner)
		}
	}
	visit(e, map[string]*shapePath{})
	return out
}

// String names the path as a condition writes it, for reasons; the loop
// steps read [*].
func (p shapePath) String() string {
	var b strings.Builder
	if p.annotations {
		b.WriteString("tool.annotations")
	} else {
		b.WriteString("args")
	}
	for _, s := range p.steps {
		switch s.kind {
		case stepKey:
			b.WriteString("." + s.key)
		case stepIndex:
			b.WriteString("[" + strconv.FormatInt(s.idx, 10) + "]")
		default:
			b.WriteString("[*]")
		}
	}
	return b.String()
}

// wrongShape returns the first path that, in a, runs into a value it cannot
// be read into (a field of a string, an index of a number), and what that
// value is; ok is false when every path either reads what is there or stops
// at an absent key or a null.
func wrongShape(paths []shapePath, a *action.Action) (where, kind string, ok bool) {
	for _, p := range paths {
		root := map[string]any(a.Args)
		if p.annotations {
			root = a.Tool.Annotations
		}
		if root == nil {
			continue
		}
		if n, k, bad := walkShape(root, p.steps, 0); bad {
			return shapePath{annotations: p.annotations, steps: p.steps[:n]}.String(), k, true
		}
	}
	return "", "", false
}

// walkShape follows steps from v; bad is set when a step meets a value it
// cannot read into, n is how many steps led to that value.
func walkShape(v any, steps []shapeStep, n int) (int, string, bool) {
	if n == len(steps) || v == nil {
		return 0, "", false
	}
	s := steps[n]
	switch x := v.(type) {
	case map[string]any:
		switch s.kind {
		case stepKey:
			if child, ok := x[s.key]; ok {
				return walkShape(child, steps, n+1)
			}
			return 0, "", false
		case stepIndex:
			return n, "a map", true
		case stepAny, stepValue:
			for _, child := range x {
				if m, k, bad := walkShape(child, steps, n+1); bad {
					return m, k, true
				}
			}
		case stepElem, stepFirst:
			for key := range x {
				if m, k, bad := walkShape(key, steps, n+1); bad {
					return m, k, true
				}
			}
		}
		return 0, "", false
	case []any:
		switch s.kind {
		case stepIndex:
			if s.idx >= 0 && s.idx < int64(len(x)) {
				return walkShape(x[s.idx], steps, n+1)
			}
		case stepAny, stepElem, stepValue:
			for _, child := range x {
				if m, k, bad := walkShape(child, steps, n+1); bad {
					return m, k, true
				}
			}
		case stepFirst:
			if len(x) > 0 && n+1 < len(steps) {
				return n + 1, "a number", true
			}
		}
		// A string key on a list is an error CEL already reports as one.
		return 0, "", false
	}
	if s.kind == stepElem || s.kind == stepValue || s.kind == stepFirst {
		// A loop over a scalar is an error CEL already reports as one.
		return 0, "", false
	}
	return n, kindOf(v), true
}

func kindOf(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case int64, int, float64:
		return "a number"
	}
	return "a value"
}
