package govern

import (
	"context"
	"fmt"
)

// RefuseLoad records that a policy set offered for loading was refused (it
// did not compile, or its bundle was unsigned, tampered with or signed by
// no trusted key) and that the set in force stays. An operator reading the
// log sees every attempt to change policy, not only the ones that took.
func (e *Engine) RefuseLoad(ctx context.Context, source string, reason error) error {
	if e.audit == nil {
		return nil
	}
	cur := e.set.Load()
	if _, err := e.audit.Append(ctx, "policy_load", map[string]any{
		"event": "refused", "source": source, "error": reason.Error(),
		"digest": cur.Digest(), "bundle": cur.Bundle(),
	}); err != nil {
		return fmt.Errorf("record refused policy: %w", err)
	}
	return nil
}
