package config

import (
	"fmt"
	"net/url"
	"time"
)

// Identity is the identity: section: the credentials agents may present
// beyond the static tokens (DESIGN §9).
type Identity struct {
	// Audience is this server's name in the aud of agent-signed JWTs and
	// SPIFFE JWT-SVIDs (a URL, by custom). Empty: neither is accepted.
	Audience string `yaml:"audience"`
	// MaxLifetime caps exp - iat of an agent-signed JWT (default and
	// maximum 5m).
	MaxLifetime time.Duration `yaml:"max_lifetime"`
	// Leeway is the clock skew allowed (default 30s, at most 5m).
	Leeway time.Duration `yaml:"leeway"`
	// ReplayCache bounds the JWT ids kept in memory (default 100000); the
	// store keeps every one until it expires.
	ReplayCache int `yaml:"replay_cache"`
	// MaxDelegationTTL caps a delegation's expires_in (default 24h).
	MaxDelegationTTL time.Duration `yaml:"max_delegation_ttl"`
	// MaxDelegationDepth caps a top-level delegation's max_depth
	// (default 4).
	MaxDelegationDepth int          `yaml:"max_delegation_depth"`
	OIDC               []OIDCIssuer `yaml:"oidc"`
	SPIFFE             *SPIFFE      `yaml:"spiffe"`
}

// Credentials reports whether a credential beyond static tokens is
// configured: agent-signed JWTs checked against the registry's keys (an
// audience), OIDC issuers, or SPIFFE JWT-SVIDs.
func (id *Identity) Credentials() bool {
	return id.Audience != "" || len(id.OIDC) > 0 || id.SPIFFE != nil
}

// OIDCIssuer is an OpenID Connect issuer whose tokens act as agents.
type OIDCIssuer struct {
	Issuer   string     `yaml:"issuer"`
	JWKSFile string     `yaml:"jwks_file"`
	JWKSURL  string     `yaml:"jwks_url"`
	Audience string     `yaml:"audience"`
	Claims   OIDCClaims `yaml:"claims"`
}

// OIDCClaims name the token claims holding the agent id (default sub) and
// the principal.
type OIDCClaims struct {
	Agent string `yaml:"agent"`
	User  string `yaml:"user"`
	Team  string `yaml:"team"`
	Org   string `yaml:"org"`
}

// SPIFFE is the trust domain whose JWT-SVIDs are taken.
type SPIFFE struct {
	TrustDomain string `yaml:"trust_domain"`
	BundleFile  string `yaml:"bundle_file"`
}

const (
	maxJWTLifetime = 5 * time.Minute
	maxLeeway      = 5 * time.Minute
)

func (c *Config) validateIdentity() error {
	bad := func(key, format string, args ...any) error {
		return &Error{Key: "identity." + key, Msg: fmt.Sprintf(format, args...)}
	}
	id := c.Identity
	if d := id.MaxLifetime; d < 0 || d > maxJWTLifetime {
		return bad("max_lifetime", "want a duration up to %v, got %v", maxJWTLifetime, d)
	}
	if d := id.Leeway; d < 0 || d > maxLeeway {
		return bad("leeway", "want a duration up to %v, got %v", maxLeeway, d)
	}
	if id.ReplayCache < 0 {
		return bad("replay_cache", "must not be negative")
	}
	if id.MaxDelegationTTL < 0 {
		return bad("max_delegation_ttl", "must not be negative")
	}
	if id.MaxDelegationDepth < 0 || id.MaxDelegationDepth > 16 {
		return bad("max_delegation_depth", "want 0 to 16, got %d", id.MaxDelegationDepth)
	}
	seen := map[string]bool{}
	for i, o := range id.OIDC {
		key := fmt.Sprintf("oidc[%d]", i)
		if u, err := url.Parse(o.Issuer); err != nil || u.Scheme == "" || u.Host == "" {
			return bad(key+".issuer", "want the issuer's URL, got %q", o.Issuer)
		}
		if seen[o.Issuer] {
			return bad(key+".issuer", "%s is configured twice", o.Issuer)
		}
		seen[o.Issuer] = true
		if (o.JWKSFile == "") == (o.JWKSURL == "") {
			return bad(key, "give exactly one of jwks_file or jwks_url")
		}
		if o.JWKSURL != "" {
			if u, err := url.Parse(o.JWKSURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
				return bad(key+".jwks_url", "want an http or https URL, got %q", o.JWKSURL)
			}
		}
		if o.Audience == "" {
			return bad(key+".audience", "required: the aud this server's tokens carry, so that a token minted for another service is refused")
		}
	}
	if s := id.SPIFFE; s != nil {
		if s.TrustDomain == "" {
			return bad("spiffe.trust_domain", "required")
		}
		if s.BundleFile == "" {
			return bad("spiffe.bundle_file", "required")
		}
		if id.Audience == "" {
			return bad("audience", "required with identity.spiffe: JWT-SVIDs must be addressed to this server")
		}
	}
	return nil
}
