package policy

import (
	"errors"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/interpreter"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/provenance"
)

// Env is what an evaluation knows besides the action: the clock and facts
// kept elsewhere (trust score, budget state). The engine fills it; keeping it
// an argument makes every evaluation reproducible.
type Env struct {
	Now time.Time
	// Trust is the agent's trust score and tier; nil reads as score 0,
	// tier untrusted.
	Trust *Trust
	// Budget is what policies see as `budget`: {"fraction": the fullest
	// applicable budget, "budgets": {id: {"fraction", "spent_usd",
	// "tokens", "calls", "limit_usd", ...}}}.
	Budget map[string]any
	// ModelTier is the catalogue tier of the action's model ("" if unknown).
	ModelTier string
	// Provenance is the session's provenance ledger as the decision sees
	// it; nil means nothing is known (no value is untrusted, the session
	// is not tainted).
	Provenance *provenance.View
	// Breaker is the worst state of the circuits that guard the action's
	// tool, server or model ("closed", "half_open", "open"); "" reads as
	// closed.
	Breaker string
	// Anomaly is what the anomaly detector found for the action's agent.
	Anomaly Anomaly
}

// Result is the outcome of evaluating an action against a Set.
type Result struct {
	// Effect is allow, require_approval or deny; an audit effect is reported
	// as allow with Flagged set.
	Effect   action.Effect
	Flagged  bool
	Rules    []string // ids of the rules that produced Effect; empty when defaults decided
	Reasons  []string
	Severity action.Severity
	// Approval is the approval spec of the first rule that required approval,
	// when Effect is require_approval.
	Approval    *ApprovalSpec
	Obligations []action.Obligation
	// Provenance says that a deciding rule's condition asked the
	// provenance ledger, so that the decision should say where its values
	// came from.
	Provenance bool
	// Responses are the automatic responses (notify, isolate) the deciding
	// documents ask for at this severity, when Effect is deny.
	Responses []string
}

var (
	reasonNoDocument = []string{"no policy document applies to this action"}
	reasonBadPoint   = []string{"unknown intervention point"}
)

// DeniesUnconditionally reports whether the action is denied whatever its
// arguments and content, that is for every value its rules' conditions could
// take. The MCP gateway hides such tools from a client's tool list.
func (s *Set) DeniesUnconditionally(a *action.Action) bool {
	pi := a.PointOrDefault().Index()
	if pi < 0 {
		return true
	}
	best := -1
	for _, cd := range s.docs {
		if cd.doc.Scope.Covers(a) {
			best = max(best, cd.floor(a, pi))
		}
	}
	return best < 0 || best == action.Deny.Strength()
}

// floor is the weakest effect the document can give the action over every
// assignment of its conditions: the strongest unconditional rule that
// matches, if one does; otherwise the weaker of the default and the weakest
// conditional rule that could match.
func (cd *compiledDoc) floor(a *action.Action, pi int) int {
	uncond, cond := -1, cd.doc.Default.Strength()
	t := &cd.index[pi]
	byName, byServer := t.exact(a)
	visit := func(l []int32) {
		for _, ri := range l {
			r := &cd.rules[ri]
			if !r.match.matches(a) {
				continue
			}
			if r.prg == nil {
				uncond = max(uncond, r.strength)
			} else {
				cond = min(cond, r.strength)
			}
		}
	}
	visit(byName)
	visit(byServer)
	visit(t.other)
	if uncond >= 0 {
		return uncond
	}
	return cond
}

// exact returns the rules filed under the action's exact tool name, and
// under its exact server/name.
func (t *ruleTable) exact(a *action.Action) (byName, byServer []int32) {
	byName = t.byName[a.Tool.Name]
	if a.Tool.Server != "" {
		if m, ok := t.byServer[a.Tool.Server]; ok {
			byServer = m[a.Tool.Name]
		}
	}
	return byName, byServer
}

// docResult is one document's verdict.
type docResult struct {
	strength int
	first    int32 // the first deciding rule, or -1 for the default
	more     []int32
	failed   []string // reasons of conditions that failed closed
}

// Evaluate decides an action against the set (DESIGN §3): within a document
// the strongest matching rule wins and no match gives the document's
// default; across documents in scope the strongest effect wins; no document
// in scope denies.
func (s *Set) Evaluate(a *action.Action, env Env) Result {
	var res Result
	s.EvaluateInto(a, &env, &res)
	return res
}

