package policies_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"

	"go.yaml.in/yaml/v3"

	"github.com/agentgov/agentgov/govern"
	"github.com/agentgov/agentgov/policy"
	"github.com/agentgov/agentgov/policy/policytest"
)

var yamlBlock = regexp.MustCompile("(?ms)^```yaml\n(.*?)^```")

// Every YAML policy document in docs/*.md loads, and every block of policy
// tests passes against the document shown before it in the same file: the
// reference cannot drift from the language.
func TestDocsExamplesLoadAndPass(t *testing.T) {
	files, err := filepath.Glob("../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	docs, tests := 0, 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var last []byte // the latest policy document of this file
		for _, m := range yamlBlock.FindAllSubmatchIndex(data, -1) {
			block := data[m[2]:m[3]]
			line := 1 + bytes.Count(data[:m[2]], []byte("\n"))
			where := filepath.Base(f) + ":" + strconv.Itoa(line)
			var top map[string]any
			if err := yaml.Unmarshal(block, &top); err != nil {
				continue // not a mapping: some other YAML
			}
			switch {
			case top["models"] != nil:
				continue // a model catalogue: models/docs_test.go loads those
			case top["version"] != nil:
				docs++
				d, err := policy.Parse(where, block)
				if err != nil {
					t.Errorf("%s: %v", where, err)
					continue
				}
				if _, err := policy.Compile([]*policy.Document{d}); err != nil {
					t.Errorf("%s: %v", where, err)
					continue
				}
				last = block
			case top["tests"] != nil:
				tests++
				if last == nil {
					t.Errorf("%s: policy tests with no policy document before them", where)
					continue
				}
				d, err := policy.Parse("doc.yaml", last)
				if err != nil {
					t.Fatalf("%s: %v", where, err)
				}
				set, err := policy.Compile([]*policy.Document{d})
				if err != nil {
					t.Fatalf("%s: %v", where, err)
				}
				var out bytes.Buffer
				fsys := fstest.MapFS{"doc_test.yaml": {Data: block}}
				passed, failed, err := policytest.Run(context.Background(), fsys, where, govern.New(set), &out)
				if err != nil || failed > 0 || passed == 0 {
					t.Errorf("%s: %d passed, %d failed, err %v:\n%s", where, passed, failed, err, strings.TrimSpace(out.String()))
				}
			}
		}
	}
	if docs < 10 || tests < 8 {
		t.Fatalf("found %d policy documents and %d test blocks in docs/*.md; the extraction is broken", docs, tests)
	}
}
