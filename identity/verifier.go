package identity

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/agentgov/agentgov/action"
)

// Defaults of Options.
const (
	// DefaultMaxLifetime caps how far ahead of its iat an agent-signed
	// JWT's exp may be (DESIGN §9: 5 minutes).
	DefaultMaxLifetime = 5 * time.Minute
	// DefaultLeeway is the clock skew allowed between agents and server.
	DefaultLeeway = 30 * time.Second
	// DefaultReplayCache bounds the JWT ids kept in memory; the store
	// keeps them all until they expire.
	DefaultReplayCache = 100_000
	// DefaultTokenCache bounds the reusable tokens (OIDC, SPIFFE,
	// delegation) whose verification is kept until they expire.
	DefaultTokenCache = 10_000
	// DefaultMaxDelegationTTL caps a delegation's expires_in.
	DefaultMaxDelegationTTL = 24 * time.Hour
	// DefaultMaxDelegationDepth caps a top-level delegation's max_depth.
	DefaultMaxDelegationDepth = 4
)

// DelegationPrefix starts every delegation token.
const DelegationPrefix = "agd_"

// Options set up a Verifier.
type Options struct {
	// Audience is the server's own audience: agent-signed JWTs and SPIFFE
	// JWT-SVIDs must name it in aud. Empty refuses both.
	Audience string
	// MaxLifetime, Leeway, ReplayCache, TokenCache, MaxDelegationTTL and
	// MaxDelegationDepth default to the constants above when 0.
	MaxLifetime        time.Duration
	Leeway             time.Duration
	ReplayCache        int
	TokenCache         int
	MaxDelegationTTL   time.Duration
	MaxDelegationDepth int
	OIDC               []OIDCIssuer
	SPIFFE             *SPIFFE
	// HTTPClient fetches OIDC JWKS from jwks_url; http.DefaultClient when
	// nil.
	HTTPClient *http.Client
	Clock      func() time.Time
}

// Subject is a verified credential: who acts, on whose behalf, until when.
type Subject struct {
	// Agent carries the credential (Agent.Credential) and the delegation
	// chain it acts under.
	Agent     action.Agent
	Principal action.Principal
	// Expires is when the credential stops being accepted.
	Expires time.Time
}

// Verifier turns a bearer credential that is not a static token into a
// Subject, or a Refusal saying why not.
type Verifier struct {
	reg    *Registry
	st     Store
	opt    Options
	oidc   map[string]*oidcIssuer
	spiffe *spiffeSource
	replay *replayCache
	cache  *tokenCache
}

// NewVerifier builds a Verifier over the registry and the store; it loads
// the OIDC issuers' key files and the SPIFFE bundle, refusing a start with
// one that cannot be read.
func NewVerifier(ctx context.Context, reg *Registry, st Store, opt Options) (*Verifier, error) {
	if opt.MaxLifetime == 0 {
		opt.MaxLifetime = DefaultMaxLifetime
	}
	if opt.Leeway == 0 {
		opt.Leeway = DefaultLeeway
	}
	if opt.ReplayCache == 0 {
		opt.ReplayCache = DefaultReplayCache
	}
	if opt.TokenCache == 0 {
		opt.TokenCache = DefaultTokenCache
	}
	if opt.MaxDelegationTTL == 0 {
		opt.MaxDelegationTTL = DefaultMaxDelegationTTL
	}
	if opt.MaxDelegationDepth == 0 {
		opt.MaxDelegationDepth = DefaultMaxDelegationDepth
	}
	if opt.Clock == nil {
		opt.Clock = time.Now
	}
	if opt.HTTPClient == nil {
		opt.HTTPClient = http.DefaultClient
	}
	v := &Verifier{reg: reg, st: st, opt: opt, oidc: map[string]*oidcIssuer{},
		replay: newReplayCache(opt.ReplayCache), cache: newTokenCache(opt.TokenCache)}
	for i, o := range opt.OIDC {
		is, err := newOIDCIssuer(ctx, o, opt)
		if err != nil {
			return nil, fmt.Errorf("identity.oidc[%d]: %w", i, err)
		}
		v.oidc[o.Issuer] = is
	}
	if opt.SPIFFE != nil {
		s, err := newSPIFFESource(*opt.SPIFFE)
		if err != nil {
			return nil, fmt.Errorf("identity.spiffe: %w", err)
		}
		v.spiffe = s
	}
	return v, nil
}

// Registry is the registry the Verifier checks agents against.
func (v *Verifier) Registry() *Registry { return v.reg }

// IsCredential reports whether tok has the shape of a credential the
// Verifier reads (a JWT, a delegation token), rather than a static token.
func IsCredential(tok string) bool {
	if strings.HasPrefix(tok, DelegationPrefix) {
		return true
	}
	return strings.Count(tok, ".") == 2 && strings.HasPrefix(tok, "eyJ")
}

