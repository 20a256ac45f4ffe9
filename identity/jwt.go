package identity

import (
	"context"
	"crypto/ed25519"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/agentgov/agentgov/action"
)

// verifyAgentJWT checks a JWT an agent signed with a registered key
// (DESIGN §9): alg EdDSA, kid naming one of its keys, iss = sub = its id,
// aud the server's, iat, an exp at most MaxLifetime after iat, and a jti
// not seen before.
func (v *Verifier) verifyAgentJWT(ctx context.Context, tok string, claims unverified, now time.Time) (Subject, error) {
	const kind = action.CredentialJWT
	who := claims.Iss
	a := v.reg.get(who)
	if a == nil {
		return Subject{}, refuse(kind, Issuer, who, "issuer %q is neither a registered agent nor a configured OIDC issuer", who)
	}
	if v.opt.Audience == "" {
		return Subject{}, refuse(kind, Audience, who, "the server has no audience configured (identity.audience), so it takes no agent-signed JWTs")
	}
	var key Key
	p := jwt.NewParser(
		jwt.WithValidMethods([]string{"EdDSA"}),
		jwt.WithAudience(v.opt.Audience),
		jwt.WithIssuer(a.ID),
		jwt.WithSubject(a.ID),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(v.opt.Leeway),
		jwt.WithTimeFunc(v.opt.Clock),
	)
	var rc jwt.RegisteredClaims
	var keyErr *Refusal
	_, err := p.ParseWithClaims(tok, &rc, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		k, ok := a.Key(kid)
		if !ok {
			keyErr = refuse(kind, UnknownKey, who, "agent %s has no key %q", who, kid)
			return nil, keyErr
		}
		pub, err := ParsePublicKey(k.PublicKey)
		if err != nil {
			keyErr = refuse(kind, UnknownKey, who, "agent %s's key %q cannot be read", who, kid)
			return nil, keyErr
		}
		key = k
		return ed25519.PublicKey(pub), nil
	})
	if keyErr != nil {
		return Subject{}, keyErr
	}
	if err != nil {
		return Subject{}, jwtRefusal(kind, who, err)
	}
	// Revoked after the signature: a forged token learns nothing of the
	// registry's state.
	if a.Revoked() {
		return Subject{}, refuse(kind, Revoked, who, "agent %s was revoked at %s", who, a.RevokedAt.Format(time.RFC3339))
	}
	// golang-jwt takes a token naming this server among others; such a
	// token was shown to those others too, any of which could replay it
	// here first.
	for _, aud := range rc.Audience {
		if aud != v.opt.Audience {
			return Subject{}, refuse(kind, Audience, who, "the JWT is addressed to %q as well: aud must name this server alone", truncateClaim(aud))
		}
	}
	if len(a.Audiences) > 0 && !slices.Contains(a.Audiences, v.opt.Audience) {
		return Subject{}, refuse(kind, Audience, who, "agent %s may only address %v", who, a.Audiences)
	}
	if rc.IssuedAt == nil {
		return Subject{}, refuse(kind, Malformed, who, "the JWT has no iat")
	}
	exp := rc.ExpiresAt.Time
	if life := exp.Sub(rc.IssuedAt.Time); life > v.opt.MaxLifetime {
		return Subject{}, refuse(kind, Lifetime, who, "the JWT lives %s, longer than the %s allowed", life, v.opt.MaxLifetime)
	}
	if exp.Sub(now) > v.opt.MaxLifetime+v.opt.Leeway {
		return Subject{}, refuse(kind, Lifetime, who, "the JWT expires %s from now, later than the %s allowed", exp.Sub(now).Round(time.Second), v.opt.MaxLifetime)
	}
	if rc.ID == "" || len(rc.ID) > 256 {
		return Subject{}, refuse(kind, Malformed, who, "the JWT needs a jti of 1 to 256 characters")
	}
	// The replay check last, so that only a token that passed every other
	// check uses up its id.
	rkey := who + "\x00" + rc.ID
	if !v.replay.add(rkey, exp.Add(v.opt.Leeway), now) {
		return Subject{}, refuse(kind, Replayed, who, "jti %q was already used", rc.ID)
	}
	fresh, err := v.st.UseJTI(ctx, who, rc.ID, exp.Add(v.opt.Leeway), now)
	if err != nil {
		v.replay.forget(rkey)
		return Subject{}, &Refusal{Reason: Unavailable, Kind: kind, Subject: who, Msg: "the replay cache cannot be checked: " + err.Error(), Err: err}
	}
	if !fresh {
		return Subject{}, refuse(kind, Replayed, who, "jti %q was already used", rc.ID)
	}
	s := Subject{
		Agent: action.Agent{ID: a.ID, Type: a.Type, Labels: a.Labels,
			Credential: &action.Credential{Kind: kind, Subject: a.ID, Issuer: a.ID, Thumbprint: key.Thumbprint}},
		Principal: a.Principal,
		Expires:   exp,
	}
	return s, nil
}

// jwtRefusal names why golang-jwt refused a token.
func jwtRefusal(kind, who string, err error) *Refusal {
	r := func(reason Reason, msg string) *Refusal {
		return &Refusal{Reason: reason, Kind: kind, Subject: who, Msg: msg, Err: err}
	}
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return r(Malformed, "the JWT is malformed")
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		return r(Signature, "the JWT's signature does not verify (alg must be EdDSA, signed by the key its kid names)")
	case errors.Is(err, jwt.ErrTokenExpired):
		return r(Expired, "the JWT has expired")
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return r(NotYetValid, "the JWT is not valid yet")
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return r(Audience, "the JWT is not addressed to this server (aud)")
	case errors.Is(err, jwt.ErrTokenInvalidIssuer), errors.Is(err, jwt.ErrTokenInvalidSubject):
		return r(Issuer, "the JWT's iss and sub must both be the agent's id")
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return r(Malformed, "the JWT lacks a required claim (exp and aud are required)")
	}
	return r(Malformed, "the JWT is invalid: "+err.Error())
}

// replayCache remembers the JWT ids this process has seen, bounded; the
// store remembers them for every process. Forgetting one early costs only
// a trip to the store.
type replayCache struct {
	mu  sync.Mutex
	max int
	m   map[string]time.Time
}

func newReplayCache(max int) *replayCache {
	return &replayCache{max: max, m: make(map[string]time.Time)}
}

// add records k until exp; false when k is already there.
func (c *replayCache) add(k string, exp, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[k]; ok && now.Before(e) {
		return false
	}
	if len(c.m) >= c.max {
		for k, e := range c.m {
			if !now.Before(e) {
				delete(c.m, k)
			}
		}
		for k := range c.m {
			if len(c.m) < c.max*3/4 {
				break
			}
			delete(c.m, k)
		}
	}
	c.m[k] = exp
	return true
}

func (c *replayCache) forget(k string) {
	c.mu.Lock()
	delete(c.m, k)
	c.mu.Unlock()
}

// truncateClaim bounds a claim quoted back in a refusal.
func truncateClaim(s string) string {
	if len(s) > 128 {
		return s[:128] + "…"
	}
	return s
}
