package stack

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"

	"github.com/agentgov/agentgov/audit"
	"github.com/agentgov/agentgov/bundle"
	"github.com/agentgov/agentgov/config"
	"github.com/agentgov/agentgov/evidence"
	"github.com/agentgov/agentgov/govern"
	"github.com/agentgov/agentgov/mcp/pin"
	"github.com/agentgov/agentgov/policies"
	"github.com/agentgov/agentgov/policy"
)

// TrustedPolicySource is PolicySource under cfg's policy_trust: with keys,
// only a bundle signed by one of them loads, at start and on every reload;
// a directory, a single file or the built-in pack cannot carry a signature
// and is refused. Keys are read once, when the source is made.
func TrustedPolicySource(cfg *config.Config, p string) (func() (*policy.Set, error), error) {
	var trusted []ed25519.PublicKey
	if len(cfg.PolicyTrust.Keys) > 0 {
		var err error
		if trusted, err = bundle.LoadPublicKeys(cfg.PolicyTrust.Keys); err != nil {
			return nil, fmt.Errorf("policy_trust.keys: %w", err)
		}
	}
	switch {
	case bundle.IsBundle(p):
		return func() (*policy.Set, error) { return bundle.LoadPolicy(p, trusted) }, nil
	case len(trusted) > 0:
		src := p
		if src == "" {
			src = "the built-in pack"
		}
		return func() (*policy.Set, error) {
			return nil, fmt.Errorf("load policy %s: %w", src, bundle.ErrNotBundle)
		}, nil
	case p == "":
		return policies.Builtin, nil
	}
	return func() (*policy.Set, error) { return policy.Load(p) }, nil
}

// openPins opens the MCP lock file. Under policy_trust the lock must carry
// a detached signature (LOCK.sig) by a trusted key, and the pins are the
// bytes that were verified, kept in memory: nothing pins on first use, and
// a lock rewritten after the check changes nothing.
func (s *Stack) openPins() (*pin.Pins, error) {
	cfg := s.Config
	if len(cfg.PolicyTrust.Keys) == 0 {
		return pin.OpenPins(cfg.MCP.Lock)
	}
	trusted, err := bundle.LoadPublicKeys(cfg.PolicyTrust.Keys)
	if err != nil {
		return nil, fmt.Errorf("policy_trust.keys: %w", err)
	}
	data, err := bundle.ReadRegular(cfg.MCP.Lock, bundle.MaxBytes)
	if err != nil {
		return nil, fmt.Errorf("policy_trust.keys is set, so the lock must exist and be signed: %w", err)
	}
	if _, err := bundle.VerifyData(cfg.MCP.Lock, data, trusted); err != nil {
		return nil, err
	}
	l, err := pin.ParseLock(cfg.MCP.Lock, data)
	if err != nil {
		return nil, err
	}
	return pin.SignedPins(l), nil
}

// deliveryOptions loads the shadow and canary policy sets of the
// configuration, under the same trust as the live set, and records the
// canary's start once the log runs.
func (s *Stack) deliveryOptions() ([]govern.Option, error) {
	cfg := s.Config
	var opts []govern.Option
	if cfg.PoliciesShadow != "" {
		load, err := TrustedPolicySource(cfg, cfg.PoliciesShadow)
		if err != nil {
			return nil, err
		}
		shadowSource := func() (*policy.Set, error) {
			set, err := load()
			if err != nil {
				return nil, fmt.Errorf("policies_shadow: %w", err)
			}
			return set, nil
		}
		set, err := shadowSource()
		if err != nil {
			return nil, err
		}
		// Reloaded with the live set (the reload API, SIGHUP, another
		// replica's reload).
		s.LoadShadow = shadowSource
		s.Metrics.WatchDelivery()
		opts = append(opts, govern.WithShadow(set, s.Metrics))
	}
	if c := cfg.Canary; c != nil {
		load, err := TrustedPolicySource(cfg, c.Policies)
		if err != nil {
			return nil, err
		}
		set, err := load()
		if err != nil {
			return nil, fmt.Errorf("canary.policies: %w", err)
		}
		s.Metrics.WatchDelivery()
		opts = append(opts, govern.WithCanary(govern.Canary{
			Set: set, Agents: c.Agents, Share: c.Share,
			DenyRatio: c.Rollback.DenyRatio, MinDecisions: c.Rollback.MinDecisions,
		}, s.Metrics))
		s.starting = append(s.starting, func(ctx context.Context) error {
			at, rolled, err := canaryRolledBack(ctx, s.Audit, set.Digest())
			if err != nil {
				return fmt.Errorf("canary: read the audit log: %w", err)
			}
			if rolled {
				s.log.Warn("canary held: this canary policy set was rolled back before", "policy", set.Digest(), "rolled_back_at", at)
				return s.Engine.HoldCanary(ctx, at)
			}
			return s.Engine.RecordCanaryStart(ctx, map[string]any{
				"slo": c.Rollback.SLO, "deny_ratio": c.Rollback.DenyRatio, "min_decisions": c.Rollback.MinDecisions,
			})
		})
	}
	return opts, nil
}

// canaryRolledBack finds whether the log's last word on the canary set
// with this digest is a rollback (or a hold), and at which entry.
func canaryRolledBack(ctx context.Context, log *audit.Log, digest string) (uint64, bool, error) {
	var at uint64
	rolled := false
	err := evidence.Walk(ctx, log.Entries, func(e audit.Entry) error {
		if e.Kind != "canary" {
			return nil
		}
		var r struct {
			Event  string `json:"event"`
			Policy string `json:"policy"`
		}
		if err := json.Unmarshal(e.Record, &r); err != nil || r.Policy != digest {
			return nil
		}
		switch r.Event {
		case "rollback":
			at, rolled = e.Index, true
		case "start":
			rolled = false
		}
		return nil
	})
	return at, rolled, err
}

// canaryNotices rolls the canary back when the SLO its configuration names
// begins to page (a "slo_burn" notice from the SLO monitor), then passes
// every notice on.
func (s *Stack) canaryNotices(next func(context.Context, govern.Notice)) func(context.Context, govern.Notice) {
	c := s.Config.Canary
	if c == nil || c.Rollback.SLO == "" {
		return next
	}
	return func(ctx context.Context, n govern.Notice) {
		if n.Kind == "slo_burn" && n.Fields["slo"] == c.Rollback.SLO && s.Engine != nil {
			if err := s.Engine.RollbackCanary(ctx, "SLO "+c.Rollback.SLO+" pages: "+n.Message); err != nil {
				s.log.Error("the canary could not be rolled back", "slo", c.Rollback.SLO, "err", err)
			}
		}
		next(ctx, n)
	}
}