// EvaluateInto is Evaluate writing into res, for callers on the hot path
// that keep Env and Result on their own stack; env is only read.
func (s *Set) EvaluateInto(a *action.Action, env *Env, res *Result) {
	*res = Result{}
	pi := a.PointOrDefault().Index()
	if pi < 0 {
		res.Effect, res.Reasons = action.Deny, slices.Clone(reasonBadPoint)
		return
	}
	// The CEL activation is pooled and filled only when a condition runs, so
	// that a decision by match fields alone allocates nothing.
	var act *activation
	lazy := lazyActivation{a: a, env: env, act: &act}
	var txt texts // args_text, computed at most once per evaluation
	best := -1
	var deciders []deciding
	var one deciding // most decisions have one deciding document; keep it off the heap
	n := 0
	for _, cd := range s.docs {
		if !cd.doc.Scope.Covers(a) {
			continue
		}
		dr := cd.evaluate(a, pi, &lazy, &txt)
		if act != nil {
			// Conditions of later documents get a fresh activation: pooled
			// objects go back as soon as they are done with. What it read
			// of the arguments stays for them.
			txt.merge(&act.texts)
			act.release()
			act = nil
		}
		switch {
		case dr.strength > best:
			best = dr.strength
			one = deciding{cd, dr}
			deciders = deciders[:0]
			n = 1
		case dr.strength == best:
			if n == 1 {
				deciders = append(deciders, one)
			}
			deciders = append(deciders, deciding{cd, dr})
			n++
		}
	}
	if best < 0 {
		res.Effect, res.Reasons = action.Deny, slices.Clone(reasonNoDocument)
		return
	}
	if n == 1 {
		one.into(res)
	} else {
		for i := range deciders {
			deciders[i].into(res)
		}
	}
	switch best {
	case action.Allow.Strength():
		res.Effect = action.Allow
	case action.Audit.Strength():
		res.Effect, res.Flagged = action.Allow, true
	case action.RequireApproval.Strength():
		res.Effect = action.RequireApproval
	default:
		res.Effect = action.Deny
	}
}

type deciding struct {
	cd *compiledDoc
	dr docResult
}

// into adds a deciding document's rules, reasons and responses to res.
// Everything res receives is its own copy (append to an empty slice copies):
// a caller may write into a Result without reaching into the compiled set,
// and so into every later decision.
func (d deciding) into(res *Result) {
	cd, dr := d.cd, d.dr
	if dr.first < 0 {
		res.Reasons = append(res.Reasons, cd.defaultReason...)
	} else {
		r := &cd.rules[dr.first]
		if len(res.Rules) == 0 && len(res.Reasons) == 0 && len(dr.more) == 0 {
			// The usual case: one rule decides. Its id and reason share one
			// allocation, each capped so that an append cannot run into
			// the other.
			buf := make([]string, 0, len(r.ids)+len(r.reasons))
			buf = append(append(buf, r.ids...), r.reasons...)
			n := len(r.ids)
			res.Rules, res.Reasons = buf[:n:n], buf[n:len(buf):len(buf)]
		} else {
			res.Rules = append(res.Rules, r.ids...)
			res.Reasons = append(res.Reasons, r.reasons...)
		}
		res.take(r)
		for _, i := range dr.more {
			r := &cd.rules[i]
			res.Rules = append(res.Rules, r.ids...)
			res.Reasons = append(res.Reasons, r.reasons...)
			res.take(r)
		}
	}
	res.Reasons = append(res.Reasons, dr.failed...)
	if dr.strength == action.Deny.Strength() {
		for _, resp := range cd.doc.Responses[res.Severity] {
			if !slices.Contains(res.Responses, resp) {
				res.Responses = append(res.Responses, resp)
			}
		}
	}
}

func (res *Result) take(r *compiledRule) {
	res.Provenance = res.Provenance || r.prov
	if r.rule.Severity.Rank() > res.Severity.Rank() {
		res.Severity = r.rule.Severity
	}
	if r.rule.Effect == action.RequireApproval && res.Approval == nil {
		res.Approval = r.rule.Approval.clone()
		if res.Approval == nil {
			res.Approval = &ApprovalSpec{OnTimeout: action.Deny}
		}
	}
	for _, o := range r.rule.Obligations {
		res.Obligations = append(res.Obligations, action.Obligation{Type: o.Type, Fields: slices.Clone(o.Fields)})
	}
}

