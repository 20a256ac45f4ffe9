package action

import "context"

type enforcerKey struct{}

// WithEnforcer marks the decisions asked for with ctx as made for an
// enforcement point (the model proxy, the MCP gateway) that records their
// outcome itself. The engine keeps the name in the decision's audit record,
// and the server then refuses an outcome for that decision from the agent:
// the agent must not settle, with a cost of its own choosing, an action
// whose real cost the enforcement point measures.
func WithEnforcer(ctx context.Context, name string) context.Context {
	return context.WithValue(ctx, enforcerKey{}, name)
}

// EnforcerOf returns the enforcement point ctx was marked with, or "".
func EnforcerOf(ctx context.Context) string {
	s, _ := ctx.Value(enforcerKey{}).(string)
	return s
}
