package identity_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"testing"

	"github.com/agentgov/agentgov/identity"
)

// The registry answers an agent's ring from memory: the ring it was
// registered in; the least privileged once it is revoked, here at once and
// on another process at its next reload; nothing for an id it does not
// know, so that the configured rings decide for it.
func TestRegistryRing(t *testing.T) {
	f := newFixture(t, identity.Options{})
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	if _, err := f.reg.Register(bg, identity.Agent{ID: "worker", Ring: 1,
		Keys: []identity.Key{{KID: "k1", PublicKey: identity.EncodePublicKey(pub)}}}, "ops"); err != nil {
		t.Fatal(err)
	}
	other, _ := identity.NewRegistry(bg, f.st, nil)
	for name, reg := range map[string]*identity.Registry{"here": f.reg, "another process": other} {
		if r, ok := reg.Ring("worker"); !ok || r != 1 {
			t.Fatalf("%s: ring of worker = %d, %v; want 1", name, r, ok)
		}
		if r, ok := reg.Ring("stranger"); ok {
			t.Fatalf("%s: an unregistered agent has ring %d", name, r)
		}
	}
	if _, err := f.reg.Revoke(bg, "worker"); err != nil {
		t.Fatal(err)
	}
	if r, ok := f.reg.Ring("worker"); !ok || r != identity.MaxRing {
		t.Fatalf("revoked: ring %d, %v; want %d", r, ok, identity.MaxRing)
	}
	if r, _ := other.Ring("worker"); r != 1 {
		t.Fatalf("another process changed before it heard of the revocation: %d", r)
	}
	if err := other.Reload(bg); err != nil {
		t.Fatal(err)
	}
	if r, ok := other.Ring("worker"); !ok || r != identity.MaxRing {
		t.Fatalf("another process after reload: ring %d, %v; want %d", r, ok, identity.MaxRing)
	}
}
