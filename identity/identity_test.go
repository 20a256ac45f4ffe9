package identity_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/identity"
	"github.com/agentgov/agentgov/store/sqlite"
)

var bg = context.Background()

// RFC 8037 appendix A: the Ed25519 key, its RFC 7638 thumbprint, and the
// JWS of "Example of Ed25519 signing".
const (
	rfcD          = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"
	rfcX          = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
	rfcThumbprint = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
	rfcJWS        = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"
)

func TestRFC8037Vectors(t *testing.T) {
	seed, err := base64.RawURLEncoding.DecodeString(rfcD)
	if err != nil {
		t.Fatal(err)
	}
	priv := ed25519.NewKeyFromSeed(seed)
	pub := priv.Public().(ed25519.PublicKey)
	if got := identity.EncodePublicKey(pub); got != rfcX {
		t.Fatalf("public key %s, want %s", got, rfcX)
	}
	if got := identity.Thumbprint(pub); got != rfcThumbprint {
		t.Fatalf("thumbprint %s, want %s (RFC 8037 A.3)", got, rfcThumbprint)
	}
	parsed, err := identity.ParsePublicKey(rfcX)
	if err != nil {
		t.Fatal(err)
	}
	// A.4: the signature verifies with the EdDSA method the agent JWTs
	// are checked with, and signing again gives it byte for byte.
	input, sig := rfcJWS[:len(rfcJWS)-87], rfcJWS[len(rfcJWS)-86:]
	rawSig, _ := base64.RawURLEncoding.DecodeString(sig)
	if err := jwt.SigningMethodEdDSA.Verify(input, rawSig, parsed); err != nil {
		t.Fatalf("RFC 8037 A.4 signature does not verify: %v", err)
	}
	again, err := jwt.SigningMethodEdDSA.Sign(input, priv)
	if err != nil || base64.RawURLEncoding.EncodeToString(again) != sig {
		t.Fatalf("signing A.4 again gave %x, %v", again, err)
	}
	rawSig[0] ^= 1
	if err := jwt.SigningMethodEdDSA.Verify(input, rawSig, parsed); err == nil {
		t.Fatal("a flipped bit verified")
	}
}

func TestPublicKeysAreRefusedUnlessRawEd25519(t *testing.T) {
	for _, bad := range []string{"", "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo=", "AAAA", "not base64!"} {
		if _, err := identity.ParsePublicKey(bad); err == nil {
			t.Errorf("%q was taken as a public key", bad)
		}
	}
}

// fixture is a registry and verifier over a real SQLite store, with a
// clock the test moves.
type fixture struct {
	st  *sqlite.DB
	reg *identity.Registry
	v   *identity.Verifier
	now time.Time
}

func newFixture(t testing.TB, opt identity.Options) *fixture {
	t.Helper()
	st, err := sqlite.OpenDir(bg, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f := &fixture{st: st, now: time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)}
	clock := func() time.Time { return f.now }
	if f.reg, err = identity.NewRegistry(bg, st, clock); err != nil {
		t.Fatal(err)
	}
	opt.Clock = clock
	if opt.Audience == "" {
		opt.Audience = "https://agentgov.test"
	}
	if f.v, err = identity.NewVerifier(bg, f.reg, st, opt); err != nil {
		t.Fatal(err)
	}
	return f
}

type agentKey struct {
	id, kid string
	priv    ed25519.PrivateKey
}

func (f *fixture) register(t *testing.T, id string) agentKey {
	t.Helper()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	if _, err := f.reg.Register(bg, identity.Agent{ID: id, Type: "assistant", Principal: action.Principal{User: "alice"},
		Keys: []identity.Key{{KID: "k1", PublicKey: identity.EncodePublicKey(pub)}}}, "ops"); err != nil {
		t.Fatal(err)
	}
	return agentKey{id: id, kid: "k1", priv: priv}
}

var jtiSeq int

