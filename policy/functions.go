package policy

import (
	"errors"
	"fmt"
	"path"
	"sort"
	"strconv"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/cost"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/shellcmd"
	"github.com/agentgov/agentgov/sqlstmt"
)

// readerFunctions lets conditions read paths, shell command lines and SQL
// the way the programs receiving them do (docs/policy.md):
//
//	clean_path(s)        the lexically cleaned path: //etc/./x/../shadow is /etc/shadow
//	shell_commands(x)    every command x holds, each as its words
//	shell_pipelines(x)   the same, grouped by pipeline (curl ... | sh)
//	sql_statements(x)    every SQL statement x holds, normalised
//	sql_injected(x)      how x's strings read pasted into SQL: as is, after ' and after "
//	clean_paths(x)       every string of x and every word of its commands, each cleaned
//
// x is a string, a list or a map: a list or map is read for every command
// line or SQL text it holds (shell_commands(args) reads every argument).
func readerFunctions() cel.EnvOption {
	words := cel.ListType(cel.ListType(cel.StringType))
	return cel.Lib(detectorLib{[]cel.EnvOption{
		cel.Function("clean_path", cel.Overload("clean_path_string", []*cel.Type{cel.StringType}, cel.StringType,
			cel.UnaryBinding(func(v ref.Val) ref.Val {
				s, ok := v.(types.String)
				if !ok {
					return types.NewErr("clean_path: want a string")
				}
				return types.String(path.Clean(string(s)))
			}))),
		cel.Function("shell_commands", cel.Overload("shell_commands_dyn", []*cel.Type{cel.DynType}, words,
			cel.UnaryBinding(shellCommandsVal))),
		cel.Function("shell_pipelines", cel.Overload("shell_pipelines_dyn", []*cel.Type{cel.DynType}, cel.ListType(words),
			cel.UnaryBinding(shellPipelinesVal))),
		cel.Function("clean_paths", cel.Overload("clean_paths_dyn", []*cel.Type{cel.DynType}, cel.ListType(cel.StringType),
			cel.UnaryBinding(cleanPathsVal))),
		cel.Function("sql_statements", cel.Overload("sql_statements_dyn", []*cel.Type{cel.DynType}, cel.ListType(cel.StringType),
			cel.UnaryBinding(sqlStatementsVal))),
		cel.Function("sql_injected", cel.Overload("sql_injected_dyn", []*cel.Type{cel.DynType}, cel.ListType(cel.StringType),
			cel.UnaryBinding(sqlInjectedVal))),
		cel.CostModel(
			cost.Overload("clean_path_string",
				cost.EvalCost(cost.Scale(cost.Arg(0), cost.StringTraversalCostFactor)),
				cost.ResultSize(cost.AtMost(cost.Arg(0)))),
			// Commands, their words and statements share the text they
			// come from: as many as it has bytes, each as short as a byte.
			cost.Overload("shell_commands_dyn",
				cost.EvalCost(cost.Arg(0)),
				cost.ResultSize(cost.List(cost.AtMost(cost.Arg(0)), cost.List(cost.Const(1), cost.Const(1))))),
			cost.Overload("shell_pipelines_dyn",
				cost.EvalCost(cost.Arg(0)),
				cost.ResultSize(cost.List(cost.AtMost(cost.Arg(0)), cost.List(cost.Const(1), cost.List(cost.Const(1), cost.Const(1)))))),
			cost.Overload("clean_paths_dyn",
				cost.EvalCost(cost.Arg(0)),
				cost.ResultSize(cost.List(cost.AtMost(cost.Arg(0)), cost.Const(1)))),
			cost.Overload("sql_statements_dyn",
				cost.EvalCost(cost.Arg(0)),
				cost.ResultSize(cost.List(cost.AtMost(cost.Arg(0)), cost.Const(1)))),
			cost.Overload("sql_injected_dyn",
				cost.EvalCost(cost.Scale(cost.Arg(0), 3)),
				cost.ResultSize(cost.List(cost.AtMost(cost.Arg(0)), cost.Const(1)))),
		),
	}})
}

