// Package identity is who an agent is and how it proves it: the agent
// registry's records (ids, Ed25519 public keys and their RFC 7638
// thumbprints, SPIFFE ids, revocation), and the verification of the
// credentials of DESIGN §9 (agent-signed EdDSA JWTs with a replay cache,
// OIDC tokens of configured issuers, SPIFFE JWT-SVIDs, and delegation
// tokens that only narrow) into one verified Subject. It keeps no storage
// of its own: Store is what it needs of a backend (store/sqlite,
// store/postgres).
package identity

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/agentgov/agentgov/action"
)

// Errors of the registry.
var (
	ErrNotFound = errors.New("agent not found")
	ErrExists   = errors.New("agent already registered")
	ErrInvalid  = errors.New("invalid agent")
)

// Key is one public key of an agent.
type Key struct {
	// KID names the key in a JWT's header.
	KID string `json:"kid"`
	// PublicKey is the raw 32-byte Ed25519 key in unpadded base64url (a
	// JWK's x).
	PublicKey string `json:"public_key"`
	// Thumbprint is the key's RFC 7638 JWK thumbprint (SHA-256, unpadded
	// base64url); computed, never taken from a request.
	Thumbprint string `json:"thumbprint"`
}

// Agent is a registered agent.
type Agent struct {
	ID        string            `json:"id"`
	Type      string            `json:"type,omitempty"`
	Labels    map[string]string `json:"labels,omitempty"`
	Principal action.Principal  `json:"principal,omitzero"`
	// Ring is the ring of privilege the agent is registered in (0 most
	// privileged).
	Ring int   `json:"ring"`
	Keys []Key `json:"keys,omitempty"`
	// SPIFFEID is the SPIFFE ID whose JWT-SVIDs act as this agent.
	SPIFFEID string `json:"spiffe_id,omitempty"`
	// Audiences, when set, are the only audiences the agent's JWTs may
	// name (each must still be the server's).
	Audiences []string `json:"audiences,omitempty"`
	// Owner is who registered the agent (the admin token's name).
	Owner     string     `json:"owner,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
}

// Revoked reports whether the agent is revoked.
func (a *Agent) Revoked() bool { return a.RevokedAt != nil }

// Key returns the agent's key named kid.
func (a *Agent) Key(kid string) (Key, bool) {
	for _, k := range a.Keys {
		if k.KID == kid {
			return k, true
		}
	}
	return Key{}, false
}

var (
	agentID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$`)
	kidRe   = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,64}$`)
)

// MaxRing is the least privileged ring.
const MaxRing = 3

// Validate checks a registration and computes the keys' thumbprints. It
// says which field is wrong.
func (a *Agent) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
	}
	if !agentID.MatchString(a.ID) {
		return bad("id: use 1 to 128 letters, digits and . _ : @ - (starting with a letter or digit), got %q", a.ID)
	}
	if a.Ring < 0 || a.Ring > MaxRing {
		return bad("ring: want 0 to %d, got %d", MaxRing, a.Ring)
	}
	if len(a.Keys) == 0 && a.SPIFFEID == "" {
		return bad("keys: an agent needs at least one key, or a spiffe_id")
	}
	if len(a.Keys) > 16 {
		return bad("keys: at most 16 keys, got %d", len(a.Keys))
	}
	seen := map[string]bool{}
	for i := range a.Keys {
		k := &a.Keys[i]
		if !kidRe.MatchString(k.KID) {
			return bad("keys[%d].kid: use 1 to 64 letters, digits and . _ : -, got %q", i, k.KID)
		}
		if seen[k.KID] {
			return bad("keys[%d].kid: %q is given twice", i, k.KID)
		}
		seen[k.KID] = true
		pub, err := ParsePublicKey(k.PublicKey)
		if err != nil {
			return bad("keys[%d].public_key: %v", i, err)
		}
		k.Thumbprint = Thumbprint(pub)
	}
	if a.SPIFFEID != "" && !strings.HasPrefix(a.SPIFFEID, "spiffe://") {
		return bad("spiffe_id: want spiffe://trust-domain/path, got %q", a.SPIFFEID)
	}
	return nil
}

// ParsePublicKey reads an Ed25519 public key: the raw 32 bytes in
// unpadded base64url.
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil, errors.New("not unpadded base64url")
	}
	if len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("an Ed25519 public key is %d bytes, got %d", ed25519.PublicKeySize, len(b))
	}
	return ed25519.PublicKey(b), nil
}

// EncodePublicKey writes an Ed25519 public key as ParsePublicKey reads it.
func EncodePublicKey(pub ed25519.PublicKey) string {
	return base64.RawURLEncoding.EncodeToString(pub)
}

// Thumbprint is the RFC 7638 thumbprint of an Ed25519 key: the SHA-256 of
// its JWK's required members in lexicographic order, without whitespace
// (RFC 8037 §2), in unpadded base64url.
func Thumbprint(pub ed25519.PublicKey) string {
	jwk := `{"crv":"Ed25519","kty":"OKP","x":"` + EncodePublicKey(pub) + `"}`
	sum := sha256.Sum256([]byte(jwk))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// Store is what identity keeps in a backend: the registry, the JWT ids
// seen, and the delegations issued. Several replicas sharing one store
// share all three.
type Store interface {
	// CreateAgent registers a; ErrExists when its id is taken (revoked
	// ids included: an id is never reused).
	CreateAgent(ctx context.Context, a Agent) error
	// ListAgents returns every agent, revoked ones included, by id.
	ListAgents(ctx context.Context) ([]Agent, error)
	// RevokeAgent marks id revoked at at and returns it; ErrNotFound when
	// no such agent. Revoking a revoked agent keeps its first time.
	RevokeAgent(ctx context.Context, id string, at time.Time) (Agent, error)
	// UseJTI records that issuer used jti, kept until expires; fresh is
	// false when it was recorded before (a replay). Entries past their
	// expiry at now may be forgotten.
	UseJTI(ctx context.Context, issuer, jti string, expires, now time.Time) (fresh bool, err error)
	// PutDelegation keeps a delegation under the SHA-256 (hex) of its
	// token.
	PutDelegation(ctx context.Context, tokenHash string, d Delegation) error
	// GetDelegation returns the delegation of a token's hash; ErrNotFound
	// when none.
	GetDelegation(ctx context.Context, tokenHash string) (Delegation, error)
}

// Delegation is an issued delegation: its chain, outermost first, whose
// last link names the sub-agent.
type Delegation struct {
	Chain []action.Delegation `json:"chain"`
	// Principal is whom the chain's first agent acted for; every
	// delegate acts for the same.
	Principal action.Principal `json:"principal,omitzero"`
}

// Last is the delegation's own link.
func (d *Delegation) Last() *action.Delegation { return &d.Chain[len(d.Chain)-1] }
