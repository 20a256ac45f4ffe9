package config

import (
	"strings"
	"testing"
)

// A bad identity: section stops the start naming the key, so that no
// server runs taking tokens it was not meant to, or none it was.
func TestIdentityConfigNamesTheKey(t *testing.T) {
	for _, c := range []struct{ src, want string }{
		{"identity: {max_lifetime: 1h}\n", `identity.max_lifetime: want a duration up to 5m0s, got 1h0m0s`},
		{"identity: {leeway: -1s}\n", `identity.leeway`},
		{"identity: {max_delegation_depth: 99}\n", `identity.max_delegation_depth: want 0 to 16, got 99`},
		{"identity: {oidc: [{issuer: not-a-url, jwks_file: k.json, audience: a}]}\n", `identity.oidc[0].issuer: want the issuer's URL`},
		{"identity: {oidc: [{issuer: 'https://i', audience: a}]}\n", `identity.oidc[0]: give exactly one of jwks_file or jwks_url`},
		{"identity: {oidc: [{issuer: 'https://i', jwks_file: k.json, jwks_url: 'https://i/k', audience: a}]}\n", `identity.oidc[0]: give exactly one of jwks_file or jwks_url`},
		{"identity: {oidc: [{issuer: 'https://i', jwks_url: 'ftp://i/k', audience: a}]}\n", `identity.oidc[0].jwks_url: want an http or https URL`},
		{"identity: {oidc: [{issuer: 'https://i', jwks_file: k.json}]}\n", `identity.oidc[0].audience: required`},
		{"identity: {oidc: [{issuer: 'https://i', jwks_file: k.json, audience: a}, {issuer: 'https://i', jwks_file: k.json, audience: a}]}\n", `identity.oidc[1].issuer: https://i is configured twice`},
		{"identity: {audience: x, spiffe: {bundle_file: b.jwks}}\n", `identity.spiffe.trust_domain: required`},
		{"identity: {spiffe: {trust_domain: example.org, bundle_file: b.jwks}}\n", `identity.audience: required with identity.spiffe`},
		{"identity: {oidc: [{issuer: 'https://i', jwks_file: k.json, audience: a, claims: {agentid: x}}]}\n", `field agentid is not a known key`},
	} {
		_, err := Parse("agentgov.yaml", []byte(c.src))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: got %v, want %q", c.src, err, c.want)
		}
	}
	if _, err := Parse("agentgov.yaml", []byte("identity: {audience: 'https://a', oidc: [{issuer: 'https://i', jwks_url: 'https://i/k', audience: a, claims: {agent: aid}}], spiffe: {trust_domain: example.org, bundle_file: b.jwks}}\n")); err != nil {
		t.Fatalf("a good identity section: %v", err)
	}
}
