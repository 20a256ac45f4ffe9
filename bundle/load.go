package bundle

import (
	"crypto/ed25519"
	"errors"
	"fmt"

	"github.com/agentgov/agentgov/policy"
)

// LoadPolicy reads the bundle at name, checks its files against its
// manifest and, when trusted keys are given, its signature, and compiles
// its documents. The set names the bundle's digest (policy.Set.Bundle).
// With trusted keys, an unsigned bundle or one signed by no trusted key is
// refused; without them, a bundle is read for its content alone.
func LoadPolicy(name string, trusted []ed25519.PublicKey) (*policy.Set, error) {
	b, err := ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("load policy: %w", err)
	}
	if len(trusted) > 0 {
		if err := b.Verify(trusted); err != nil {
			return nil, fmt.Errorf("load policy %s: %w", name, err)
		}
	}
	set, err := policy.LoadFS(b.FS(), ".", name)
	if err != nil {
		return nil, err
	}
	return set.WithBundle(b.Digest()), nil
}

// ErrNotBundle refuses a policy source that cannot carry a signature while
// signatures are required.
var ErrNotBundle = errors.New("policy_trust.keys is set, so policies must be a signed bundle (agentgov bundle build and sign)")
