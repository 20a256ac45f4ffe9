package govern

import (
	"context"
	"errors"
	"fmt"

	"github.com/agentgov/agentgov/policy"
)

// ErrNoShadow is LoadShadow's error on an engine built without a shadow
// set (WithShadow): one is configured, or none is.
var ErrNoShadow = errors.New("no shadow policy set is configured")

// ShadowPolicy is the shadow set in force, or nil.
func (e *Engine) ShadowPolicy() *policy.Set { return e.shadow.Load() }

// LoadShadow replaces the shadow set, as Load does the live one: recorded
// first (a "policy_load" entry with event "shadow" and the digest it
// replaces), and if that record cannot be written the old shadow stays.
// From the next decision on, differences are those of the new set.
func (e *Engine) LoadShadow(ctx context.Context, set *policy.Set, source string) error {
	if set == nil {
		return errors.New("load shadow policy: no policy set")
	}
	prev := e.shadow.Load()
	if prev == nil {
		return fmt.Errorf("load shadow policy: %w", ErrNoShadow)
	}
	if e.audit != nil {
		if _, err := e.audit.Append(ctx, "policy_load", map[string]any{
			"event": "shadow", "digest": set.Digest(), "previous": prev.Digest(), "bundle": set.Bundle(), "source": source,
		}); err != nil {
			return fmt.Errorf("load shadow policy: audit: %w", err)
		}
	}
	e.shadow.Store(set)
	e.emit(ctx, Notice{Kind: "policy_load", Message: "shadow policy set " + set.Digest() + " in force",
		Fields: map[string]any{"digest": set.Digest(), "previous": prev.Digest(), "shadow": true}})
	return nil
}
