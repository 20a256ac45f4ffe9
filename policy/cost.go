package policy

import (
	"fmt"
	"math"

	"cel.dev/cel-go/cel"
	celast "cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/cost"
	"cel.dev/cel-go/common/operators"
	"cel.dev/cel-go/common/overloads"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/parser"
)

// A condition's cost is bounded by what it is given: every value comes from
// one request, which the server bounds (a JSON body, 1 MiB by default for the
// decision API, 16 MiB for MCP messages, nested at most action.MaxNesting
// deep). CEL estimates a condition's worst-case cost at load from size
// bounds on its inputs; these say that any value may be as large as the
// whole request, while a value reached by iterating over a list or map is
// one of many that together fit in it. With these bounds a condition that
// reads each byte of the request a fixed number of times costs a fixed
// amount per byte, and one that compares every item of one list with every
// item of another costs more per byte the larger the request: that is what
// load refuses.

// costReference is the request size at which a condition's cost is
// estimated and stated per byte.
const costReference = 1 << 20

// MaxCostPerByte bounds a condition's estimated worst-case cost per byte of
// request at load, in CEL cost units (one unit is about one comparison; a
// regular expression costs a quarter unit per pattern character per ten
// bytes of input). Reading every string argument with a few dozen regular
// expressions stays well under it.
const MaxCostPerByte = 250

// elemSize is the size bound of a value reached by iteration: the items of a
// list from the request share the request between them.
const elemSize = 2

// runtimeCostLimit stops an evaluation of a condition with a loop that runs
// past its estimate anyway (an unusually large request); the rule then fails
// closed. Conditions without a loop are linear in the request and run
// untracked (tracking costs about 40% of an evaluation).
const runtimeCostLimit = 50_000_000

// sizeHints gives the cost estimator the size bounds above for a request of
// the given size.
type sizeHints struct{ request uint64 }

func (h sizeHints) EstimateSize(n cost.AstNode) *cost.SizeEstimate {
	elem := &cost.SizeEstimate{Max: elemSize}
	switch n.Type().Kind() {
	case types.StringKind, types.BytesKind, types.DynKind:
		return &cost.SizeEstimate{Max: h.request, Key: elem, Elem: elem}
	case types.ListKind, types.MapKind:
		return &cost.SizeEstimate{Max: h.request / 2, Key: elem, Elem: elem}
	}
	return nil
}

func (sizeHints) EstimateCallCost(function, overloadID string, target *cost.AstNode, args []cost.AstNode) *cost.CallEstimate {
	return nil
}

// costModels prices calls whose standard model overstates them: Go finds a
// substring in time linear in both strings, not their product; the parts of
// a split share the string between them.
func costModels() cel.EnvOption {
	split := func(id string) cost.OverloadModel {
		return cost.MemberOverload(id,
			cost.EvalCost(cost.Sum(cost.Scale(cost.Target(), cost.StringTraversalCostFactor), cost.Target())),
			cost.ResultSize(cost.List(cost.AtMost(cost.Target()), cost.Const(elemSize))))
	}
	return cel.CostModel(
		cost.MemberOverload(overloads.ContainsString,
			cost.EvalCost(cost.Scale(cost.Sum(cost.Target(), cost.Arg(0)), cost.StringTraversalCostFactor))),
		split("string_split_string"),
		split("string_split_string_int"),
		// The words of a value that are untrusted: a lookup per word of
		// it (each a few microseconds, priced as a scan of the value), at
		// most as many words as the value has characters.
		cost.Overload("_untrusted_parts_dyn_dyn",
			cost.EvalCost(cost.Scale(cost.Arg(1), 4*cost.StringTraversalCostFactor)),
			cost.ResultSize(cost.List(cost.AtMost(cost.Arg(1)), cost.Const(elemSize)))),
		// Whether a result spelled a value out beside a verb: a lookup per
		// value inside it, priced as a scan of the value as
		// untrusted_parts is (the verbs are a tool name's few words).
		cost.Overload("_instructed_dyn_dyn_list",
			cost.EvalCost(cost.Scale(cost.Arg(1), 4*cost.StringTraversalCostFactor))),
	)
}