// unverified are the claims read before any check, to route the token.
type unverified struct {
	Iss string `json:"iss"`
	Sub string `json:"sub"`
}

// Verify checks a credential. Every error is a *Refusal.
func (v *Verifier) Verify(ctx context.Context, tok string) (Subject, error) {
	return v.VerifySum(ctx, tok, sha256.Sum256([]byte(tok)))
}

// VerifySum is Verify for a caller that has the token's SHA-256 already
// (the server hashes every token to look up the static ones).
func (v *Verifier) VerifySum(ctx context.Context, tok string, sum [32]byte) (Subject, error) {
	now := v.opt.Clock()
	if s, ok := v.cache.get(sum, now); ok {
		if err := v.stillValid(&s); err != nil {
			return Subject{}, err
		}
		return s, nil
	}
	if strings.HasPrefix(tok, DelegationPrefix) {
		return v.verifyDelegation(ctx, tok, sum, now)
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return Subject{}, refuse("", Malformed, "", "not a JWT (want three dot-separated parts)")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	var claims unverified
	if err == nil {
		err = json.Unmarshal(payload, &claims)
	}
	if err != nil {
		return Subject{}, refuse("", Malformed, "", "the JWT's claims are not base64url JSON")
	}
	if is, ok := v.oidc[claims.Iss]; ok {
		s, err := is.verify(ctx, tok, v.reg)
		if err != nil {
			return Subject{}, err
		}
		v.cache.put(sum, s)
		return s, nil
	}
	if strings.HasPrefix(claims.Sub, "spiffe://") {
		if v.spiffe == nil {
			return Subject{}, refuse(action.CredentialSPIFFE, ForeignTrustDomain, claims.Sub, "no SPIFFE trust domain is configured (identity.spiffe)")
		}
		s, err := v.spiffe.verify(tok, v.opt.Audience, v.reg)
		if err != nil {
			return Subject{}, err
		}
		v.cache.put(sum, s)
		return s, nil
	}
	return v.verifyAgentJWT(ctx, tok, claims, now)
}

// stillValid checks what may have changed since a cached credential was
// verified: a revocation of its agent or of any delegator in its chain.
func (v *Verifier) stillValid(s *Subject) error {
	if a := v.reg.get(s.Agent.ID); a != nil && a.Revoked() {
		return refuse(s.Agent.Credential.Kind, Revoked, s.Agent.ID, "agent %s was revoked at %s", a.ID, a.RevokedAt.Format(time.RFC3339))
	}
	for _, l := range s.Agent.Delegation {
		if a := v.reg.get(l.Agent); a != nil && a.Revoked() {
			return refuse(s.Agent.Credential.Kind, Revoked, s.Agent.ID, "delegator %s of delegation %s was revoked", a.ID, l.ID)
		}
	}
	return nil
}

// registered fills the agent's registered attributes into s, refusing a
// revoked one. An agent the registry does not know keeps what the
// credential said of it.
func (r *Registry) fill(s *Subject, kind string) error {
	a := r.get(s.Agent.ID)
	if a == nil {
		return nil
	}
	if a.Revoked() {
		return refuse(kind, Revoked, s.Agent.ID, "agent %s was revoked at %s", a.ID, a.RevokedAt.Format(time.RFC3339))
	}
	s.Agent.Type, s.Agent.Labels = a.Type, a.Labels
	if s.Principal == (action.Principal{}) {
		s.Principal = a.Principal
	}
	return nil
}

// tokenCache keeps verified reusable credentials until they expire, so
// that a reused token costs a hash and a map look-up, not a signature.
type tokenCache struct {
	mu  sync.RWMutex
	max int
	m   map[[32]byte]Subject
}

func newTokenCache(max int) *tokenCache {
	return &tokenCache{max: max, m: make(map[[32]byte]Subject)}
}

func (c *tokenCache) get(k [32]byte, now time.Time) (Subject, bool) {
	c.mu.RLock()
	s, ok := c.m[k]
	c.mu.RUnlock()
	if !ok || !now.Before(s.Expires) {
		return Subject{}, false
	}
	return s, true
}

func (c *tokenCache) put(k [32]byte, s Subject) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		// Full: drop entries at random (map order); a dropped one is only
		// verified again.
		n := len(c.m) / 4
		for k := range c.m {
			if n--; n < 0 {
				break
			}
			delete(c.m, k)
		}
	}
	c.m[k] = s
}

// HashToken is how delegation tokens are kept: the hex SHA-256.
func HashToken(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:])
}

var errStop = errors.New("stop")
