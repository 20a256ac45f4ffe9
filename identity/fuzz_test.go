package identity_test

import (
	"errors"
	"testing"

	"github.com/agentgov/agentgov/identity"
)

// Whatever a client sends as a bearer credential, Verify refuses it with a
// Refusal (never a panic, never a subject) unless it is a real credential.
func FuzzVerify(f *testing.F) {
	fx := newFixture(f, identity.Options{})
	t := &testing.T{}
	k := fx.register(t, "a1")
	f.Add(k.sign(t, fx.now, nil))
	f.Add("eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg")
	f.Add("eyJ.eyJ.x")
	f.Add("agd_")
	f.Add("eyJhbGciOiJub25lIn0.eyJpc3MiOiJhMSIsInN1YiI6ImExIn0.")
	f.Add("eyJhbGciOiJFZERTQSIsImtpZCI6ImsxIn0.eyJzdWIiOiJzcGlmZmU6Ly9ldmlsLm9yZy94In0.AAAA")
	f.Fuzz(func(t *testing.T, tok string) {
		s, err := fx.v.Verify(bg, tok)
		if err == nil {
			// Only a token the agent's key signed gets through (the seed
			// above, once: its jti is then used).
			if s.Agent.ID != "a1" || s.Agent.Credential == nil || s.Agent.Credential.Thumbprint == "" {
				t.Fatalf("%q verified as %+v", tok, s)
			}
			return
		}
		var r *identity.Refusal
		if !errors.As(err, &r) || r.Reason == "" {
			t.Fatalf("%q: %v is not a refusal with a reason", tok, err)
		}
	})
}