func shellCommandsVal(v ref.Val) ref.Val {
	ps, err := readCommands(v)
	if err != nil {
		return types.NewErr("shell_commands: %v", err)
	}
	return commandsVal(shellcmd.Commands(ps))
}

func shellPipelinesVal(v ref.Val) ref.Val {
	ps, err := readCommands(v)
	if err != nil {
		return types.NewErr("shell_pipelines: %v", err)
	}
	out := make([]ref.Val, len(ps))
	for i, p := range ps {
		out[i] = commandsVal(p)
	}
	return types.NewRefValList(types.DefaultTypeAdapter, out)
}

// commandsVal builds the CEL list of commands once, so that the many
// conditions reading it do not convert each word again on every access.
func commandsVal(cmds [][]string) ref.Val {
	out := make([]ref.Val, len(cmds))
	for i, c := range cmds {
		out[i] = stringsVal(c)
	}
	return types.NewRefValList(types.DefaultTypeAdapter, out)
}

func stringsVal(ss []string) ref.Val {
	words := make([]ref.Val, len(ss))
	for j, w := range ss {
		words[j] = types.String(w)
	}
	return types.NewRefValList(types.DefaultTypeAdapter, words)
}

// cleanPathsVal lists what x could name as a path: each of its strings and
// each word of the commands it holds (quotes removed), cleaned by
// path.Clean, each once.
func cleanPathsVal(v ref.Val) ref.Val {
	var out []string
	seen := map[string]bool{}
	add := func(s string) {
		if c := path.Clean(s); !seen[c] {
			seen[c] = true
			out = append(out, c)
		}
	}
	if err := eachString(v, add); err != nil {
		return types.NewErr("clean_paths: %v", err)
	}
	ps, err := readCommands(v)
	if err != nil {
		return types.NewErr("clean_paths: %v", err)
	}
	for _, p := range ps {
		for _, c := range p {
			for _, w := range c {
				add(w)
			}
		}
	}
	return stringsVal(out)
}

func sqlStatementsVal(v ref.Val) ref.Val { return sqlVal("sql_statements", v, sqlstmt.Statements) }
func sqlInjectedVal(v ref.Val) ref.Val   { return sqlVal("sql_injected", v, sqlstmt.Injected) }

// sqlVal reads every string v holds with read, each result once.
func sqlVal(name string, v ref.Val, read func(string) []string) ref.Val {
	var out []string
	seen := map[string]bool{}
	err := eachString(v, func(s string) {
		for _, st := range read(s) {
			if !seen[st] {
				seen[st] = true
				out = append(out, st)
			}
		}
	})
	if err != nil {
		return types.NewErr("%s: %v", name, err)
	}
	return stringsVal(out)
}

var errNotCommand = errors.New("want a string (a command line), a list of strings (argv) or a map (arguments)")

// maxProgramPairs bounds how many (program, argument list) pairs one object
// may form; more is refused rather than read in quadratic time.
const maxProgramPairs = 4096