// sign makes an agent JWT; edit changes its claims or header first.
func (k agentKey) sign(t *testing.T, now time.Time, edit func(c jwt.MapClaims, h map[string]any)) string {
	t.Helper()
	jtiSeq++
	c := jwt.MapClaims{"iss": k.id, "sub": k.id, "aud": "https://agentgov.test",
		"iat": now.Unix(), "exp": now.Add(2 * time.Minute).Unix(), "jti": "j" + string(rune('a'+jtiSeq%26)) + time.Now().Format("150405.000000000")}
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c)
	tok.Header["kid"] = k.kid
	if edit != nil {
		edit(c, tok.Header)
	}
	s, err := tok.SignedString(k.priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func wantRefusal(t *testing.T, err error, reason identity.Reason) {
	t.Helper()
	var r *identity.Refusal
	if !errors.As(err, &r) {
		t.Fatalf("got %v, want a refusal %s", err, reason)
	}
	if r.Reason != reason {
		t.Fatalf("refused %s (%s), want %s", r.Reason, r.Msg, reason)
	}
}

func TestAgentSignedJWTs(t *testing.T) {
	f := newFixture(t, identity.Options{})
	k := f.register(t, "researcher-1")
	other := f.register(t, "coder")

	s, err := f.v.Verify(bg, k.sign(t, f.now, nil))
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := f.reg.Get("researcher-1")
	c := s.Agent.Credential
	if s.Agent.ID != "researcher-1" || s.Agent.Type != "assistant" || s.Principal.User != "alice" ||
		c.Kind != action.CredentialJWT || c.Subject != "researcher-1" || c.Thumbprint != pub.Keys[0].Thumbprint || c.Thumbprint == "" {
		t.Fatalf("subject %+v credential %+v", s, c)
	}

	forged := func() string {
		_, priv, _ := ed25519.GenerateKey(rand.Reader)
		return agentKey{id: k.id, kid: k.kid, priv: priv}.sign(t, f.now, nil)
	}
	tampered := func() string {
		tok := k.sign(t, f.now, nil)
		// Another agent's claims under researcher-1's signature.
		o := other.sign(t, f.now, nil)
		parts, oparts := splitJWT(tok), splitJWT(o)
		return parts[0] + "." + oparts[1] + "." + parts[2]
	}
	cases := []struct {
		name   string
		tok    func() string
		reason identity.Reason
	}{
		{"forged: signed by a key that is not the agent's", forged, identity.Signature},
		{"claims swapped under a valid signature", tampered, identity.Signature},
		{"alg none", func() string {
			tok := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"iss": k.id, "sub": k.id, "aud": "https://agentgov.test", "iat": f.now.Unix(), "exp": f.now.Add(time.Minute).Unix(), "jti": "none"})
			tok.Header["kid"] = "k1"
			s, _ := tok.SignedString(jwt.UnsafeAllowNoneSignatureType)
			return s
		}, identity.Signature},
		{"expired", func() string {
			return k.sign(t, f.now, func(c jwt.MapClaims, _ map[string]any) {
				c["iat"], c["exp"] = f.now.Add(-4*time.Minute).Unix(), f.now.Add(-time.Minute).Unix()
			})
		}, identity.Expired},
		{"not yet valid", func() string {
			return k.sign(t, f.now, func(c jwt.MapClaims, _ map[string]any) {
				c["iat"], c["nbf"], c["exp"] = f.now.Unix(), f.now.Add(2*time.Minute).Unix(), f.now.Add(4*time.Minute).Unix()
			})
		}, identity.NotYetValid},
		{"issued in the future", func() string {
			return k.sign(t, f.now, func(c jwt.MapClaims, _ map[string]any) {
				c["iat"], c["exp"] = f.now.Add(2*time.Minute).Unix(), f.now.Add(4*time.Minute).Unix()
			})
		}, identity.NotYetValid},
		{"lives longer than five minutes", func() string {
			return k.sign(t, f.now, func(c jwt.MapClaims, _ map[string]any) { c["exp"] = f.now.Add(time.Hour).Unix() })
		}, identity.Lifetime},
		{"wrong audience", func() string {
			return k.sign(t, f.now, func(c jwt.MapClaims, _ map[string]any) { c["aud"] = "https://elsewhere.test" })
		}, identity.Audience},
		{"wrong issuer: an unknown agent", func() string {
			return k.sign(t, f.now, func(c jwt.MapClaims, _ map[string]any) { c["iss"], c["sub"] = "nobody", "nobody" })
		}, identity.Issuer},
		{"sub claims another agent", func() string {
			return k.sign(t, f.now, func(c jwt.MapClaims, _ map[string]any) { c["sub"] = "coder" })
		}, identity.Issuer},
		{"unknown key", func() string {
			return k.sign(t, f.now, func(_ jwt.MapClaims, h map[string]any) { h["kid"] = "k9" })
		}, identity.UnknownKey},
		{"no jti", func() string {
			return k.sign(t, f.now, func(c jwt.MapClaims, _ map[string]any) { delete(c, "jti") })
		}, identity.Malformed},
		{"no exp", func() string {
			return k.sign(t, f.now, func(c jwt.MapClaims, _ map[string]any) { delete(c, "exp") })
		}, identity.Malformed},
		{"no aud", func() string {
			return k.sign(t, f.now, func(c jwt.MapClaims, _ map[string]any) { delete(c, "aud") })
		}, identity.Malformed},
		{"not a JWT", func() string { return "eyJ.x.y" }, identity.Malformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.v.Verify(bg, tc.tok())
			wantRefusal(t, err, tc.reason)
		})
	}

	t.Run("replayed", func(t *testing.T) {
		tok := k.sign(t, f.now, nil)
		if _, err := f.v.Verify(bg, tok); err != nil {
			t.Fatal(err)
		}
		_, err := f.v.Verify(bg, tok)
		wantRefusal(t, err, identity.Replayed)
	})
	t.Run("replayed to another process sharing the store", func(t *testing.T) {
		tok := k.sign(t, f.now, nil)
		if _, err := f.v.Verify(bg, tok); err != nil {
			t.Fatal(err)
		}
		reg2, _ := identity.NewRegistry(bg, f.st, func() time.Time { return f.now })
		v2, _ := identity.NewVerifier(bg, reg2, f.st, identity.Options{Audience: "https://agentgov.test", Clock: func() time.Time { return f.now }})
		_, err := v2.Verify(bg, tok)
		wantRefusal(t, err, identity.Replayed)
	})
	t.Run("revoked", func(t *testing.T) {
		tok := k.sign(t, f.now, nil)
		if _, err := f.reg.Revoke(bg, "researcher-1"); err != nil {
			t.Fatal(err)
		}
		_, err := f.v.Verify(bg, tok)
		wantRefusal(t, err, identity.Revoked)
	})
}

