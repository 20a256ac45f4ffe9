package govern

import (
	"context"
	"sort"
	"strconv"
	"strings"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/policy"
	"github.com/agentgov/agentgov/provenance"
)

// WithProvenance sets the provenance ledger (DESIGN §8): what the user
// typed (point input) is trusted content, what tools returned (point
// post_tool_call) untrusted unless a policy lists the tool as trusted;
// policies ask where a value came from with untrusted(v), sources(v) and
// session.*. Without this option an engine keeps a ledger of its own with
// the default bounds; WithProvenance(nil) keeps none, and then nothing is
// untrusted.
func WithProvenance(l *provenance.Ledger) Option {
	return func(e *Engine) { e.prov, e.provSet = l, true }
}

// Provenance returns the engine's ledger, nil without one.
func (e *Engine) Provenance() *provenance.Ledger { return e.prov }

// LedgerKey is the key of an agent's session in the provenance ledger:
// the agent's id and the session's, so that an agent naming another's
// session can neither read its ledger nor write trusted content into it.
func LedgerKey(agentID, session string) string {
	if session == "" {
		return ""
	}
	return agentID + "\x00" + session
}

// provenanceBefore records the content that came with the action and
// gives the evaluation the session's ledger.
func (e *Engine) provenanceBefore(ctx context.Context, a *action.Action, set *policy.Set, env *policy.Env) {
	if e.prov == nil || a.Session == "" || !set.UsesProvenance() {
		return
	}
	key := LedgerKey(a.Agent.ID, a.Session)
	for _, s := range provenance.SegmentsFrom(ctx) {
		e.prov.Add(key, s.Source, s.Trusted, s.Text)
	}
	env.Provenance = e.prov.View(key)
}

// provenanceAfter records what a decided action adds to its session's
// ledger: the user's input, a tool's result the agent now holds, a tool
// called, another agent's reply. Only what went through counts: a withheld result never reached
// the agent.
//
// Nothing is recorded while the policy in force asks the ledger nothing: a
// set loaded later that does ask starts from what is seen after it, as
// after a restart.
func (e *Engine) provenanceAfter(a *action.Action, d *action.Decision, set *policy.Set) {
	if e.prov == nil || a.Session == "" || d.Effect != action.Allow || !set.UsesProvenance() {
		return
	}
	key := LedgerKey(a.Agent.ID, a.Session)
	switch a.PointOrDefault() {
	case action.Input:
		e.prov.Add(key, provenance.User, true, a.Content)
	case action.PreToolCall:
		e.prov.Called(key, toolName(a.Tool))
	case action.PostToolCall:
		trusted := set.TrustedResult(a)
		e.prov.Add(key, provenance.ToolSource(a.Tool.Server, a.Tool.Name), trusted, a.Content)
		if d.Flagged && !trusted {
			// A policy flagged this result (instructions addressed to the
			// model, say): later calls of the session are judged with
			// session.flagged.
			e.prov.Flag(key)
		}
	case action.PostAgentMessage:
		// Another agent's reply the caller now holds (DESIGN §15): never
		// trusted, whatever the agent's trust tier, since an agent relays
		// what it read elsewhere.
		e.prov.Add(key, agentSource(a.Target.ID), false, agentReplyText(a))
		if d.Flagged {
			e.prov.Flag(key)
		}
	}
}

// agentSource is the source of a reply of the agent with the given id.
func agentSource(id string) string {
	if id == "" {
		id = "unknown"
	}
	return provenance.AgentPrefix + id
}

// maxReplyData bounds how much of a reply's data parts (its args) the
// ledger records, on top of its text: the ledger bounds a session anyway,
// and a reply's values are its first kilobytes far more often than its last.
const maxReplyData = 1 << 20

// agentReplyText is what a reply gives the caller to copy from: its text
// parts, then every string and number of its data parts, one a line, in
// the order of their keys.
func agentReplyText(a *action.Action) string {
	var b strings.Builder
	b.WriteString(a.Content)
	keys := make([]string, 0, len(a.Args))
	for k := range a.Args {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	data := 0
	for _, k := range keys {
		full := !provenance.Values(a.Args[k], func(s string) bool {
			if data+len(s) > maxReplyData {
				return false
			}
			data += len(s) + 1
			b.WriteByte('\n')
			b.WriteString(s)
			return true
		})
		if full {
			break
		}
	}
	return b.String()
}

func toolName(t action.Tool) string {
	if t.Server != "" {
		return t.Server + "/" + t.Name
	}
	return t.Name
}

// provenanceOf says, for a decision a provenance rule produced, where each
// argument whose value is untrusted came from: {"args.recipient":
// ["tool:read_file"]}.
func provenanceOf(a *action.Action, v *provenance.View) map[string][]string {
	if v == nil {
		return nil
	}
	var out map[string][]string
	var walk func(path string, x any)
	walk = func(path string, x any) {
		switch y := x.(type) {
		case map[string]any:
			keys := make([]string, 0, len(y))
			for k := range y {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				walk(path+"."+k, y[k])
			}
		case []any:
			for i, el := range y {
				walk(path+"["+strconv.Itoa(i)+"]", el)
			}
		default:
			provenance.Values(x, func(s string) bool {
				var srcs []string
				if v.Untrusted(s) {
					srcs = v.Sources(s)
				} else if !provenance.Long(s) {
					// Too short for untrusted(v), but instructed(v, verbs)
					// may have found it beside a verb.
					srcs = v.WordSources(s)
				}
				if len(srcs) > 0 {
					if out == nil {
						out = map[string][]string{}
					}
					out[path] = srcs
				}
				return false
			})
		}
	}
	walk("args", a.Args)
	if a.Content != "" && v.Untrusted(a.Content) {
		if out == nil {
			out = map[string][]string{}
		}
		out["content"] = v.Sources(a.Content)
	}
	return out
}
