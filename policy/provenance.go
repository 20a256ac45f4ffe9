package policy

import (
	"errors"
	"reflect"
	"slices"
	"strings"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common"
	celast "cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"
	"cel.dev/cel-go/ext"
	"cel.dev/cel-go/parser"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/provenance"
)

// Provenance conditions (DESIGN §8) ask the session's ledger where a value
// came from:
//
//	untrusted(v)     v (a string or number, or any inside a list or map) occurs
//	                 in untrusted content of the session and in no trusted content
//	sources(v)       the sources v occurs in: "user", "tool:<server/name>", "agent:<id>"
//	untrusted_parts(v)  the words of v that look like values (a digit, @ or /, or
//	                 12 characters or more) and are untrusted: an account number
//	                 or a key inside a message body
//	instructed(v, verbs)  v occurs as whole words in untrusted content, in a
//	                 sentence with one of the verbs close by, and in no trusted
//	                 content: a result spelled out the call ("delete the file 13")
//	name_words(s)    the lower-case words of a name: create_calendar_event and
//	                 createCalendarEvent are ["create", "calendar", "event"]
//	session.tainted  untrusted content has been seen in the session
//	session.flagged  a policy flagged untrusted content of the session
//	session.tools    the tools called in the session, in order
//
// untrusted and sources are macros over hidden functions that take the
// evaluation's ledger view as their first argument: CEL functions see only
// their arguments, and the view belongs to one evaluation.

// ProvenanceSpec is a document's `provenance` block.
type ProvenanceSpec struct {
	// TrustedTools are globs ("name" or "server/name") over tools whose
	// results are trusted content, as the user's own input is.
	TrustedTools []string `yaml:"trusted_tools,omitempty" json:"trusted_tools,omitempty"`
}

func (p *ProvenanceSpec) clone() *ProvenanceSpec {
	if p == nil {
		return nil
	}
	return &ProvenanceSpec{TrustedTools: slices.Clone(p.TrustedTools)}
}

const provenanceVar = "_provenance"

// maxInstructed bounds the values one instructed(v, verbs) looks up.
const maxInstructed = 64

func provenanceOptions() []cel.EnvOption {
	expand := func(fn string) parser.MacroExpander {
		return func(eh parser.ExprHelper, _ celast.Expr, args []celast.Expr) (celast.Expr, *common.Error) {
			return eh.NewCall(fn, eh.NewIdent(provenanceVar), args[0]), nil
		}
	}
	return []cel.EnvOption{
		ext.NativeTypes(reflect.TypeFor[Session](), ext.ParseStructTags(true)),
		cel.Variable("session", cel.ObjectType("policy.Session")),
		cel.Variable(provenanceVar, cel.DynType),
		cel.Macros(
			cel.GlobalMacro("untrusted", 1, expand("_untrusted")),
			cel.GlobalMacro("sources", 1, expand("_sources")),
			cel.GlobalMacro("untrusted_parts", 1, expand("_untrusted_parts")),
			cel.GlobalMacro("instructed", 2, func(eh parser.ExprHelper, _ celast.Expr, args []celast.Expr) (celast.Expr, *common.Error) {
				return eh.NewCall("_instructed", eh.NewIdent(provenanceVar), args[0], args[1]), nil
			}),
		),
		cel.Function("name_words", cel.Overload("name_words_string", []*cel.Type{cel.StringType}, cel.ListType(cel.StringType),
			cel.UnaryBinding(func(v ref.Val) ref.Val {
				s, _ := v.Value().(string)
				out := provenance.NameWords(s)
				if out == nil {
					out = []string{}
				}
				return types.DefaultTypeAdapter.NativeToValue(out)
			}))),
		cel.Function("_instructed", cel.Overload("_instructed_dyn_dyn_list", []*cel.Type{cel.DynType, cel.DynType, cel.ListType(cel.StringType)}, cel.BoolType,
			cel.FunctionBinding(func(vals ...ref.Val) ref.Val {
				view := viewOf(vals[0])
				var verbs []string
				provenance.Values(celNative(vals[2]), func(s string) bool {
					verbs = append(verbs, s)
					return true
				})
				// Each value costs a scan of the session's words, and a
				// short one matches almost everywhere: past maxInstructed
				// values the argument counts as spelled out (fail closed)
				// rather than letting a call's size set the time it takes.
				found, n := false, 0
				provenance.Values(celNative(vals[1]), func(s string) bool {
					if n++; n > maxInstructed {
						found = true
						return false
					}
					found = view.Instructed(s, verbs)
					return !found
				})
				return types.Bool(found)
			}))),
		cel.Function("_untrusted_parts", cel.Overload("_untrusted_parts_dyn_dyn", []*cel.Type{cel.DynType, cel.DynType}, cel.ListType(cel.StringType),
			cel.BinaryBinding(func(p, v ref.Val) ref.Val {
				view := viewOf(p)
				out := []string{}
				provenance.Values(celNative(v), func(s string) bool {
					for _, part := range view.UntrustedParts(s) {
						if !slices.Contains(out, part) {
							out = append(out, part)
						}
					}
					return true
				})
				return types.DefaultTypeAdapter.NativeToValue(out)
			}))),
		cel.Function("_untrusted", cel.Overload("_untrusted_dyn_dyn", []*cel.Type{cel.DynType, cel.DynType}, cel.BoolType,
			cel.BinaryBinding(func(p, v ref.Val) ref.Val {
				view := viewOf(p)
				found := false
				provenance.Values(celNative(v), func(s string) bool {
					found = view.Untrusted(s)
					return !found
				})
				return types.Bool(found)
			}))),
		cel.Function("_sources", cel.Overload("_sources_dyn_dyn", []*cel.Type{cel.DynType, cel.DynType}, cel.ListType(cel.StringType),
			cel.BinaryBinding(func(p, v ref.Val) ref.Val {
				view := viewOf(p)
				var out []string
				provenance.Values(celNative(v), func(s string) bool {
					for _, src := range view.Sources(s) {
						if !slices.Contains(out, src) {
							out = append(out, src)
						}
					}
					return true
				})
				if out == nil {
					out = []string{}
				}
				return types.DefaultTypeAdapter.NativeToValue(out)
			}))),
	}
}

