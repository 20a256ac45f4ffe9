package llmproxy

import (
	"encoding/json"
	goparser "go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/agentgov/agentgov/errcode/errcodetest"
)

func FuzzParseRequests(f *testing.F) {
	f.Add([]byte(chatBody))
	f.Add([]byte(`{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":false,"x":1},"messages":[{"role":"user","content":"x"}]}`))
	f.Add([]byte(`{"model":"claude-haiku-4-5","max_tokens":5,"messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}]}`))
	f.Add([]byte(`{"model":"text-embedding-3-small","input":[[1,2],[3]]}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"model":"gpt-4o","n":"2","messages":[{"role":"user","content":"x"}]}`))
	f.Add([]byte(`{"model":"gpt-4o","messages":{}}`))
	f.Add([]byte(`{"model":"claude-haiku-4-5","max_tokens":5,"thinking":[],"messages":[{"role":"user","content":"x"}]}`))
	f.Add([]byte(`{"model":"gpt-4o","stream":true,"stream_options":[],"messages":[{"role":"user","content":"x"}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		for name, parse := range map[string]parser{"chat": parseChat, "embeddings": parseEmbeddings, "messages": parseMessages} {
			c, fail := parse(body)
			if fail != nil {
				if c != nil || fail.Code.Status() != 400 || fail.Message == "" {
					t.Fatalf("%s: failure %+v with call %v", name, fail, c)
				}
				if g := errcodetest.GoTypeName(fail.Message); g != "" {
					t.Fatalf("%s: %q shows the Go type %q", name, fail.Message, g)
				}
				continue
			}
			if strings.TrimSpace(c.model) == "" || c.inEst < 0 || c.outEst() < 0 || c.answers < 1 {
				t.Fatalf("%s: accepted %q as %+v", name, body, c)
			}
			// What goes upstream is still one JSON object naming the same model.
			var o struct{ Model string }
			if err := json.Unmarshal(c.body(), &o); err != nil || o.Model != c.model {
				t.Fatalf("%s: forwards %q (model %q), err %v", name, c.body(), o.Model, err)
			}
		}
	})
}

func TestStreamRequestAsksForUsageKeepingOtherOptions(t *testing.T) {
	c, f := parseChat([]byte(`{"model":"gpt-4o","stream":true,"stream_options":{"x":1},"messages":[{"role":"user","content":"x"}]}`))
	if f != nil {
		t.Fatal(f)
	}
	var o struct {
		StreamOptions map[string]any `json:"stream_options"`
	}
	json.Unmarshal(c.body(), &o)
	if o.StreamOptions["include_usage"] != true || o.StreamOptions["x"] != float64(1) || c.clientUsage {
		t.Errorf("forwarded stream_options = %v, clientUsage %v", o.StreamOptions, c.clientUsage)
	}
}

// The proxy sits above the decision pipeline and below the server: it may use
// the contract types, the table of error codes, the detectors (to mask what
// it records), the catalogue and the provenance ledger's types, never the server, the CLI or the engine's
// internals (it talks to the engine through Decider).
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
			if ours && rest != "action" && rest != "models" && rest != "errcode" && rest != "detect" && rest != "provenance" && rest != "calltrace" {
				t.Errorf("%s imports %s; llmproxy may import only action, errcode, detect, models, provenance and calltrace of this module", file, path)
			}
		}
	}
}
