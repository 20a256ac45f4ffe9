package policy

import (
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
)

// Trust is what policies see as `trust`: an agent's trust score (0 to
// 1000) and the tier its score falls in. It is immutable; the engine gets
// one per agent from the keeper of scores and hands it to every decision
// of that agent, so that reading `trust` costs no allocation.
type Trust struct {
	score int
	tier  string
	// val is the CEL value, converted once rather than per evaluation.
	val ref.Val
}

// NewTrust returns the view of a score and its tier.
func NewTrust(score int, tier string) *Trust {
	m := map[ref.Val]ref.Val{types.String("score"): types.Int(score), types.String("tier"): types.String(tier)}
	return &Trust{score: score, tier: tier, val: types.NewRefValMap(types.DefaultTypeAdapter, m)}
}

// Score is the trust score.
func (t *Trust) Score() int { return t.score }

// Tier is the tier of the score.
func (t *Trust) Tier() string { return t.tier }

// noTrust is `trust` for an engine that keeps no scores: the most
// suspicious value, so that a rule granting something to trusted agents
// grants nothing when scores are off.
var noTrust = NewTrust(0, "untrusted")

// ToolMatches reports whether a tool pattern of a match field ("name", or
// "server/name", each part a glob) matches the tool.
func ToolMatches(pattern, server, name string) bool {
	return parseToolPattern(pattern).matches(server, name)
}
