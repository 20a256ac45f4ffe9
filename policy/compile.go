package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"cel.dev/cel-go/cel"
	celast "cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/cost"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/ext"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/jcs"
)

// MaxEstimatedCost bounds the worst-case cost of one condition, as CEL
// estimates it at load with the input size hints below. It keeps a policy
// author from shipping a condition that takes milliseconds on a large input.
const MaxEstimatedCost = 5_000_000

// runtimeCostLimit stops an evaluation that exceeds its estimate anyway
// (inputs larger than the hints); the rule then fails closed.
const runtimeCostLimit = 50_000_000

// Size hints for the cost estimate: strings up to 64 KiB, collections up to
// 1024 entries. Larger inputs are still evaluated, under runtimeCostLimit.
const (
	hintStringSize = 64 << 10
	hintListSize   = 1024
)

// structFields are the fields of the map-typed CEL variables that have a
// fixed shape. Selecting any other field is a load error, so that a typo such
// as agent.idd cannot silently turn a deny rule into one that never fires.
var structFields = map[string][]string{
	"agent":     {"id", "type", "labels"},
	"principal": {"user", "team", "org"},
	"tool":      {"server", "name", "annotations"},
	"resource":  {"type", "id", "permission"},
	"estimate":  {"tokens", "cost_usd"},
	"budget":    {"fraction", "budgets"},
}

