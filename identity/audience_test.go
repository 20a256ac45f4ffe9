package identity_test

import (
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/agentgov/agentgov/identity"
)

// An agent JWT addressed to this server and to another service at once
// could be replayed here by that other service (which saw it first, so
// the jti cache does not help): aud must name this server alone.
func TestAgentJWTAddressedToAnotherServiceTooIsRefused(t *testing.T) {
	f := newFixture(t, identity.Options{})
	k := f.register(t, "researcher-1")
	for name, aud := range map[string]any{
		"ours first":  []string{"https://agentgov.test", "https://other.test"},
		"ours second": []string{"https://other.test", "https://agentgov.test"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := f.v.Verify(bg, k.sign(t, f.now, func(c jwt.MapClaims, _ map[string]any) { c["aud"] = aud }))
			wantRefusal(t, err, identity.Audience)
		})
	}
	// Ours alone, as an array, is still ours.
	if _, err := f.v.Verify(bg, k.sign(t, f.now, func(c jwt.MapClaims, _ map[string]any) {
		c["aud"] = []string{"https://agentgov.test"}
	})); err != nil {
		t.Fatalf("aud [ours]: %v", err)
	}
}
