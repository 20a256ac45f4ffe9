package models

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"

	"go.yaml.in/yaml/v3"
)

var yamlBlock = regexp.MustCompile("(?ms)^```yaml\n(.*?)^```")

// Every model catalogue shown in docs/*.md loads over the shipped one, as
// llm.catalog would load it: the reference cannot drift from the format.
func TestDocsCataloguesLoad(t *testing.T) {
	files, err := filepath.Glob("../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range yamlBlock.FindAllSubmatchIndex(data, -1) {
			block := data[m[2]:m[3]]
			var top map[string]any
			if yaml.Unmarshal(block, &top) != nil || top["models"] == nil {
				continue
			}
			where := filepath.Base(f) + ":" + strconv.Itoa(1+bytes.Count(data[:m[2]], []byte("\n")))
			if _, err := Shipped().Override(where, block); err != nil {
				t.Errorf("%s: %v", where, err)
			}
			n++
		}
	}
	if n == 0 {
		t.Fatal("no model catalogue found in docs/*.md")
	}
}
