package govern

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/policy"
)

// DeliveryObserver is told what the shadow and canary sets do;
// *metrics.Metrics is one.
type DeliveryObserver interface {
	ShadowDiff(live, shadow action.Effect)
	CanaryDecided(effect action.Effect)
	CanaryRolledBack(reason string)
}

// WithShadow evaluates set beside the live one on every decision the
// policy stage reaches, with no effect on it; where the two differ, a
// "shadow.diff" entry is appended to the audit log and obs (if any) is
// told.
func WithShadow(set *policy.Set, obs DeliveryObserver) Option {
	return func(e *Engine) {
		e.shadow.Store(set)
		if obs != nil {
			e.delivery = obs
		}
	}
}

// Canary is a candidate policy set that decides instead of the live one
// for some agents: those matching Agents (globs over agent ids), and a
// Share (0 to 1) of the others, chosen by a stable hash of the agent id
// so that each agent stays in or out. It is rolled back, once, by
// RollbackCanary, or by itself when DenyRatio (above 0) of its decisions,
// counted over at least MinDecisions, are denials.
type Canary struct {
	Set          *policy.Set
	Agents       []string
	Share        float64
	DenyRatio    float64
	MinDecisions int
}

type canaryState struct {
	Canary
	decisions, denials atomic.Int64
	mu                 sync.Mutex // held while rolling back, so that it happens once
}

// WithCanary lets c decide for its agents.
func WithCanary(c Canary, obs DeliveryObserver) Option {
	return func(e *Engine) {
		e.canary.Store(&canaryState{Canary: c})
		if obs != nil {
			e.delivery = obs
		}
	}
}

// covers says whether the canary decides for agent.
func (c *canaryState) covers(agent string) bool {
	if slices.ContainsFunc(c.Agents, func(g string) bool { return policy.Glob(g, agent) }) {
		return true
	}
	if c.Share <= 0 {
		return false
	}
	// SHA-256 rather than a fast hash: ids that differ in one digit
	// (agent-1, agent-2) must land anywhere in [0, 1).
	sum := sha256.Sum256([]byte(agent))
	return float64(binary.BigEndian.Uint64(sum[:8]))/math.MaxUint64 < c.Share
}

// CanaryInForce returns the canary's policy set while it decides, nil
// once rolled back or when there is none.
func (e *Engine) CanaryInForce() *policy.Set {
	if c := e.canary.Load(); c != nil {
		return c.Set
	}
	return nil
}

// pick returns the set that decides for a: the canary's for its agents,
// else the live one.
func (e *Engine) pick(a *action.Action) (*policy.Set, *canaryState) {
	if c := e.canary.Load(); c != nil && c.covers(a.Agent.ID) {
		return c.Set, c
	}
	return e.set.Load(), nil
}

// RollbackCanary stops the canary: from the next decision the live set
// decides for every agent. The rollback is audited first; if it cannot be
// recorded the canary stays and the error says so. It is the seam for
// whatever watches the canary's health (an SLO burning past its page
// threshold); a canary already rolled back is left alone.
func (e *Engine) RollbackCanary(ctx context.Context, reason string) error {
	c := e.canary.Load()
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e.canary.Load() != c {
		return nil // rolled back meanwhile
	}
	if e.audit != nil {
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), auditTimeout)
		defer cancel()
		// Not recorded, not rolled back: the next trigger tries again.
		if _, err := e.audit.Append(actx, "canary", map[string]any{
			"event": "rollback", "policy": c.Set.Digest(), "bundle": c.Set.Bundle(), "reason": reason,
			"decisions": c.decisions.Load(), "denials": c.denials.Load(),
		}); err != nil {
			return fmt.Errorf("roll back canary: audit: %w", err)
		}
	}
	e.canary.CompareAndSwap(c, nil)
	if e.delivery != nil {
		e.delivery.CanaryRolledBack(reason)
	}
	e.emit(ctx, Notice{Kind: "canary_rollback", Message: "canary policy " + c.Set.Digest() + " rolled back: " + reason,
		Fields: map[string]any{"policy": c.Set.Digest(), "reason": reason}})
	return nil
}