// celNative turns a CEL value into the Go values provenance.Values walks.
func celNative(v ref.Val) any {
	switch x := v.(type) {
	case traits.Lister:
		var out []any
		it := x.Iterator() // a list's iterator yields its elements
		for it.HasNext() == types.True {
			out = append(out, celNative(it.Next()))
		}
		return out
	case traits.Mapper:
		var out []any
		it := x.Iterator() // a map's iterator yields its keys
		for it.HasNext() == types.True {
			out = append(out, celNative(x.Get(it.Next())))
		}
		return out
	case types.Bool, types.Null:
		return nil
	}
	return v.Value()
}

// provVal carries an evaluation's ledger view into the hidden functions.
type provVal struct{ v *provenance.View }

var provType = types.NewOpaqueType("agentgov.provenance")

func (p provVal) ConvertToNative(reflect.Type) (any, error) {
	return nil, errors.New("provenance is not a value")
}
func (p provVal) ConvertToType(ref.Type) ref.Val { return types.NewErr("provenance is not a value") }
func (p provVal) Equal(ref.Val) ref.Val          { return types.False }
func (p provVal) Type() ref.Type                 { return provType }
func (p provVal) Value() any                     { return p.v }

var emptyView = provenance.New(provenance.Config{MaxSessions: 1}).View("")

func viewOf(p ref.Val) *provenance.View {
	if pv, ok := p.(provVal); ok && pv.v != nil {
		return pv.v
	}
	return emptyView
}

// Session is the `session` variable: the session's id and what its
// provenance ledger says of it. A struct rather than a map so that
// session.tainted type-checks as a bool and session.taint is a load error.
type Session struct {
	ID      string   `cel:"id"`
	Tainted bool     `cel:"tainted"`
	Flagged bool     `cel:"flagged"`
	Tools   []string `cel:"tools"`
}

func sessionValue(id string, v *provenance.View) *Session {
	if v == nil {
		v = emptyView
	}
	tools := v.Tools()
	if tools == nil {
		tools = []string{}
	}
	return &Session{ID: id, Tainted: v.Tainted(), Flagged: v.Flagged(), Tools: tools}
}

// readsProvenance reports whether a condition asks the ledger anything.
func readsProvenance(ast *cel.Ast) bool {
	found := false
	celast.PostOrderVisit(ast.NativeRep().Expr(), celast.NewExprVisitor(func(e celast.Expr) {
		if e.Kind() == celast.IdentKind && (e.AsIdent() == provenanceVar || e.AsIdent() == "session") {
			found = true
		}
	}))
	return found
}

// UsesProvenance reports whether some condition of the set asks the ledger
// anything (untrusted, sources, session.*): the engine looks the session's
// ledger up only then.
func (s *Set) UsesProvenance() bool { return s.uses[provenanceVar] || s.uses["session"] }

// TrustedResult reports whether the result of the action's tool is trusted
// content: a document whose scope covers the action lists the tool in
// provenance.trusted_tools.
func (s *Set) TrustedResult(a *action.Action) bool {
	if a.Tool.Name == "" {
		return false
	}
	for _, cd := range s.docs {
		if cd.doc.Provenance == nil || !cd.doc.Scope.Covers(a) {
			continue
		}
		for _, p := range cd.trusted {
			if p.matches(a.Tool.Server, a.Tool.Name) {
				return true
			}
		}
	}
	return false
}

// provenance checks a document's provenance block.
func (v *validator) provenance(d *Document) {
	if d.Provenance == nil {
		return
	}
	at := keys("provenance", "trusted_tools")
	v.patterns(at, d.Provenance.TrustedTools, true)
	for j, t := range d.Provenance.TrustedTools {
		if strings.Count(t, "/") > 1 {
			v.errorf(append(at, j), "tool pattern %q: use name or server/name", t)
		}
	}
}
