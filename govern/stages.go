package govern

import (
	"context"
	"strings"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/budget"
	"github.com/agentgov/agentgov/killswitch"
)

// KillSwitch stops actions in a scope; *killswitch.Switchboard is one. The
// engine engages it itself for policy "isolate" responses and budget kill
// thresholds, and for operators through EngageKill and ReleaseKill.
type KillSwitch interface {
	Check(a *action.Action) (killswitch.Switch, bool)
	Engage(ctx context.Context, s killswitch.Switch, records ...killswitch.Record) (killswitch.Switch, error)
	Release(ctx context.Context, id, by string, records ...killswitch.Record) (killswitch.Switch, error)
}

// WithKillSwitch checks kill switches first of all.
func WithKillSwitch(k KillSwitch) Option { return func(e *Engine) { e.kill = k } }

func (e *Engine) killCheck(a *action.Action) (string, bool) {
	sw, ok := e.kill.Check(a)
	if !ok {
		return "", false
	}
	return sw.DenyReason(), true
}

// respond carries out a deny's automatic responses: "isolate" engages a kill
// switch on the agent, "notify" raises a notice. The decision is a deny
// whether or not the switch could be engaged.
func (e *Engine) respond(ctx context.Context, a *action.Action, d *action.Decision, responses []string) {
	for _, r := range responses {
		switch r {
		case "isolate":
			if e.kill != nil && a.Agent.ID != "" {
				_ = e.engage(ctx, d, killswitch.Switch{
					Scope: killswitch.Agent, Target: a.Agent.ID, By: "policy",
					Reason: "isolated after " + string(d.Severity) + " severity deny " + d.ID.String() + ": " + strings.Join(d.Rules, ", "),
				})
			}
		case "notify":
			e.emit(ctx, Notice{Kind: "deny", Decision: d.ID, Agent: a.Agent.ID, Severity: d.Severity, Message: strings.Join(d.Reasons, "; ")})
		}
	}
}

// isolateScope engages a kill switch on a budget's scope when its kill
// threshold is crossed.
func (e *Engine) isolateScope(ctx context.Context, d *action.Decision, sc budget.Scope) error {
	if e.kill == nil {
		return nil
	}
	sw := killswitch.Switch{By: "budget", Reason: "budget kill threshold crossed by decision " + d.ID.String()}
	switch {
	case sc.Session != "":
		sw.Scope, sw.Target, sw.Agent = killswitch.Session, sc.Session, sc.Agent
	case sc.Agent != "":
		sw.Scope, sw.Target = killswitch.Agent, sc.Agent
	case sc.User != "":
		sw.Scope, sw.Target = killswitch.Principal, "user:"+sc.User
	case sc.Team != "":
		sw.Scope, sw.Target = killswitch.Principal, "team:"+sc.Team
	case sc.Org != "":
		sw.Scope, sw.Target = killswitch.Principal, "org:"+sc.Org
	default:
		sw.Scope = killswitch.System
	}
	return e.engage(ctx, d, sw)
}

// engage engages a switch for decision d, through the audited change: a
// switch that cannot be recorded is not engaged, and the notice says so.
func (e *Engine) engage(ctx context.Context, d *action.Decision, sw killswitch.Switch) error {
	if _, err := e.engageKill(ctx, sw, d.ID.String()); err != nil {
		e.emit(ctx, Notice{Kind: "kill_failed", Decision: d.ID, Message: "could not engage kill switch: " + err.Error(),
			Fields: map[string]any{"scope": string(sw.Scope), "target": sw.Target, "by": sw.By}})
		return err
	}
	return nil
}

// redact returns a copy of a whose fields named by redact obligations are
// replaced, so that what is logged (and hashed) never holds them.
func redact(a *action.Action, obs []action.Obligation) action.Action {
	out := *a
	copied := false
	for _, o := range obs {
		if o.Type != "redact" {
			continue
		}
		for _, f := range o.Fields {
			if f == "content" {
				if out.Content != "" {
					out.Content = "[REDACTED]"
				}
				continue
			}
			path, ok := strings.CutPrefix(f, "args.")
			if !ok {
				continue
			}
			if !copied {
				out.Args = deepCopy(a.Args)
				copied = true
			}
			redactPath(out.Args, strings.Split(path, "."))
		}
	}
	return out
}

func redactPath(m map[string]any, path []string) {
	v, ok := m[path[0]]
	if !ok {
		return
	}
	if len(path) == 1 {
		m[path[0]] = "[REDACTED]"
		return
	}
	if sub, ok := v.(map[string]any); ok {
		redactPath(sub, path[1:])
	}
}

func deepCopy(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		switch x := v.(type) {
		case map[string]any:
			out[k] = deepCopy(x)
		case []any:
			l := make([]any, len(x))
			for i, e := range x {
				if mm, ok := e.(map[string]any); ok {
					l[i] = deepCopy(mm)
				} else {
					l[i] = e
				}
			}
			out[k] = l
		default:
			out[k] = v
		}
	}
	return out
}