// canaryDecided counts a decision of the canary and rolls it back when
// its denials pass the configured ratio.
func (e *Engine) canaryDecided(ctx context.Context, c *canaryState, d *action.Decision) {
	n := c.decisions.Add(1)
	den := c.denials.Load()
	if d.Effect == action.Deny {
		den = c.denials.Add(1)
	}
	if e.delivery != nil {
		e.delivery.CanaryDecided(d.Effect)
	}
	if c.DenyRatio > 0 && n >= int64(max(c.MinDecisions, 1)) && float64(den)/float64(n) >= c.DenyRatio {
		_ = e.RollbackCanary(ctx, fmt.Sprintf("%d of its %d decisions were denials, at or past the rollback ratio %v", den, n, c.DenyRatio))
	}
}

// shadowDiff evaluates the shadow set on a and records where it parts
// from what the live policy said (live, before rate limits, budgets and
// approvals, as the record's policy_effect).
func (e *Engine) shadowDiff(ctx context.Context, a *action.Action, d *action.Decision, live action.Effect, env *policy.Env) {
	sh := e.shadow.Load()
	if sh == nil || live == "" {
		return
	}
	var r policy.Result
	sh.EvaluateInto(a, env, &r)
	if r.Effect == live {
		return
	}
	if e.delivery != nil {
		e.delivery.ShadowDiff(live, r.Effect)
	}
	if e.audit == nil {
		return
	}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), auditTimeout)
	defer cancel()
	rules := r.Rules
	if rules == nil {
		rules = []string{}
	}
	liveRules := d.Rules
	if liveRules == nil {
		liveRules = []string{}
	}
	if _, err := e.audit.Append(actx, "shadow.diff", map[string]any{
		"decision": d.ID.String(), "agent": maskText(a.Agent.ID), "live": live, "shadow": r.Effect,
		"live_rules": liveRules, "shadow_rules": rules, "shadow_policy": sh.Digest(),
	}); err != nil {
		// A shadow has no effect; losing one of its records must not deny
		// the decision it shadowed, but it is said.
		e.emit(ctx, Notice{Kind: "shadow", Decision: d.ID, Message: "a shadow difference could not be recorded: " + err.Error()})
	}
}

// RecordCanaryStart appends the canary's start to the audit log: which set
// decides for which agents, and what rolls it back.
func (e *Engine) RecordCanaryStart(ctx context.Context, rollback map[string]any) error {
	c := e.canary.Load()
	if c == nil || e.audit == nil {
		return nil
	}
	_, err := e.audit.Append(ctx, "canary", map[string]any{
		"event": "start", "policy": c.Set.Digest(), "bundle": c.Set.Bundle(), "live": e.set.Load().Digest(),
		"agents": c.Agents, "share": c.Share, "rollback": rollback,
	})
	return err
}

// HoldCanary stops the canary at start because an earlier run rolled it
// back (at the audit entry rolledBackAt): a restart must not bring back a
// candidate that was found wanting. The hold is audited first.
func (e *Engine) HoldCanary(ctx context.Context, rolledBackAt uint64) error {
	c := e.canary.Load()
	if c == nil {
		return nil
	}
	if e.audit != nil {
		if _, err := e.audit.Append(ctx, "canary", map[string]any{
			"event": "held", "policy": c.Set.Digest(), "bundle": c.Set.Bundle(), "rolled_back_at": rolledBackAt,
			"reason": "this canary policy set was rolled back before; configure another to start a canary again",
		}); err != nil {
			return fmt.Errorf("hold canary: audit: %w", err)
		}
	}
	e.canary.CompareAndSwap(c, nil)
	return nil
}