// readCommands reads the pipelines v holds: a string is a command line; a
// list is an argv (its first element the program) and each of its strings
// a command line; a map is read value by value, and a one-word string beside
// a list of strings in the same map ({"command": "rm", "args": ["-rf",
// "/"]}) is that program run with those arguments.
func readCommands(v ref.Val) ([]shellcmd.Pipeline, error) {
	var out []shellcmd.Pipeline
	var walk func(x any, depth int) error
	walk = func(x any, depth int) error {
		if depth > action.MaxNesting+1 {
			return fmt.Errorf("value nested more than %d levels deep", action.MaxNesting)
		}
		switch x := x.(type) {
		case string:
			ps, err := shellcmd.Parse(x)
			out = append(out, ps...)
			return err
		case []any:
			if argv, ok := scalars(x); ok && len(argv) > 0 {
				ps, err := shellcmd.ParseArgv(argv)
				if err != nil {
					return err
				}
				out = append(out, ps)
			}
			for _, e := range x {
				if err := walk(e, depth+1); err != nil {
					return err
				}
			}
		case map[string]any:
			keys := sortedKeys(x)
			var programs []string
			var lists [][]string
			for _, k := range keys {
				switch e := x[k].(type) {
				case string:
					if ps, err := shellcmd.Parse(e); err == nil && len(ps) == 1 && len(ps[0]) == 1 && len(ps[0][0]) == 1 {
						programs = append(programs, e)
					}
				case []any:
					if argv, ok := scalars(e); ok && len(argv) > 0 {
						lists = append(lists, argv)
					}
				}
			}
			if len(programs)*len(lists) > maxProgramPairs {
				return fmt.Errorf("an object pairs %d program names with %d argument lists (at most %d pairs)", len(programs), len(lists), maxProgramPairs)
			}
			for _, prog := range programs {
				for _, l := range lists {
					ps, err := shellcmd.ParseArgv(append([]string{prog}, l...))
					if err != nil {
						return err
					}
					out = append(out, ps)
				}
			}
			for _, k := range keys {
				if err := walk(x[k], depth+1); err != nil {
					return err
				}
			}
		}
		return nil
	}
	x, err := nativeValue(v, 0)
	if err != nil {
		return nil, err
	}
	switch x.(type) {
	case string, []any, map[string]any:
	default:
		return nil, errNotCommand
	}
	return out, walk(x, 0)
}

// scalars returns the list's elements as words when all are scalars.
func scalars(l []any) ([]string, bool) {
	out := make([]string, 0, len(l))
	for _, e := range l {
		switch e := e.(type) {
		case string:
			out = append(out, e)
		case int64:
			out = append(out, strconv.FormatInt(e, 10))
		case float64:
			out = append(out, strconv.FormatFloat(e, 'g', -1, 64))
		case bool:
			out = append(out, strconv.FormatBool(e))
		default:
			return nil, false
		}
	}
	return out, true
}

// eachString calls fn for every string v holds, at any depth.
func eachString(v ref.Val, fn func(string)) error {
	x, err := nativeValue(v, 0)
	if err != nil {
		return err
	}
	var walk func(x any, depth int) error
	walk = func(x any, depth int) error {
		if depth > action.MaxNesting+1 {
			return fmt.Errorf("value nested more than %d levels deep", action.MaxNesting)
		}
		switch x := x.(type) {
		case string:
			fn(x)
		case []any:
			for _, e := range x {
				if err := walk(e, depth+1); err != nil {
					return err
				}
			}
		case map[string]any:
			for _, k := range sortedKeys(x) {
				if err := walk(x[k], depth+1); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return walk(x, 0)
}

// nativeValue turns a CEL value into Go strings, numbers, []any and
// map[string]any. Arguments arrive in that form already; lists and maps
// built in a condition arrive as CEL values.
func nativeValue(v any, depth int) (any, error) {
	if depth > action.MaxNesting+1 {
		return nil, fmt.Errorf("value nested more than %d levels deep", action.MaxNesting)
	}
	switch x := v.(type) {
	case string, int64, float64, bool, nil:
		return x, nil
	case []any:
		return x, nil
	case map[string]any:
		return x, nil
	case types.String:
		return string(x), nil
	case types.Int:
		return int64(x), nil
	case types.Double:
		return float64(x), nil
	case types.Bool:
		return bool(x), nil
	case traits.Mapper:
		if m, ok := x.Value().(map[string]any); ok {
			return m, nil
		}
		out := map[string]any{}
		for it := x.Iterator(); it.HasNext() == types.True; {
			k := it.Next()
			e, err := nativeValue(x.Get(k), depth+1)
			if err != nil {
				return nil, err
			}
			out[fmt.Sprint(k.Value())] = e
		}
		return out, nil
	case traits.Lister:
		if l, ok := x.Value().([]any); ok {
			return l, nil
		}
		var out []any
		for it := x.Iterator(); it.HasNext() == types.True; {
			e, err := nativeValue(it.Next(), depth+1)
			if err != nil {
				return nil, err
			}
			out = append(out, e)
		}
		return out, nil
	case ref.Val:
		return nativeValue(x.Value(), depth+1)
	}
	return v, nil
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
