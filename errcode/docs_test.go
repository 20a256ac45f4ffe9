package errcode_test

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/agentgov/agentgov/errcode"
)

// docs/api.md lists every code with what it becomes on each surface, as
// the table here says: a code added, or a mapping changed, without its
// documentation fails here.
func TestAPIDocsListEveryCodeAsTheTableMapsIt(t *testing.T) {
	b, err := os.ReadFile("../docs/api.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	for _, c := range errcode.Codes() {
		row := fmt.Sprintf("| `%s` | %d | %d | `%s` | `%s` | %s |", c, c.Status(), c.RPC(), c.OpenAIType(), c.AnthropicType(), c.Meaning())
		if !strings.Contains(doc, row) {
			t.Errorf("docs/api.md has no row\n%s", row)
		}
	}
}
