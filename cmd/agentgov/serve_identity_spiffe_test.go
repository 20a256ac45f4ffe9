package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
)

// JWT-SVIDs against the running server: one of the configured trust
// domain acts as the agent the registry maps its SPIFFE ID to; one of a
// foreign trust domain, or for an ID no agent has, is refused naming why.
func TestServeSPIFFEJWTSVIDs(t *testing.T) {
	ours, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	theirs, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	bundle, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &ours.PublicKey, KeyID: "b1", Use: "jwt-svid"}}})
	bundleFile := filepath.Join(t.TempDir(), "example.org.jwks")
	if err := os.WriteFile(bundleFile, bundle, 0o644); err != nil {
		t.Fatal(err)
	}
	in := startWithConfig(t, fmt.Sprintf("identity:\n  audience: %q\n  spiffe: {trust_domain: example.org, bundle_file: %q}\n", identityAudience, bundleFile))
	if code, m := in.call("POST", "/v1/agents", "admin-tok", `{"id":"svid-agent","spiffe_id":"spiffe://example.org/agents/worker"}`); code != 201 {
		t.Fatalf("register: %d %v", code, m)
	}
	svid := func(key *ecdsa.PrivateKey, sub string) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{"sub": sub, "aud": []string{identityAudience}, "exp": time.Now().Add(5 * time.Minute).Unix()})
		tok.Header["kid"] = "b1"
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	decide := func(tok string) (int, map[string]any) {
		return in.call("POST", "/v1/decide", tok, `{"tool":{"name":"read_notes"}}`)
	}
	good := svid(ours, "spiffe://example.org/agents/worker")
	for range 2 { // an SVID is reused until it expires
		if code, d := decide(good); code != 200 || d["effect"] != "allow" {
			t.Fatalf("our SVID: %d %v", code, d)
		}
	}
	for _, c := range []struct{ name, tok, reason string }{
		{"foreign trust domain", svid(theirs, "spiffe://evil.org/agents/worker"), "foreign_trust_domain"},
		{"forged in our trust domain", svid(theirs, "spiffe://example.org/agents/worker"), "signature"},
		{"an ID no agent has", svid(ours, "spiffe://example.org/agents/stranger"), "unknown_agent"},
	} {
		if code, m := decide(c.tok); code != 401 || reasonOf(m) != c.reason {
			t.Errorf("%s: %d %v, want 401 %s", c.name, code, m, c.reason)
		}
	}
	if code, _ := in.call("DELETE", "/v1/agents/svid-agent", "admin-tok", ""); code != 200 {
		t.Fatalf("revoke: %d", code)
	}
	if code, m := decide(good); code != 401 || reasonOf(m) != "revoked" {
		t.Fatalf("our SVID after revocation: %d %v", code, m)
	}
}
