package identity

import (
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-jose/go-jose/v4"

	"github.com/agentgov/agentgov/action"
)

// OIDCIssuer is an OpenID Connect issuer whose access or ID tokens act as
// agents (identity.oidc).
type OIDCIssuer struct {
	Issuer string
	// JWKSFile or JWKSURL is where the issuer's keys are: a file read
	// again when it changes, or a URL fetched again when a token names a
	// key it does not hold (go-oidc's remote key set).
	JWKSFile string
	JWKSURL  string
	// Audience a token must carry in aud.
	Audience string
	// Claims name the claims that hold the agent id (default sub) and the
	// principal's user, team and org (read when named).
	Claims OIDCClaims
}

// OIDCClaims names a token's claims.
type OIDCClaims struct {
	Agent, User, Team, Org string
}

// oidcAlgs are the signature algorithms taken from OIDC issuers.
var oidcAlgs = []string{oidc.RS256, oidc.ES256, oidc.EdDSA}

type oidcIssuer struct {
	cfg OIDCIssuer
	v   *oidc.IDTokenVerifier
}

func newOIDCIssuer(ctx context.Context, o OIDCIssuer, opt Options) (*oidcIssuer, error) {
	var ks oidc.KeySet
	switch {
	case o.JWKSFile != "" && o.JWKSURL != "":
		return nil, errors.New("give jwks_file or jwks_url, not both")
	case o.JWKSFile != "":
		f := &fileKeySet{path: o.JWKSFile}
		if err := f.load(); err != nil {
			return nil, err
		}
		ks = f
	case o.JWKSURL != "":
		// The remote key set fetches with the context it was made with,
		// which must outlive this start.
		ks = oidc.NewRemoteKeySet(oidc.ClientContext(context.WithoutCancel(ctx), opt.HTTPClient), o.JWKSURL)
	default:
		return nil, errors.New("give jwks_file or jwks_url")
	}
	if o.Audience == "" {
		return nil, errors.New("audience: required, so that a token minted for another service is not taken here")
	}
	if o.Claims.Agent == "" {
		o.Claims.Agent = "sub"
	}
	v := oidc.NewVerifier(o.Issuer, ks, &oidc.Config{
		ClientID: o.Audience, SupportedSigningAlgs: oidcAlgs, Now: opt.Clock,
	})
	return &oidcIssuer{cfg: o, v: v}, nil
}

func (is *oidcIssuer) verify(ctx context.Context, tok string, reg *Registry) (Subject, error) {
	const kind = action.CredentialOIDC
	t, err := is.v.Verify(ctx, tok)
	if err != nil {
		return Subject{}, oidcRefusal(err)
	}
	var claims map[string]any
	if err := t.Claims(&claims); err != nil {
		return Subject{}, refuse(kind, Malformed, t.Subject, "the token's claims cannot be read")
	}
	str := func(name string) string {
		if name == "" {
			return ""
		}
		s, _ := claims[name].(string)
		return s
	}
	id := str(is.cfg.Claims.Agent)
	if !agentID.MatchString(id) {
		return Subject{}, refuse(kind, Malformed, t.Subject, "claim %q does not hold an agent id", is.cfg.Claims.Agent)
	}
	s := Subject{
		Agent:     action.Agent{ID: id, Credential: &action.Credential{Kind: kind, Subject: t.Subject, Issuer: t.Issuer}},
		Principal: action.Principal{User: str(is.cfg.Claims.User), Team: str(is.cfg.Claims.Team), Org: str(is.cfg.Claims.Org)},
		Expires:   t.Expiry,
	}
	if err := reg.fill(&s, kind); err != nil {
		return Subject{}, err
	}
	return s, nil
}

func oidcRefusal(err error) *Refusal {
	const kind = action.CredentialOIDC
	msg := err.Error()
	r := func(reason Reason, m string) *Refusal { return &Refusal{Reason: reason, Kind: kind, Msg: m, Err: err} }
	var te *oidc.TokenExpiredError
	switch {
	case errors.As(err, &te):
		return r(Expired, "the token expired at "+te.Expiry.UTC().Format(time.RFC3339))
	case strings.Contains(msg, "audience"):
		return r(Audience, "the token is not addressed to this server (aud)")
	case strings.Contains(msg, "different provider"):
		return r(Issuer, "the token's issuer is not the configured one")
	case strings.Contains(msg, "nbf"):
		return r(NotYetValid, "the token is not valid yet")
	case strings.Contains(msg, "verify signature"), strings.Contains(msg, "signing algorithm"), strings.Contains(msg, "unsupported"):
		return r(Signature, "the token's signature does not verify against the issuer's keys")
	case strings.Contains(msg, "fetching keys"), strings.Contains(msg, "Request to endpoint"):
		return r(Unavailable, "the issuer's keys cannot be fetched")
	}
	return r(Malformed, "the token is invalid: "+msg)
}

// fileKeySet is an issuer's JWKS kept in a file, read again when the file
// changes (a rotation), so that a new key is taken without a restart.
type fileKeySet struct {
	path string
	mu   sync.Mutex
	mod  time.Time
	size int64
	keys *oidc.StaticKeySet
}

func (f *fileKeySet) load() error {
	fi, err := os.Stat(f.path)
	if err != nil {
		return fmt.Errorf("jwks_file: %w", err)
	}
	if f.keys != nil && fi.ModTime().Equal(f.mod) && fi.Size() == f.size {
		return nil
	}
	b, err := os.ReadFile(f.path)
	if err != nil {
		return fmt.Errorf("jwks_file: %w", err)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(b, &set); err != nil {
		return fmt.Errorf("jwks_file %s: not a JWK set: %w", f.path, err)
	}
	var pubs []crypto.PublicKey
	for _, k := range set.Keys {
		if k.IsPublic() {
			pubs = append(pubs, k.Key)
		}
	}
	if len(pubs) == 0 {
		return fmt.Errorf("jwks_file %s: no public keys", f.path)
	}
	f.keys, f.mod, f.size = &oidc.StaticKeySet{PublicKeys: pubs}, fi.ModTime(), fi.Size()
	return nil
}

// VerifySignature implements oidc.KeySet.
func (f *fileKeySet) VerifySignature(ctx context.Context, jwt string) ([]byte, error) {
	f.mu.Lock()
	err := f.load()
	keys := f.keys
	f.mu.Unlock()
	if err != nil && keys == nil {
		return nil, err
	}
	return keys.VerifySignature(ctx, jwt)
}