// checkCost refuses a condition whose worst-case cost is too high, saying
// which part is to blame and why.
func checkCost(env *cel.Env, ast *cel.Ast) *whenError {
	at, err := env.EstimateCost(ast, sizeHints{costReference})
	if err != nil {
		return &whenError{msg: "cost: " + err.Error()}
	}
	twice, err := env.EstimateCost(ast, sizeHints{2 * costReference})
	if err != nil {
		return &whenError{msg: "cost: " + err.Error()}
	}
	// A linear condition costs at most twice as much on twice the input;
	// one that grows with the square of it, four times.
	if at.Max == math.MaxUint64 || float64(twice.Max) > 3*float64(at.Max) {
		return &whenError{msg: "too expensive: " + superlinear(ast) +
			fmt.Sprintf(", so its cost grows faster than the request (a 1 MiB request could take %s steps)", steps(at.Max))}
	}
	if perByte := at.Max / costReference; perByte > MaxCostPerByte {
		return &whenError{msg: fmt.Sprintf("too expensive: it can take %d steps per byte of the request (at most %d); "+
			"use fewer or shorter regular expressions, or split it into several rules", perByte, MaxCostPerByte)}
	}
	return nil
}

func steps(n uint64) string {
	if n == math.MaxUint64 {
		return "more than 1e+19"
	}
	return fmt.Sprintf("%.2g", float64(n))
}

// superlinear names the part of a condition whose cost grows faster than
// its input: a loop (or `in`) over one request value inside a loop over
// another, or a call that pairs two request values.
func superlinear(ast *cel.Ast) string {
	native := ast.NativeRep()
	show := func(e celast.Expr) string {
		s, err := parser.Unparse(e, native.SourceInfo())
		if err != nil {
			return "the condition"
		}
		return "`" + s + "`"
	}
	var why string
	var visit func(e celast.Expr, loops []celast.ComprehensionExpr)
	visit = func(e celast.Expr, loops []celast.ComprehensionExpr) {
		if why != "" {
			return
		}
		switch e.Kind() {
		case celast.ComprehensionKind:
			c := e.AsComprehension()
			if outer := independentOf(c.IterRange(), loops); outer != nil && !isLiteral(c.IterRange()) {
				why = fmt.Sprintf("%s goes through %s once for every item of %s", show(e), show(c.IterRange()), show((*outer).IterRange()))
				return
			}
			visit(c.IterRange(), loops)
			inner := append(loops[:len(loops):len(loops)], c)
			visit(c.LoopCondition(), inner)
			visit(c.LoopStep(), inner)
			visit(c.Result(), loops)
		case celast.CallKind:
			call := e.AsCall()
			args := call.Args()
			if call.FunctionName() == operators.In && len(args) == 2 && !isLiteral(args[1]) {
				if outer := independentOf(args[1], loops); outer != nil {
					why = fmt.Sprintf("%s looks through %s once for every item of %s", show(e), show(args[1]), show((*outer).IterRange()))
					return
				}
			}
			if call.FunctionName() == overloads.Matches && call.IsMemberFunction() && len(args) == 1 && !isLiteral(args[0]) {
				why = fmt.Sprintf("%s matches against a pattern taken from the request, which costs the product of their sizes", show(e))
				return
			}
			if call.IsMemberFunction() {
				visit(call.Target(), loops)
			}
			for _, a := range args {
				visit(a, loops)
			}
		case celast.SelectKind:
			visit(e.AsSelect().Operand(), loops)
		case celast.ListKind:
			for _, el := range e.AsList().Elements() {
				visit(el, loops)
			}
		case celast.MapKind:
			for _, en := range e.AsMap().Entries() {
				visit(en.AsMapEntry().Key(), loops)
				visit(en.AsMapEntry().Value(), loops)
			}
		}
	}
	visit(native.Expr(), nil)
	if why == "" {
		why = "it combines values of the request with each other"
	}
	return why
}

// independentOf returns the innermost enclosing loop whose item e does not
// depend on, when e does not depend on the item of any enclosing loop: then
// e is a whole request value, gone through again for every item.
func independentOf(e celast.Expr, loops []celast.ComprehensionExpr) *celast.ComprehensionExpr {
	if len(loops) == 0 {
		return nil
	}
	for _, l := range loops {
		if refersTo(e, l.IterVar()) || refersTo(e, l.IterVar2()) {
			return nil
		}
	}
	return &loops[len(loops)-1]
}

func refersTo(e celast.Expr, name string) bool {
	if name == "" {
		return false
	}
	found := false
	celast.PostOrderVisit(e, celast.NewExprVisitor(func(x celast.Expr) {
		if x.Kind() == celast.IdentKind && x.AsIdent() == name {
			found = true
		}
	}))
	return found
}

func isLiteral(e celast.Expr) bool {
	switch e.Kind() {
	case celast.LiteralKind:
		return true
	case celast.ListKind:
		for _, el := range e.AsList().Elements() {
			if !isLiteral(el) {
				return false
			}
		}
		return true
	}
	return false
}
