package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	"cel.dev/cel-go/cel"
	celast "cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/ext"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/jcs"
)

// structFields are the fields of the map-typed CEL variables that have a
// fixed shape. Selecting any other field is a load error, so that a typo such
// as agent.idd cannot silently turn a deny rule into one that never fires.
var structFields = map[string][]string{
	"agent":     {"id", "type", "labels", "delegation"},
	"principal": {"user", "team", "org"},
	"tool":      {"server", "name", "annotations"},
	"resource":  {"type", "id", "permission"},
	"estimate":  {"tokens", "cost_usd"},
	"budget":    {"fraction", "budgets"},
	"trust":     {"score", "tier"},
	"breaker":   {"state"},
	"target":    {"id", "trust", "labels"},
}

func newEnv() (*cel.Env, error) {
	return cel.NewEnv(append(append(append(argReaderVariables(), provenanceOptions()...), anomalyOptions()...),
		cel.Variable("agent", cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable("principal", cel.MapType(cel.StringType, cel.StringType)),
		cel.Variable("point", cel.StringType),
		cel.Variable("tool", cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable("target", cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable("args", cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable("args_text", cel.StringType),
		cel.Variable("resource", cel.MapType(cel.StringType, cel.StringType)),
		cel.Variable("destination", cel.StringType),
		cel.Variable("model", cel.StringType),
		cel.Variable("content", cel.StringType),
		cel.Variable("estimate", cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable("trust", cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable("now", cel.TimestampType),
		cel.Variable("budget", cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable("model_tier", cel.StringType),
		cel.Variable("breaker", cel.MapType(cel.StringType, cel.StringType)),
		ext.Strings(),
		ext.Bindings(),
		ext.TwoVarComprehensions(),
		cel.CrossTypeNumericComparisons(true),
		detectorFunctions(),
		readerFunctions(),
		costModels(),
		cel.EnableMacroCallTracking(),
	)...)
}

// Set is a compiled, immutable policy set. It is safe for concurrent use;
// replacing policy means compiling a new Set.
type Set struct {
	docs     []*compiledDoc
	warnings []*Error
	digest   string
	uses     map[string]bool // CEL variables some condition reads
	limits   []*RateLimitRef // every document's rate limits, flattened once
	clock    bool            // some condition reads now, or a rate limit counts
	bundle   string          // digest of the signed bundle the set came from
}

// NeedsClock reports whether evaluating the set needs the current time: a
// condition reads `now`, or a rate limit counts. The engine skips the clock
// read (tens of nanoseconds on a VM) when it does not.
func (s *Set) NeedsClock() bool { return s.clock }

// Uses reports whether any condition of the set reads the CEL variable
// name. The engine computes costly inputs (budget state) only when one does.
func (s *Set) Uses(name string) bool { return s.uses[name] }

// Digest identifies the set's content: SHA-256 over the canonical JSON of
// its documents, independent of file names and formatting. Approval tickets
// bind to it.
func (s *Set) Digest() string { return s.digest }

// Bundle is the digest of the signed bundle the set was loaded from, empty
// when it came from a directory.
func (s *Set) Bundle() string { return s.bundle }

// WithBundle returns a copy of the set that names the bundle (by digest)
// it was loaded from; the set itself is not changed.
func (s *Set) WithBundle(digest string) *Set {
	c := *s
	c.bundle = digest
	return &c
}

// Documents returns copies of the documents of the set, in load order.
func (s *Set) Documents() []*Document {
	out := make([]*Document, len(s.docs))
	for i, d := range s.docs {
		out[i] = d.doc.clone()
	}
	return out
}

// RateLimits returns every rate limit of the set with the document it
// belongs to. They are the set's own: read them, never write them.
func (s *Set) RateLimits() []*RateLimitRef { return s.limits }

// RateLimitRef is a rate limit with its document, prepared for matching.
type RateLimitRef struct {
	*RateLimit
	Doc   *Document
	match compiledMatch
}

// Applies reports whether the rate limit governs the action: its document's
// scope covers it and its match fields all match.
func (r *RateLimitRef) Applies(a *action.Action) bool {
	return r.Doc.Scope.Covers(a) && r.match.matches(a)
}

type compiledDoc struct {
	doc           *Document
	rules         []compiledRule
	index         [action.NumPoints]ruleTable // one per action.Points entry
	defaultReason []string
	limits        []*RateLimitRef
	warnings      []*Error
	trusted       []toolPattern // provenance.trusted_tools
}

type ruleTable struct {
	byName   map[string][]int32
	byServer map[string]map[string][]int32
	other    []int32
}

type compiledMatch struct {
	points       uint16 // bit i set: action.Points[i]; 0 = every point
	tools        []toolPattern
	agents       []string
	agentTypes   []string
	destinations []string
	models       []string
}

type compiledRule struct {
	rule     *Rule
	match    compiledMatch
	strength int
	prg      cel.Program
	native   *native     // the condition, or a necessary part of it, compiled to Go
	exact    bool        // native is the whole condition
	prov     bool        // the condition asks the provenance ledger
	shapes   []shapePath // the paths the condition reads into the request (shape.go)
	ids      []string    // {id}, shared by every decision this rule decides alone
	reasons  []string    // {"rule id: reason"}
}

// Compile type-checks every condition, builds the rule index and returns the
// set. Any problem in any document refuses the whole set. The set keeps its
// own copies of docs.
func Compile(docs []*Document) (*Set, error) {
	docs = cloneDocs(docs)
	env, err := newEnv()
	if err != nil {
		return nil, fmt.Errorf("policy: cel environment: %w", err)
	}
	var errs ErrorList
	names := map[string]string{}
	set := &Set{uses: map[string]bool{}}
	for _, d := range docs {
		if prev, ok := names[d.Name]; ok {
			errs = append(errs, &Error{File: d.File, Line: d.nameLine, Msg: fmt.Sprintf("document name %q is already used by %s", d.Name, prev)})
			continue
		}
		names[d.Name] = d.File
		cd, derrs := compileDoc(env, d, set.uses)
		errs = append(errs, derrs...)
		set.docs = append(set.docs, cd)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	for _, d := range set.docs {
		set.limits = append(set.limits, d.limits...)
		set.warnings = append(set.warnings, d.warnings...)
	}
	set.clock = set.uses["now"] || len(set.limits) > 0
	set.digest, err = digest(docs)
	if err != nil {
		return nil, err
	}
	return set, nil
}

func cloneDocs(docs []*Document) []*Document {
	out := make([]*Document, len(docs))
	for i, d := range docs {
		out[i] = d.clone()
	}
	return out
}

func digest(docs []*Document) (string, error) {
	sorted := slices.Clone(docs)
	slices.SortFunc(sorted, func(a, b *Document) int { return strings.Compare(a.Name, b.Name) })
	b, err := jcs.Marshal(sorted)
	if err != nil {
		return "", fmt.Errorf("policy: digest: %w", err)
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

func compileDoc(env *cel.Env, d *Document, uses map[string]bool) (*compiledDoc, ErrorList) {
	cd := &compiledDoc{
		doc:           d,
		defaultReason: []string{fmt.Sprintf("policy %s: no rule matched; default %s", d.Name, d.Default)},
	}
	var errs ErrorList
	for i := range d.Rules {
		r := &d.Rules[i]
		cr := compiledRule{
			rule:     r,
			match:    compileMatch(&r.Match),
			strength: r.Effect.Strength(),
			ids:      []string{r.ID},
			reasons:  []string{ruleReason(r)},
		}
		if strings.TrimSpace(r.When) != "" {
			prg, nat, exact, prov, shapes, warns, err := compileWhen(env, r.When, uses)
			if err != nil {
				errs = append(errs, &Error{File: d.File, Line: r.whenLine + err.line, Msg: fmt.Sprintf("rule %s: when: %s", r.ID, err.msg)})
			}
			for _, w := range warns {
				cd.warnings = append(cd.warnings, &Error{File: d.File, Line: r.whenLine + w.line, Msg: fmt.Sprintf("rule %s: when: %s", r.ID, w.msg)})
			}
			cr.prg, cr.native, cr.exact = prg, nat, exact
			cr.prov = prov
			cr.shapes = shapes
		}
		cd.rules = append(cd.rules, cr)
	}
	if d.Provenance != nil {
		for _, t := range d.Provenance.TrustedTools {
			cd.trusted = append(cd.trusted, parseToolPattern(t))
		}
	}
	for i := range d.RateLimits {
		cd.limits = append(cd.limits, &RateLimitRef{RateLimit: &d.RateLimits[i], Doc: d, match: compileMatch(&d.RateLimits[i].Match)})
	}
	cd.buildIndex()
	return cd, errs
}

func ruleReason(r *Rule) string {
	why := r.Reason
	if why == "" {
		why = r.Description
	}
	if why == "" {
		why = string(r.Effect)
	}
	return "rule " + r.ID + ": " + why
}

func compileMatch(m *Match) compiledMatch {
	cm := compiledMatch{agents: m.Agents, agentTypes: m.AgentTypes, destinations: m.Destinations, models: m.Models}
	for _, p := range m.Points {
		if i := p.Index(); i >= 0 {
			cm.points |= 1 << i
		}
	}
	for _, t := range m.Tools {
		cm.tools = append(cm.tools, parseToolPattern(t))
	}
	return cm
}

// buildIndex files each rule under the points it can match and, within a
// point, under the exact tool names it names; rules with tool globs or no
// tool list go to "other". Every bucket is ordered strongest effect first, so
// evaluation can stop looking at weaker rules once a stronger one matched.
func (cd *compiledDoc) buildIndex() {
	for pi := range cd.index {
		t := ruleTable{byName: map[string][]int32{}, byServer: map[string]map[string][]int32{}}
		for ri := range cd.rules {
			r := &cd.rules[ri]
			if r.match.points != 0 && r.match.points&(1<<pi) == 0 {
				continue
			}
			idx := int32(ri)
			exact := len(r.match.tools) > 0
			for _, tp := range r.match.tools {
				exact = exact && tp.exact()
			}
			if !exact {
				t.other = append(t.other, idx)
				continue
			}
			for _, tp := range r.match.tools {
				if tp.hasServer {
					if t.byServer[tp.server] == nil {
						t.byServer[tp.server] = map[string][]int32{}
					}
					t.byServer[tp.server][tp.name] = appendOnce(t.byServer[tp.server][tp.name], idx)
				} else {
					t.byName[tp.name] = appendOnce(t.byName[tp.name], idx)
				}
			}
		}
		byStrength := func(a, b int32) int {
			if d := cd.rules[b].strength - cd.rules[a].strength; d != 0 {
				return d
			}
			return int(a - b)
		}
		slices.SortStableFunc(t.other, byStrength)
		for _, l := range t.byName {
			slices.SortStableFunc(l, byStrength)
		}
		for _, m := range t.byServer {
			for _, l := range m {
				slices.SortStableFunc(l, byStrength)
			}
		}
		cd.index[pi] = t
	}
}

func appendOnce(l []int32, v int32) []int32 {
	if slices.Contains(l, v) {
		return l
	}
	return append(l, v)
}

type whenError struct {
	line int
	msg  string
}

func compileWhen(env *cel.Env, expr string, uses map[string]bool) (cel.Program, *native, bool, bool, []shapePath, []whenError, *whenError) {
	ast, iss := env.Compile(expr)
	if iss != nil && iss.Err() != nil {
		// One line per problem: CEL's own source excerpt and caret would
		// break file:line: message output; the column says where.
		line := 0
		var msgs []string
		for i, e := range iss.Errors() {
			if i == 0 {
				line = e.Location.Line() - 1
			}
			msgs = append(msgs, fmt.Sprintf("%s (column %d of the condition)", e.Message, e.Location.Column()+1))
		}
		if len(msgs) == 0 {
			msgs = append(msgs, strings.TrimSpace(iss.Err().Error()))
		}
		return nil, nil, false, false, nil, nil, &whenError{line: max(line, 0), msg: strings.Join(msgs, "; ")}
	}
	if !ast.OutputType().IsExactType(types.BoolType) {
		return nil, nil, false, false, nil, nil, &whenError{msg: fmt.Sprintf("must be a boolean expression, not %s", ast.OutputType())}
	}
	if err := checkFields(ast); err != nil {
		return nil, nil, false, false, nil, nil, err
	}
	celast.PostOrderVisit(ast.NativeRep().Expr(), celast.NewExprVisitor(func(e celast.Expr) {
		if e.Kind() == celast.IdentKind {
			uses[e.AsIdent()] = true
		}
	}))
	if err := checkCost(env, ast); err != nil {
		return nil, nil, false, false, nil, nil, err
	}
	warnings := prefixWarnings(ast)
	if opt, iss := argReadsOpt.Optimize(env, ast); iss == nil || iss.Err() == nil {
		ast = opt
	}
	opts := []cel.ProgramOption{cel.EvalOptions(cel.OptOptimize)}
	// Without a loop over a value of the request a condition's cost is
	// linear in its input, which the server bounds by its body limit; only
	// conditions that loop over the request's own lists and maps (all,
	// exists, map, filter) can run past their estimate, and only they pay
	// for runtime cost tracking (about 40% of an evaluation, more with the
	// readers). Loops over what a reader made of the request (its commands,
	// statements, lines) are linear in it by construction.
	if loopsOverRequest(ast) {
		opts = append(opts, cel.CostLimit(runtimeCostLimit))
	}
	prg, err := env.Program(ast, opts...)
	if err != nil {
		return nil, nil, false, false, nil, nil, &whenError{msg: err.Error()}
	}
	nat, exact := compileNativeAST(ast)
	return prg, nat, exact, readsProvenance(ast), shapePathsOf(ast.NativeRep().Expr()), warnings, nil
}

func loopsOverRequest(ast *cel.Ast) bool {
	loop := false
	derived := map[string]bool{} // loop variables that range over a reader's result
	var visit func(e celast.Expr)
	visit = func(e celast.Expr) {
		switch e.Kind() {
		case celast.ComprehensionKind:
			c := e.AsComprehension()
			visit(c.IterRange())
			fromReader := readerResult(c.IterRange(), derived)
			if !fromReader {
				loop = true
			}
			prev, prev2 := derived[c.IterVar()], derived[c.IterVar2()]
			derived[c.IterVar()] = fromReader
			if c.IterVar2() != "" {
				derived[c.IterVar2()] = fromReader
			}
			visit(c.AccuInit())
			visit(c.LoopCondition())
			visit(c.LoopStep())
			visit(c.Result())
			derived[c.IterVar()] = prev
			if c.IterVar2() != "" {
				derived[c.IterVar2()] = prev2
			}
		case celast.CallKind:
			call := e.AsCall()
			if call.IsMemberFunction() {
				visit(call.Target())
			}
			for _, a := range call.Args() {
				visit(a)
			}
		case celast.SelectKind:
			visit(e.AsSelect().Operand())
		case celast.ListKind:
			for _, el := range e.AsList().Elements() {
				visit(el)
			}
		case celast.MapKind:
			for _, en := range e.AsMap().Entries() {
				visit(en.AsMapEntry().Key())
				visit(en.AsMapEntry().Value())
			}
		}
	}
	visit(ast.NativeRep().Expr())
	return loop
}

// readerResult reports whether e is what a reader made of the request (a
// call of shell_commands, shell_pipelines, sql_statements, sql_injected or
// split), a loop variable over one (a command of shell_commands(args)), or
// a literal list.
func readerResult(e celast.Expr, derived map[string]bool) bool {
	switch e.Kind() {
	case celast.IdentKind:
		if derived[e.AsIdent()] {
			return true
		}
		for _, v := range argReaders {
			if e.AsIdent() == v {
				return true
			}
		}
	case celast.CallKind:
		switch e.AsCall().FunctionName() {
		case "shell_commands", "shell_pipelines", "sql_statements", "sql_injected", "clean_paths", "split":
			return true
		}
	case celast.ListKind:
		return isLiteral(e)
	}
	return false
}

// checkFields refuses selections of unknown fields on the fixed-shape
// variables (agent.idd, tool.nmae).
func checkFields(ast *cel.Ast) *whenError {
	var bad *whenError
	native := ast.NativeRep()
	celast.PostOrderVisit(native.Expr(), celast.NewExprVisitor(func(e celast.Expr) {
		if bad != nil || e.Kind() != celast.SelectKind {
			return
		}
		sel := e.AsSelect()
		op := sel.Operand()
		if op.Kind() != celast.IdentKind {
			return
		}
		fields, ok := structFields[op.AsIdent()]
		if !ok || slices.Contains(fields, sel.FieldName()) {
			return
		}
		line := native.SourceInfo().GetStartLocation(e.ID()).Line() - 1
		bad = &whenError{line: max(line, 0), msg: fmt.Sprintf("unknown field %s.%s (known: %s)", op.AsIdent(), sel.FieldName(), strings.Join(fields, ", "))}
	}))
	return bad
}