func (cd *compiledDoc) evaluate(a *action.Action, pi int, act *lazyActivation, txt *texts) docResult {
	dr := docResult{strength: -1, first: -1}
	t := &cd.index[pi]
	byName, byServer := t.exact(a)
	cd.consider(byName, a, act, txt, &dr, false)
	cd.consider(byServer, a, act, txt, &dr, false)
	cd.consider(t.other, a, act, txt, &dr, true)
	if dr.first < 0 {
		dr.strength = cd.doc.Default.Strength()
	}
	return dr
}

// consider evaluates candidate rules, strongest first, skipping any weaker
// than the best already matched. checkTools is false for the exact-name
// buckets, whose lookup already matched the tool.
func (cd *compiledDoc) consider(cands []int32, a *action.Action, act *lazyActivation, txt *texts, dr *docResult, checkTools bool) {
	for _, ri := range cands {
		r := &cd.rules[ri]
		if r.strength < dr.strength {
			return // buckets are sorted strongest first
		}
		if ri == dr.first || slices.Contains(dr.more, ri) || !r.match.matchesFrom(a, checkTools) {
			continue
		}
		if v, settled := r.nativeEval(a, txt); settled {
			if !v {
				continue
			}
		} else if r.prg != nil {
			ok, failed := r.eval(act.get(txt))
			if failed != "" {
				dr.failed = append(dr.failed, failed)
			}
			if !ok {
				continue
			}
		}
		switch {
		case r.strength > dr.strength:
			dr.strength, dr.first, dr.more = r.strength, ri, dr.more[:0]
		case r.strength == dr.strength:
			dr.more = append(dr.more, ri)
		}
	}
}

// eval runs the rule's condition. A missing argument makes it false. Any
// other error fails closed: a rule that would deny or require approval then
// applies, one that would allow does not, and the reason says so.
func (r *compiledRule) eval(act *activation) (bool, string) {
	out, _, err := r.prg.Eval(act)
	if err == nil {
		b, ok := out.Value().(bool)
		return ok && b, ""
	}
	if missing(err) {
		// CEL gives a field of a string the error of an absent key: an
		// agent must not turn a deny rule off by sending a value of
		// another shape than the one the rule reads into.
		if where, kind, bad := wrongShape(r.shapes, &act.a); bad {
			return r.outcome(false, where+" is "+kind+", which the condition reads into")
		}
		return false, ""
	}
	return r.outcome(false, err.Error())
}

// missing reports whether err is CEL's failure to find a key or field (an
// absent argument), told apart from other errors by its kind: a message can
// quote the request ("invalid timestamp \"no such key\""), so its text
// proves nothing.
func missing(err error) bool {
	inner := errors.Unwrap(err)
	if inner == nil || reflect.TypeOf(inner).String() != "*interpreter.resolutionError" {
		return false
	}
	msg := inner.Error()
	return strings.HasPrefix(msg, "no such key: ") || strings.HasPrefix(msg, "no such attribute")
}

// nativeEval runs the condition's compiled form. settled says whether its
// answer is final: always when it is false (a necessary part failed), and
// when it is true only if the compiled form is the whole condition.
func (r *compiledRule) nativeEval(a *action.Action, t *texts) (v, settled bool) {
	if r.native == nil {
		return false, false
	}
	v, handled := r.native.eval(a, t)
	if !handled {
		return false, false
	}
	if !v {
		return false, true
	}
	return true, r.exact
}

// outcome applies the fail-closed rule to a condition's value and error.
func (r *compiledRule) outcome(v bool, errMsg string) (bool, string) {
	if errMsg == "" {
		return v, ""
	}
	if r.strength >= action.RequireApproval.Strength() {
		return true, "rule " + r.rule.ID + ": condition could not be evaluated (" + errMsg + "); failing closed"
	}
	return false, ""
}

// lazyActivation builds the CEL activation on first use.
type lazyActivation struct {
	a   *action.Action
	env *Env
	act **activation
}

func (l *lazyActivation) get(t *texts) *activation {
	if *l.act == nil {
		v := activationPool.Get().(*activation)
		// Copies, not pointers: the activation outlives nothing, but the
		// compiler cannot know that, and a pointer would move every action
		// to the heap.
		v.a, v.env = *l.a, *l.env
		v.texts = *t
		*l.act = v
	}
	return *l.act
}

