package config

import (
	"fmt"
	"path"
)

// PolicyTrust names the keys a policy bundle must be signed by. With keys,
// the server loads only a bundle signed by one of them, at start and on
// every reload.
type PolicyTrust struct {
	Keys []string `yaml:"keys"`
}

// Canary lets a candidate policy set decide for some agents before it
// decides for all (DESIGN §11).
type Canary struct {
	// Policies is the candidate set: a directory, file or bundle.
	Policies string `yaml:"policies"`
	// Agents are globs over agent ids that the canary decides for.
	Agents []string `yaml:"agents"`
	// Share is the fraction (0 to 1) of other agents it decides for,
	// chosen by a stable hash of the agent id.
	Share    float64        `yaml:"share"`
	Rollback CanaryRollback `yaml:"rollback"`
}

// CanaryRollback says when the canary is rolled back by itself.
type CanaryRollback struct {
	// SLO names the SLO whose page alert rolls the canary back, where SLOs
	// are configured.
	SLO string `yaml:"slo"`
	// DenyRatio rolls the canary back once this fraction of its decisions
	// are denials, counted over at least MinDecisions (0: never on denials).
	DenyRatio    float64 `yaml:"deny_ratio"`
	MinDecisions int     `yaml:"min_decisions"`
}

// Reward sets the penalties of GET /v1/sessions/{id}/reward by severity.
type Reward struct {
	Penalties Penalties `yaml:"penalties"`
}

// Penalties are negative numbers, one per severity of a denied decision;
// Unrated is for denials that carry no severity.
type Penalties struct {
	Low      *float64 `yaml:"low"`
	Medium   *float64 `yaml:"medium"`
	High     *float64 `yaml:"high"`
	Critical *float64 `yaml:"critical"`
}

// Default penalties of a denial by severity; a denial without a severity
// (a default deny, a rate limit) counts as low.
const (
	DefaultPenaltyLow      = -1.0
	DefaultPenaltyMedium   = -5.0
	DefaultPenaltyHigh     = -20.0
	DefaultPenaltyCritical = -100.0
)

// DefaultCanaryMinDecisions is how many canary decisions are counted
// before a deny ratio may roll it back.
const DefaultCanaryMinDecisions = 20

func (c *Config) fillDelivery() {
	p := &c.Reward.Penalties
	for _, f := range []struct {
		v   **float64
		def float64
	}{{&p.Low, DefaultPenaltyLow}, {&p.Medium, DefaultPenaltyMedium}, {&p.High, DefaultPenaltyHigh}, {&p.Critical, DefaultPenaltyCritical}} {
		if *f.v == nil {
			v := f.def
			*f.v = &v
		}
	}
	if c.Canary != nil && c.Canary.Rollback.MinDecisions == 0 {
		c.Canary.Rollback.MinDecisions = DefaultCanaryMinDecisions
	}
}

func (c *Config) validateDelivery() error {
	bad := func(key, format string, args ...any) error {
		return &Error{Key: key, Msg: fmt.Sprintf(format, args...)}
	}
	for i, k := range c.PolicyTrust.Keys {
		if k == "" {
			return bad(fmt.Sprintf("policy_trust.keys[%d]", i), "empty path")
		}
	}
	if len(c.PolicyTrust.Keys) > 0 && c.MCP.TrustOnFirstUse {
		return bad("mcp.trust_on_first_use", "cannot be on with policy_trust.keys: pins written on first use carry no signature")
	}
	if c.Canary != nil {
		cn := c.Canary
		if cn.Policies == "" {
			return bad("canary.policies", "missing: the candidate policy set")
		}
		if cn.Share < 0 || cn.Share > 1 {
			return bad("canary.share", "want a fraction from 0 to 1, got %v", cn.Share)
		}
		if cn.Share == 0 && len(cn.Agents) == 0 {
			return bad("canary", "give agents or a share above 0: otherwise the canary decides for no one")
		}
		for i, g := range cn.Agents {
			if _, err := path.Match(g, ""); err != nil || g == "" {
				return bad(fmt.Sprintf("canary.agents[%d]", i), "not a glob: %q", g)
			}
		}
		r := cn.Rollback
		if r.DenyRatio < 0 || r.DenyRatio > 1 {
			return bad("canary.rollback.deny_ratio", "want a fraction from 0 to 1, got %v", r.DenyRatio)
		}
		if r.MinDecisions < 1 {
			return bad("canary.rollback.min_decisions", "must be at least 1")
		}
		if r.DenyRatio == 0 && r.SLO == "" {
			return bad("canary.rollback", "give slo (an SLO of slos:) or deny_ratio: a canary that nothing rolls back is a rollout")
		}
	}
	p := c.Reward.Penalties
	for _, f := range []struct {
		key string
		v   *float64
	}{{"low", p.Low}, {"medium", p.Medium}, {"high", p.High}, {"critical", p.Critical}} {
		if f.v != nil && *f.v > 0 {
			return bad("reward.penalties."+f.key, "a penalty is a negative number (or 0), got %v", *f.v)
		}
	}
	return nil
}
