// Package policies ships agentgov's built-in baseline policy pack. The same
// YAML files serve as the default of `agentgov serve` (embedded, so the
// binary needs nothing beside it) and as a starting point users copy and
// edit (`agentgov policy lint policies`).
package policies

import (
	"embed"

	"github.com/agentgov/agentgov/policy"
)

//go:embed *.yaml
var files embed.FS

// FS holds the pack's documents and their *_test.yaml files.
func FS() embed.FS { return files }

// Builtin compiles the embedded pack.
func Builtin() (*policy.Set, error) {
	return policy.LoadFS(files, ".", "builtin")
}