var activationPool = sync.Pool{New: func() any { return new(activation) }}

// activation resolves CEL variables lazily from the action, so a condition
// pays only for the variables it reads.
type activation struct {
	a     action.Action
	env   Env
	texts texts
	sess  *Session // the session variable, built on first use
}

func (v *activation) release() {
	*v = activation{}
	activationPool.Put(v)
}

// breakerViews are the `breaker` variable for each state, made once.
var breakerViews = map[string]map[string]string{
	"closed": {"state": "closed"}, "half_open": {"state": "half_open"}, "open": {"state": "open"},
}

func breakerView(state string) map[string]string {
	if v, ok := breakerViews[state]; ok {
		return v
	}
	return breakerViews["closed"]
}

var (
	noBudget       = map[string]any{"fraction": 0.0, "budgets": map[string]any{}}
	emptyMap       = map[string]any{}
	emptyStringMap = map[string]string{}
)

func (v *activation) ResolveName(name string) (any, bool) {
	a := &v.a
	switch name {
	case "args":
		if a.Args == nil {
			return emptyMap, true
		}
		return a.Args, true
	case "tool":
		ann := a.Tool.Annotations
		if ann == nil {
			ann = emptyMap
		}
		return map[string]any{"server": a.Tool.Server, "name": a.Tool.Name, "annotations": ann}, true
	case "agent":
		labels := a.Agent.Labels
		if labels == nil {
			labels = emptyStringMap
		}
		return map[string]any{"id": a.Agent.ID, "type": a.Agent.Type, "labels": labels, "delegation": delegationView(a.Agent.Delegation)}, true
	case "target":
		labels := a.Target.Labels
		if labels == nil {
			labels = emptyStringMap
		}
		return map[string]any{"id": a.Target.ID, "trust": a.Target.Trust, "labels": labels}, true
	case "principal":
		return map[string]string{"user": a.Principal.User, "team": a.Principal.Team, "org": a.Principal.Org}, true
	case "resource":
		return map[string]string{"type": a.Resource.Type, "id": a.Resource.ID, "permission": a.Resource.Permission}, true
	case "estimate":
		return map[string]any{"tokens": a.Estimate.Tokens, "cost_usd": a.Estimate.CostUSD}, true
	case "session":
		if v.sess == nil {
			v.sess = sessionValue(a.Session, v.env.Provenance)
		}
		return v.sess, true
	case provenanceVar:
		return provVal{v.env.Provenance}, true
	case "point":
		return string(a.PointOrDefault()), true
	case "destination":
		return a.Destination, true
	case "model":
		return a.Model, true
	case "content":
		return a.Content, true
	case "args_text":
		// Conditions name args_text many times over; convert it once.
		if v.texts.textVal == nil {
			v.texts.textVal = types.String(v.texts.get(a.Args, false))
		}
		return v.texts.textVal, true
	case "trust":
		if v.env.Trust == nil {
			return noTrust.val, true
		}
		return v.env.Trust.val, true
	case "now":
		return v.env.Now, true
	case "budget":
		if v.env.Budget == nil {
			return noBudget, true
		}
		return v.env.Budget, true
	case "model_tier":
		return v.env.ModelTier, true
	case "breaker":
		return breakerView(v.env.Breaker), true
	case "anomaly":
		return &v.env.Anomaly, true
	case "_shell_commands_args", "_shell_pipelines_args", "_sql_statements_args", "_sql_injected_args", "_clean_paths_args":
		return v.texts.reads.get(name, a.Args), true
	}
	return nil, false
}

func (v *activation) Parent() interpreter.Activation { return nil }

// ArgsText joins every string in args (at any depth, keys in sorted order)
// with newlines. Policies match dangerous text with it wherever a tool puts
// it: a shell tool's "command", a SQL tool's "query", a nested "input.script".
func ArgsText(args map[string]any) string {
	var b strings.Builder
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case string:
			if b.Len() > 0 {
				b.WriteByte('\n')
			}
			b.WriteString(x)
		case []any:
			for _, e := range x {
				walk(e)
			}
		case map[string]any:
			keys := make([]string, 0, len(x))
			for k := range x {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				walk(x[k])
			}
		}
	}
	walk(args)
	return b.String()
}
