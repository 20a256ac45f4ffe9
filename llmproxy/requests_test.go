package llmproxy

import (
	"encoding/json"
	goparser "go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func FuzzParseRequests(f *testing.F) {
	f.Add([]byte(chatBody))
	f.Add([]byte(`{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":false,"x":1},"messages":[{"role":"user","content":"x"}]}`))
	f.Add([]byte(`{"model":"claude-haiku-4-5","max_tokens":5,"messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}]}`))
	f.Add([]byte(`{"model":"text-embedding-3-small","input":[[1,2],[3]]}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, body []byte) {
		for name, parse := range map[string]parser{"chat": parseChat, "embeddings": parseEmbeddings, "messages": parseMessages} {
			c, fail := parse(body, 4096)
			if fail != nil {
				if c != nil || fail.code.status() != 400 || fail.msg == "" {
					t.Fatalf("%s: failure %+v with call %v", name, fail, c)
				}
				continue
			}
			if strings.TrimSpace(c.model) == "" || c.inEst < 0 || c.outEst < 0 {
				t.Fatalf("%s: accepted %q as %+v", name, body, c)
			}
			// What goes upstream is still one JSON object naming the same model.
			var o struct{ Model string }
			if err := json.Unmarshal(c.body, &o); err != nil || o.Model != c.model {
				t.Fatalf("%s: forwards %q (model %q), err %v", name, c.body, o.Model, err)
			}
		}
	})
}

func TestStreamRequestAsksForUsageKeepingOtherOptions(t *testing.T) {
	c, f := parseChat([]byte(`{"model":"gpt-4o","stream":true,"stream_options":{"x":1},"messages":[{"role":"user","content":"x"}]}`), 10)
	if f != nil {
		t.Fatal(f)
	}
	var o struct {
		StreamOptions map[string]any `json:"stream_options"`
	}
	json.Unmarshal(c.body, &o)
	if o.StreamOptions["include_usage"] != true || o.StreamOptions["x"] != float64(1) || c.clientUsage {
		t.Errorf("forwarded stream_options = %v, clientUsage %v", o.StreamOptions, c.clientUsage)
	}
}

// The proxy sits above the decision pipeline and below the server: it may use
// the contract types and the catalogue, never the server, the CLI or the
// engine's internals (it talks to the engine through Decider).
func TestImportsPointOneWay(t *testing.T) {
	files, _ := filepath.Glob("*.go")
	for _, file := range files {
		if strings.HasSuffix(file, "_test.go") {
			continue
		}
		f, err := goparser.ParseFile(token.NewFileSet(), file, nil, goparser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			rest, ours := strings.CutPrefix(path, "github.com/agentgov/agentgov/")
			if ours && rest != "action" && rest != "models" {
				t.Errorf("%s imports %s; llmproxy may import only action and models of this module", file, path)
			}
		}
	}
}
