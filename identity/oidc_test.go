package identity_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/identity"
)

// issuerKeys is an identity provider's signing keys, served as its JWKS.
type issuerKeys struct {
	mu   sync.Mutex
	keys map[string]*rsa.PrivateKey
}

func (k *issuerKeys) add(t *testing.T, kid string) {
	t.Helper()
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.keys == nil {
		k.keys = map[string]*rsa.PrivateKey{}
	}
	k.keys[kid] = priv
}

func (k *issuerKeys) jwks() []byte {
	k.mu.Lock()
	defer k.mu.Unlock()
	var set jose.JSONWebKeySet
	for kid, p := range k.keys {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: &p.PublicKey, KeyID: kid, Algorithm: "RS256", Use: "sig"})
	}
	b, _ := json.Marshal(set)
	return b
}

func (k *issuerKeys) sign(t *testing.T, kid string, claims jwt.MapClaims) string {
	t.Helper()
	k.mu.Lock()
	priv := k.keys[kid]
	k.mu.Unlock()
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	tok.Header["kid"] = kid
	s, err := tok.SignedString(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// An OIDC flow against a JWKS the test serves: the token's claims name the
// agent and its principal; refusals name why; a rotated key is fetched.
func TestOIDCTokensFromAServedJWKS(t *testing.T) {
	keys := &issuerKeys{}
	keys.add(t, "r1")
	var fetches int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches++
		w.Header().Set("Content-Type", "application/json")
		w.Write(keys.jwks())
	}))
	defer srv.Close()
	const iss = "https://idp.example.test"
	f := newFixture(t, identity.Options{OIDC: []identity.OIDCIssuer{{
		Issuer: iss, JWKSURL: srv.URL, Audience: "agentgov",
		Claims: identity.OIDCClaims{Agent: "agent_id", User: "email", Team: "team"},
	}}})
	f.now = time.Now() // go-oidc checks expiry against this clock
	claims := func(edit func(jwt.MapClaims)) jwt.MapClaims {
		c := jwt.MapClaims{"iss": iss, "sub": "svc-123", "aud": "agentgov", "agent_id": "platform-bot",
			"email": "bob@example.test", "team": "infra", "iat": f.now.Unix(), "exp": f.now.Add(time.Hour).Unix()}
		if edit != nil {
			edit(c)
		}
		return c
	}
	tok := keys.sign(t, "r1", claims(nil))
	s, err := f.v.Verify(bg, tok)
	if err != nil {
		t.Fatal(err)
	}
	c := s.Agent.Credential
	if s.Agent.ID != "platform-bot" || s.Principal.User != "bob@example.test" || s.Principal.Team != "infra" ||
		c.Kind != action.CredentialOIDC || c.Subject != "svc-123" || c.Issuer != iss {
		t.Fatalf("subject %+v credential %+v", s, c)
	}
	// Reused: answered from the cache, and no token is replay-checked.
	if _, err := f.v.Verify(bg, tok); err != nil {
		t.Fatalf("the same OIDC token again: %v", err)
	}

	for _, tc := range []struct {
		name   string
		tok    string
		reason identity.Reason
	}{
		{"expired", keys.sign(t, "r1", claims(func(c jwt.MapClaims) { c["exp"] = f.now.Add(-time.Minute).Unix() })), identity.Expired},
		{"wrong audience", keys.sign(t, "r1", claims(func(c jwt.MapClaims) { c["aud"] = "another-service" })), identity.Audience},
		{"no agent claim", keys.sign(t, "r1", claims(func(c jwt.MapClaims) { delete(c, "agent_id") })), identity.Malformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.v.Verify(bg, tc.tok)
			wantRefusal(t, err, tc.reason)
		})
	}
	t.Run("forged: signed by a key the issuer does not publish", func(t *testing.T) {
		rogue := &issuerKeys{}
		rogue.add(t, "r1")
		_, err := f.v.Verify(bg, rogue.sign(t, "r1", claims(nil)))
		wantRefusal(t, err, identity.Signature)
	})
	t.Run("a rotated key is fetched when a token names it", func(t *testing.T) {
		keys.add(t, "r2")
		before := fetches
		if _, err := f.v.Verify(bg, keys.sign(t, "r2", claims(nil))); err != nil {
			t.Fatal(err)
		}
		if fetches == before {
			t.Fatal("the JWKS was not fetched again for the new key")
		}
	})
	t.Run("a revoked registered agent", func(t *testing.T) {
		pub, _, _ := ed25519Key()
		if _, err := f.reg.Register(bg, identity.Agent{ID: "platform-bot", Keys: []identity.Key{{KID: "k", PublicKey: pub}}}, "ops"); err != nil {
			t.Fatal(err)
		}
		if _, err := f.reg.Revoke(bg, "platform-bot"); err != nil {
			t.Fatal(err)
		}
		// The cached token too.
		_, err := f.v.Verify(bg, tok)
		wantRefusal(t, err, identity.Revoked)
	})
}

