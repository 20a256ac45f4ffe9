package stack

import (
	"context"
	"time"

	"github.com/agentgov/agentgov/config"
	"github.com/agentgov/agentgov/identity"
	"github.com/agentgov/agentgov/trust"
)

// openIdentity loads the agent registry from the store and builds the
// verifier of the identity: section's credentials.
func openIdentity(ctx context.Context, cfg *config.Config, st identity.Store, clock func() time.Time) (*identity.Verifier, error) {
	reg, err := identity.NewRegistry(ctx, st, clock)
	if err != nil {
		return nil, err
	}
	c := cfg.Identity
	opt := identity.Options{
		Audience: c.Audience, MaxLifetime: c.MaxLifetime, Leeway: c.Leeway, ReplayCache: c.ReplayCache,
		MaxDelegationTTL: c.MaxDelegationTTL, MaxDelegationDepth: c.MaxDelegationDepth, Clock: clock,
	}
	for _, o := range c.OIDC {
		opt.OIDC = append(opt.OIDC, identity.OIDCIssuer{Issuer: o.Issuer, JWKSFile: o.JWKSFile, JWKSURL: o.JWKSURL, Audience: o.Audience,
			Claims: identity.OIDCClaims{Agent: o.Claims.Agent, User: o.Claims.User, Team: o.Claims.Team, Org: o.Claims.Org}})
	}
	if c.SPIFFE != nil {
		opt.SPIFFE = &identity.SPIFFE{TrustDomain: c.SPIFFE.TrustDomain, BundleFile: c.SPIFFE.BundleFile}
	}
	return identity.NewVerifier(ctx, reg, st, opt)
}

// ringsFromRegistry makes the registry the source of every registered
// agent's base ring (DESIGN §9): read from the registry's copy in memory,
// which a registration or revocation here changes at once and the store's
// change feed changes on every replica.
func ringsFromRegistry(k *trust.Keeper, reg *identity.Registry) {
	k.SetRingSource(reg.Ring)
}
