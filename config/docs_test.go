package config

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// keys lists every key of the configuration, as paths: "audit.key_file",
// "tokens[].name", "mcp.servers.NAME.env".
func keys(t reflect.Type, prefix string, out *[]string) {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		if t.Kind() == reflect.Slice {
			prefix += "[]"
		}
		t = t.Elem()
	}
	if t.Kind() == reflect.Map {
		keys(t.Elem(), prefix+".NAME", out)
		return
	}
	if t.Kind() != reflect.Struct || t.PkgPath() == "time" {
		return
	}
	for i := range t.NumField() {
		tag := strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0]
		if tag == "" || tag == "-" {
			continue
		}
		p := tag
		if prefix != "" {
			p = prefix + "." + tag
		}
		*out = append(*out, p)
		keys(t.Field(i).Type, p, out)
	}
}

// Every key the configuration takes is in the reference, written as it is
// used: a newcomer finds every key in docs/configuration.md.
func TestEveryKeyIsInTheConfigurationReference(t *testing.T) {
	doc, err := os.ReadFile("../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	var all []string
	keys(reflect.TypeOf(Config{}), "", &all)
	if len(all) < 40 {
		t.Fatalf("only %d keys found: %v", len(all), all)
	}
	for _, k := range all {
		if !bytes.Contains(doc, []byte("`"+k+"`")) && !bytes.Contains(doc, []byte("`"+k+".")) {
			t.Errorf("docs/configuration.md does not describe `%s`", k)
		}
	}
}

var yamlBlock = regexp.MustCompile("(?ms)^```yaml\n(.*?)^```")

// Every configuration shown in docs/*.md loads as agentgov.yaml: a block
// whose top-level keys are all configuration keys is parsed, filled and
// validated, so that what a newcomer copies from the docs starts.
func TestDocsConfigurationsLoad(t *testing.T) {
	top := map[string]bool{}
	ct := reflect.TypeOf(Config{})
	for i := range ct.NumField() {
		top[strings.Split(ct.Field(i).Tag.Get("yaml"), ",")[0]] = true
	}
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
			var doc map[string]any
			if yaml.Unmarshal(block, &doc) != nil || len(doc) == 0 {
				continue
			}
			config := true
			for k := range doc {
				config = config && top[k]
			}
			if !config {
				continue // a policy, a catalogue, a threat model
			}
			n++
			where := filepath.Base(f) + ":" + strconv.Itoa(1+bytes.Count(data[:m[2]], []byte("\n")))
			if _, err := Parse(where, block); err != nil {
				t.Errorf("%s: %v", where, err)
			}
		}
	}
	if n < 3 {
		t.Fatalf("only %d configurations found in docs/*.md", n)
	}
}