// A JWKS in a file is read again when the file changes.
func TestOIDCKeysFromAFileAreRotated(t *testing.T) {
	keys := &issuerKeys{}
	keys.add(t, "f1")
	path := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(path, keys.jwks(), 0o644); err != nil {
		t.Fatal(err)
	}
	const iss = "https://idp.file.test"
	f := newFixture(t, identity.Options{OIDC: []identity.OIDCIssuer{{Issuer: iss, JWKSFile: path, Audience: "agentgov"}}})
	f.now = time.Now()
	claims := jwt.MapClaims{"iss": iss, "sub": "worker-7", "aud": "agentgov", "exp": f.now.Add(time.Hour).Unix()}
	if _, err := f.v.Verify(bg, keys.sign(t, "f1", claims)); err != nil {
		t.Fatal(err)
	}
	next := &issuerKeys{}
	next.add(t, "f2")
	_, err := f.v.Verify(bg, next.sign(t, "f2", claims))
	wantRefusal(t, err, identity.Signature)
	if err := os.WriteFile(path, next.jwks(), 0o644); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Second)
	os.Chtimes(path, later, later)
	claims["jti"] = "x" // another token
	if _, err := f.v.Verify(bg, next.sign(t, "f2", claims)); err != nil {
		t.Fatalf("after rotation: %v", err)
	}
}

func TestOIDCIssuersNeedKeysAndAnAudience(t *testing.T) {
	for _, o := range []identity.OIDCIssuer{
		{Issuer: "https://i", Audience: "a"},
		{Issuer: "https://i", JWKSFile: "/nonexistent/jwks.json", Audience: "a"},
		{Issuer: "https://i", JWKSURL: "https://i/jwks", JWKSFile: "x", Audience: "a"},
	} {
		st := newFixture(t, identity.Options{}).st
		reg, _ := identity.NewRegistry(bg, st, nil)
		if _, err := identity.NewVerifier(bg, reg, st, identity.Options{OIDC: []identity.OIDCIssuer{o}}); err == nil {
			t.Errorf("%+v was taken", o)
		}
	}
}

// spiffeAuthority is a trust domain's JWT signing key and its bundle.
type spiffeAuthority struct {
	kid  string
	priv *ecdsa.PrivateKey
}

func newAuthority(t *testing.T, kid string) spiffeAuthority {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return spiffeAuthority{kid: kid, priv: priv}
}

func (a spiffeAuthority) bundle(t *testing.T) string {
	b, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &a.priv.PublicKey, KeyID: a.kid, Use: "jwt-svid"}}})
	path := filepath.Join(t.TempDir(), "bundle.jwks")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func (a spiffeAuthority) svid(t *testing.T, sub, aud string, exp time.Time) string {
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{"sub": sub, "aud": []string{aud}, "exp": exp.Unix(), "iat": time.Now().Unix()})
	tok.Header["kid"] = a.kid
	s, err := tok.SignedString(a.priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSPIFFEJWTSVIDs(t *testing.T) {
	ours := newAuthority(t, "td1")
	f := newFixture(t, identity.Options{SPIFFE: &identity.SPIFFE{TrustDomain: "example.org", BundleFile: ours.bundle(t)}})
	pub, _, _ := ed25519Key()
	if _, err := f.reg.Register(bg, identity.Agent{ID: "coder", SPIFFEID: "spiffe://example.org/agents/coder", Keys: []identity.Key{{KID: "k", PublicKey: pub}}}, "ops"); err != nil {
		t.Fatal(err)
	}
	const aud = "https://agentgov.test"
	s, err := f.v.Verify(bg, ours.svid(t, "spiffe://example.org/agents/coder", aud, time.Now().Add(time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	if s.Agent.ID != "coder" || s.Agent.Credential.Kind != action.CredentialSPIFFE || s.Agent.Credential.Subject != "spiffe://example.org/agents/coder" || s.Agent.Credential.Issuer != "spiffe://example.org" {
		t.Fatalf("%+v %+v", s, s.Agent.Credential)
	}
	foreign := newAuthority(t, "td1")
	for _, tc := range []struct {
		name   string
		tok    string
		reason identity.Reason
	}{
		{"foreign trust domain", foreign.svid(t, "spiffe://evil.org/agents/coder", aud, time.Now().Add(time.Hour)), identity.ForeignTrustDomain},
		{"forged in our trust domain", foreign.svid(t, "spiffe://example.org/agents/coder", aud, time.Now().Add(time.Hour)), identity.Signature},
		{"expired", ours.svid(t, "spiffe://example.org/agents/coder", aud, time.Now().Add(-time.Hour)), identity.Expired},
		{"wrong audience", ours.svid(t, "spiffe://example.org/agents/coder", "https://other.test", time.Now().Add(time.Hour)), identity.Audience},
		{"an ID the registry does not map", ours.svid(t, "spiffe://example.org/agents/stranger", aud, time.Now().Add(time.Hour)), identity.UnknownAgent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.v.Verify(bg, tc.tok)
			wantRefusal(t, err, tc.reason)
		})
	}
}
