package identity_test

import (
	"fmt"
	"testing"

	"github.com/agentgov/agentgov/identity"
)

// BenchmarkVerify is what a credential costs to check: a delegation token
// from the cache (as any reused token is), and an agent-signed JWT, each
// one new (an Ed25519 signature and a write of its jti to the store).
func BenchmarkVerify(b *testing.B) {
	t := &testing.T{}
	f := newFixtureTB(b)
	k := f.register(t, "planner")
	f.register(t, "coder")
	top, err := f.v.Verify(bg, k.sign(t, f.now, nil))
	if err != nil {
		b.Fatal(err)
	}
	tok, _, err := f.v.Delegate(bg, top, identity.DelegationRequest{Agent: "coder", Tools: []string{"read_*"}, ExpiresIn: 3600})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("cached-delegation", func(b *testing.B) {
		for b.Loop() {
			if _, err := f.v.Verify(bg, tok); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("new-agent-jwt", func(b *testing.B) {
		toks := make([]string, b.N)
		for i := range toks {
			toks[i] = k.sign(t, f.now, nil)
		}
		b.ResetTimer()
		for i := range b.N {
			if _, err := f.v.Verify(bg, toks[i]); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkRegistryRing is what the ring check pays to read an agent's
// registered ring on every decision: a map lookup in the registry's copy
// in memory, with no allocation.
func BenchmarkRegistryRing(b *testing.B) {
	t := &testing.T{}
	f := newFixtureTB(b)
	for i := range 1000 {
		f.register(t, fmt.Sprintf("agent-%d", i))
	}
	b.ReportAllocs()
	var ring int
	var ok bool
	for b.Loop() {
		ring, ok = f.reg.Ring("agent-500")
	}
	if !ok || ring != 0 {
		b.Fatalf("ring %d, %v", ring, ok)
	}
}
