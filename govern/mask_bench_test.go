package govern

import (
	"testing"

	"github.com/agentgov/agentgov/action"
)

// BenchmarkMaskSensitive is the cost masking adds to every audited decision:
// a tool call with a few short string arguments and nothing to mask.
func BenchmarkMaskSensitive(b *testing.B) {
	a := action.Action{Tool: action.Tool{Name: "read_file"}, Args: map[string]any{"path": "/home/dev/project/README.md", "encoding": "utf-8", "max_bytes": 65536.0}}
	for b.Loop() {
		maskSensitive(a)
	}
}