func newEnv() (*cel.Env, error) {
	return cel.NewEnv(
		cel.Variable("agent", cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable("principal", cel.MapType(cel.StringType, cel.StringType)),
		cel.Variable("session", cel.StringType),
		cel.Variable("point", cel.StringType),
		cel.Variable("tool", cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable("args", cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable("args_text", cel.StringType),
		cel.Variable("resource", cel.MapType(cel.StringType, cel.StringType)),
		cel.Variable("destination", cel.StringType),
		cel.Variable("model", cel.StringType),
		cel.Variable("content", cel.StringType),
		cel.Variable("estimate", cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable("trust", cel.DoubleType),
		cel.Variable("now", cel.TimestampType),
		cel.Variable("budget", cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable("model_tier", cel.StringType),
		ext.Strings(),
		cel.CrossTypeNumericComparisons(true),
		detectorFunctions(),
	)
}

// Set is a compiled, immutable policy set. It is safe for concurrent use;
// replacing policy means compiling a new Set.
type Set struct {
	docs   []*compiledDoc
	digest string
	uses   map[string]bool // CEL variables some condition reads
	limits []*RateLimitRef // every document's rate limits, flattened once
	clock  bool            // some condition reads now, or a rate limit counts
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

// Documents returns the documents of the set, in load order.
func (s *Set) Documents() []*Document {
	out := make([]*Document, len(s.docs))
	for i, d := range s.docs {
		out[i] = d.doc
	}
	return out
}

// RateLimits returns every rate limit of the set with the document it
// belongs to.
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
	index         [8]ruleTable // one per action.Points entry
	defaultReason []string
	limits        []*RateLimitRef
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
	native   *native  // the condition, or a necessary part of it, compiled to Go
	exact    bool     // native is the whole condition
	ids      []string // {id}, shared by every decision this rule decides alone
	reasons  []string // {"rule id: reason"}
}

// Compile type-checks every condition, builds the rule index and returns the
// set. Any problem in any document refuses the whole set.
func Compile(docs []*Document) (*Set, error) {
	env, err := newEnv()
	if err != nil {
		return nil, fmt.Errorf("policy: cel environment: %w", err)
	}
	var errs ErrorList
	names := map[string]string{}
	set := &Set{uses: map[string]bool{}}
	for _, d := range docs {
		if prev, ok := names[d.Name]; ok {
			errs = append(errs, &Error{File: d.File, Msg: fmt.Sprintf("document name %q is already used by %s", d.Name, prev)})
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
	}
	set.clock = set.uses["now"] || len(set.limits) > 0
	set.digest, err = digest(docs)
	if err != nil {
		return nil, err
	}
	return set, nil
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
			prg, nat, exact, err := compileWhen(env, r.When, uses)
			if err != nil {
				errs = append(errs, &Error{File: d.File, Line: r.whenLine + err.line, Msg: fmt.Sprintf("rule %s: when: %s", r.ID, err.msg)})
			}
			cr.prg, cr.native, cr.exact = prg, nat, exact
		}
		cd.rules = append(cd.rules, cr)
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

func compileWhen(env *cel.Env, expr string, uses map[string]bool) (cel.Program, *native, bool, *whenError) {
	ast, iss := env.Compile(expr)
	if iss != nil && iss.Err() != nil {
		line := 0
		if errs := iss.Errors(); len(errs) > 0 {
			line = errs[0].Location.Line() - 1
		}
		msg := iss.Err().Error()
		msg = celPosition.ReplaceAllString(strings.TrimPrefix(msg, "ERROR: <input>:"), "")
		return nil, nil, false, &whenError{line: max(line, 0), msg: strings.TrimSpace(msg)}
	}
	if !ast.OutputType().IsExactType(types.BoolType) {
		return nil, nil, false, &whenError{msg: fmt.Sprintf("must be a boolean expression, not %s", ast.OutputType())}
	}
	if err := checkFields(ast); err != nil {
		return nil, nil, false, err
	}
	celast.PostOrderVisit(ast.NativeRep().Expr(), celast.NewExprVisitor(func(e celast.Expr) {
		if e.Kind() == celast.IdentKind {
			uses[e.AsIdent()] = true
		}
	}))
	est, err := env.EstimateCost(ast, sizeHints{})
	if err != nil {
		return nil, nil, false, &whenError{msg: "cost: " + err.Error()}
	}
	if est.Max > MaxEstimatedCost {
		return nil, nil, false, &whenError{msg: fmt.Sprintf("too expensive: estimated worst-case cost %d exceeds %d; narrow the expression", est.Max, MaxEstimatedCost)}
	}
	opts := []cel.ProgramOption{cel.EvalOptions(cel.OptOptimize)}
	// Without a loop a condition's cost is linear in its input, which the
	// server bounds by its body limit; only conditions with a comprehension
	// (all, exists, map, filter) can blow up past their estimate, and only
	// they pay for runtime cost tracking (about 40% of an evaluation).
	if hasLoop(ast) {
		opts = append(opts, cel.CostLimit(runtimeCostLimit))
	}
	prg, err := env.Program(ast, opts...)
	if err != nil {
		return nil, nil, false, &whenError{msg: err.Error()}
	}
	nat, exact := compileNativeAST(ast)
	return prg, nat, exact, nil
}

func hasLoop(ast *cel.Ast) bool {
	loop := false
	celast.PostOrderVisit(ast.NativeRep().Expr(), celast.NewExprVisitor(func(e celast.Expr) {
		if e.Kind() == celast.ComprehensionKind {
			loop = true
		}
	}))
	return loop
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

// celPosition is CEL's own "line:col: " prefix; the file line replaces it.
var celPosition = regexp.MustCompile(`^\s*\d+:\d+: `)

// sizeHints gives the cost estimator an upper bound on input sizes, which it
// otherwise takes as unbounded.
type sizeHints struct{}

func (sizeHints) EstimateSize(n cost.AstNode) *cost.SizeEstimate {
	switch n.Type().Kind() {
	case types.StringKind, types.BytesKind:
		return &cost.SizeEstimate{Min: 0, Max: hintStringSize}
	case types.ListKind, types.MapKind:
		return &cost.SizeEstimate{Min: 0, Max: hintListSize}
	}
	return nil
}

func (sizeHints) EstimateCallCost(function, overloadID string, target *cost.AstNode, args []cost.AstNode) *cost.CallEstimate {
	return nil
}
