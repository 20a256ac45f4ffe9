package policy

import (
	"fmt"
	"strings"

	"cel.dev/cel-go/cel"
	celast "cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/parser"
)

// Warnings are problems that do not stop a set from loading: the rule does
// what it says, but likely not what its author meant. `agentgov policy lint`
// prints them.

// Warnings returns the set's warnings, each located by file and line.
func (s *Set) Warnings() []*Error { return s.warnings }

// pathWords are parts of argument names that hold a path.
var pathWords = []string{"path", "file", "dir", "folder", "dest", "src", "source", "target", "cwd", "location", "root"}

// prefixWarnings finds path-like arguments compared by prefix without
// clean_path: args.path.startsWith("/srv/") is walked around by
// /srv/../etc/shadow.
func prefixWarnings(ast *cel.Ast) []whenError {
	native := ast.NativeRep()
	var out []whenError
	celast.PostOrderVisit(native.Expr(), celast.NewExprVisitor(func(e celast.Expr) {
		if e.Kind() != celast.CallKind {
			return
		}
		call := e.AsCall()
		if !call.IsMemberFunction() || len(call.Args()) != 1 || call.Args()[0].Kind() != celast.LiteralKind {
			return
		}
		lit, ok := call.Args()[0].AsLiteral().(types.String)
		if !ok {
			return
		}
		prefix := string(lit)
		switch call.FunctionName() {
		case "startsWith":
		case "matches":
			if !strings.HasPrefix(prefix, "^") {
				return
			}
			prefix = strings.TrimPrefix(prefix, "^")
		default:
			return
		}
		field, ok := argPath(call.Target())
		if !ok || !(looksLikePath(prefix) || namesPath(field)) {
			return
		}
		text, err := parser.Unparse(call.Target(), native.SourceInfo())
		if err != nil {
			return
		}
		line := native.SourceInfo().GetStartLocation(e.ID()).Line() - 1
		out = append(out, whenError{line: max(line, 0), msg: fmt.Sprintf(
			"%s is compared by prefix without clean_path, so /x/../ and // in it walk around the rule; compare clean_path(%s) instead", text, text)})
	}))
	return out
}

// argPath returns the name of the last field of args.a.b, if e is one.
func argPath(e celast.Expr) (string, bool) {
	last := ""
	for e.Kind() == celast.SelectKind {
		if last == "" {
			last = e.AsSelect().FieldName()
		}
		e = e.AsSelect().Operand()
	}
	return last, last != "" && e.Kind() == celast.IdentKind && e.AsIdent() == "args"
}

func looksLikePath(prefix string) bool {
	for _, p := range []string{"/", "~/", "./", "../"} {
		if strings.HasPrefix(prefix, p) {
			return true
		}
	}
	return false
}

func namesPath(field string) bool {
	f := strings.ToLower(field)
	for _, w := range pathWords {
		if strings.Contains(f, w) {
			return true
		}
	}
	return false
}
