package provenance

import "context"

// Segment is content an enforcement point saw alongside an action, with its
// source: the model proxy's reading of a conversation (the user's turns are
// trusted, tool results and other agents' messages are not).
type Segment struct {
	Source  string // User, ToolSource(...), AgentPrefix + id
	Trusted bool
	Text    string
}

type segmentsKey struct{}

// WithSegments attaches content seen with an action to ctx: the engine
// records it in the action's session before deciding, so that this
// decision and every later one of the session know where its values came
// from.
func WithSegments(ctx context.Context, segs []Segment) context.Context {
	if len(segs) == 0 {
		return ctx
	}
	return context.WithValue(ctx, segmentsKey{}, segs)
}

// SegmentsFrom returns the segments attached to ctx.
func SegmentsFrom(ctx context.Context) []Segment {
	s, _ := ctx.Value(segmentsKey{}).([]Segment)
	return s
}