func splitJWT(s string) [3]string {
	var out [3]string
	i := 0
	start := 0
	for j := 0; j < len(s); j++ {
		if s[j] == '.' {
			out[i] = s[start:j]
			i++
			start = j + 1
		}
	}
	out[2] = s[start:]
	return out
}

// A process that learns of a revocation through the store (another
// replica revoked) refuses from its next reload on.
func TestRevocationReachesAnotherProcessOnReload(t *testing.T) {
	f := newFixture(t, identity.Options{})
	k := f.register(t, "a1")
	reg2, _ := identity.NewRegistry(bg, f.st, func() time.Time { return f.now })
	v2, _ := identity.NewVerifier(bg, reg2, f.st, identity.Options{Audience: "https://agentgov.test", Clock: func() time.Time { return f.now }})
	if _, err := v2.Verify(bg, k.sign(t, f.now, nil)); err != nil {
		t.Fatal(err)
	}
	if _, err := f.reg.Revoke(bg, "a1"); err != nil {
		t.Fatal(err)
	}
	if err := reg2.Reload(bg); err != nil {
		t.Fatal(err)
	}
	_, err := v2.Verify(bg, k.sign(t, f.now, nil))
	wantRefusal(t, err, identity.Revoked)
}

func TestRegistrationsAreValidated(t *testing.T) {
	f := newFixture(t, identity.Options{})
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	good := identity.EncodePublicKey(pub)
	for _, a := range []identity.Agent{
		{ID: "", Keys: []identity.Key{{KID: "k", PublicKey: good}}},
		{ID: "bad id with spaces", Keys: []identity.Key{{KID: "k", PublicKey: good}}},
		{ID: "a"},
		{ID: "a", Keys: []identity.Key{{KID: "k", PublicKey: "short"}}},
		{ID: "a", Keys: []identity.Key{{KID: "k", PublicKey: good}, {KID: "k", PublicKey: good}}},
		{ID: "a", Ring: 4, Keys: []identity.Key{{KID: "k", PublicKey: good}}},
		{ID: "a", SPIFFEID: "http://x", Keys: []identity.Key{{KID: "k", PublicKey: good}}},
	} {
		if _, err := f.reg.Register(bg, a, "ops"); !errors.Is(err, identity.ErrInvalid) {
			t.Errorf("%+v: %v, want ErrInvalid", a, err)
		}
	}
	if len(f.reg.List()) != 0 {
		t.Fatal("a refused registration was kept")
	}
	// A thumbprint in the request is not believed: it is computed.
	a, err := f.reg.Register(bg, identity.Agent{ID: "a", Keys: []identity.Key{{KID: "k", PublicKey: good, Thumbprint: "forged"}}}, "ops")
	if err != nil || a.Keys[0].Thumbprint != identity.Thumbprint(pub) {
		t.Fatalf("%+v %v", a, err)
	}
}

func ed25519Key() (pub string, priv ed25519.PrivateKey, err error) {
	p, k, err := ed25519.GenerateKey(rand.Reader)
	return identity.EncodePublicKey(p), k, err
}

func newFixtureTB(b *testing.B) *fixture { return newFixture(b, identity.Options{}) }
