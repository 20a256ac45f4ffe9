package policy

import (
	"cel.dev/cel-go/cel"
	celast "cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
)

// A built-in pack runs many rules over the same arguments, each reading them
// with shell_commands(args) or sql_statements(args). Compile rewrites such a
// call on the whole of args into a hidden variable, which an evaluation
// computes once, on first use, and shares between all rules and documents.

// argReaders maps a reader of the whole of args to its hidden variable.
var argReaders = map[string]string{
	"shell_commands":  "_shell_commands_args",
	"shell_pipelines": "_shell_pipelines_args",
	"sql_statements":  "_sql_statements_args",
	"sql_injected":    "_sql_injected_args",
	"clean_paths":     "_clean_paths_args",
}

func argReaderVariables() []cel.EnvOption {
	words := cel.ListType(cel.ListType(cel.StringType))
	return []cel.EnvOption{
		cel.Variable("_shell_commands_args", words),
		cel.Variable("_shell_pipelines_args", cel.ListType(words)),
		cel.Variable("_sql_statements_args", cel.ListType(cel.StringType)),
		cel.Variable("_sql_injected_args", cel.ListType(cel.StringType)),
		cel.Variable("_clean_paths_args", cel.ListType(cel.StringType)),
	}
}

// argReadsOptimizer rewrites reader(args) into the reader's hidden variable.
type argReadsOptimizer struct{}

func (argReadsOptimizer) Optimize(ctx *cel.OptimizerContext, a *celast.AST) *celast.AST {
	shadowed := false
	celast.PostOrderVisit(a.Expr(), celast.NewExprVisitor(func(e celast.Expr) {
		if e.Kind() == celast.ComprehensionKind {
			c := e.AsComprehension()
			shadowed = shadowed || c.IterVar() == "args" || c.IterVar2() == "args"
		}
	}))
	if shadowed {
		return a // args is a loop variable somewhere: leave the calls alone
	}
	celast.PostOrderVisit(a.Expr(), celast.NewExprVisitor(func(e celast.Expr) {
		if e.Kind() != celast.CallKind {
			return
		}
		call := e.AsCall()
		v, ok := argReaders[call.FunctionName()]
		if !ok || call.IsMemberFunction() || len(call.Args()) != 1 {
			return
		}
		if arg := call.Args()[0]; arg.Kind() != celast.IdentKind || arg.AsIdent() != "args" {
			return
		}
		ctx.UpdateExpr(e, ctx.NewIdent(v))
	}))
	return a
}

var argReadsOpt = func() *cel.StaticOptimizer {
	o, err := cel.NewStaticOptimizer(argReadsOptimizer{})
	if err != nil {
		panic(err)
	}
	return o
}()

// argReads holds what the readers made of one evaluation's arguments.
type argReads struct {
	done map[string]ref.Val
}

// get returns the value of a hidden reader variable, computing it once.
func (r *argReads) get(name string, args map[string]any) ref.Val {
	if v, ok := r.done[name]; ok {
		return v
	}
	var v ref.Val
	a := types.DefaultTypeAdapter.NativeToValue(args)
	switch name {
	case "_shell_commands_args":
		v = shellCommandsVal(a)
	case "_shell_pipelines_args":
		v = shellPipelinesVal(a)
	case "_sql_statements_args":
		v = sqlStatementsVal(a)
	case "_sql_injected_args":
		v = sqlInjectedVal(a)
	case "_clean_paths_args":
		v = cleanPathsVal(a)
	}
	if r.done == nil {
		r.done = make(map[string]ref.Val, 4)
	}
	r.done[name] = v
	return v
}
