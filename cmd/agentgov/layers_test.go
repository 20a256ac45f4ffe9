package main

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/agentgov/agentgov/"

// Layers point one way: contract types and parsing at the bottom, the
// engine above them, transports above the engine, cmd on top. Each entry
// lists what a package must never import (directly or not).
var forbidden = map[string][]string{
	"action":       {"policy", "govern", "detect", "audit", "budget", "approval", "session", "killswitch", "models", "config", "policies", "store/sqlite", "server", "mcp", "llmproxy", "client"}, // only jcs
	"jcs":          {"*"},
	"detect":       {"policy", "govern", "server", "mcp", "llmproxy", "audit", "store/sqlite", "client"},
	"policy":       {"govern", "server", "mcp", "llmproxy", "audit", "budget", "approval", "session", "killswitch", "store/sqlite", "client"},
	"audit":        {"policy", "govern", "server", "mcp", "llmproxy", "client"},
	"budget":       {"policy", "govern", "server", "mcp", "llmproxy", "client"},
	"approval":     {"policy", "govern", "server", "mcp", "llmproxy", "client"},
	"session":      {"policy", "govern", "server", "mcp", "llmproxy", "client"},
	"killswitch":   {"policy", "govern", "server", "mcp", "llmproxy", "client"},
	"govern":       {"server", "mcp", "llmproxy", "store/sqlite", "client", "config"},
	"mcp":          {"server", "llmproxy", "store/sqlite", "client", "govern"},
	"llmproxy":     {"server", "mcp", "store/sqlite", "client", "govern"},
	"server":       {"client"},
	"client":       {"server", "govern", "policy", "store/sqlite"},
	"store/sqlite": {"govern", "server", "mcp", "llmproxy", "client"},
	"policies":     {"govern", "server"},
	"models":       {"govern", "server", "llmproxy"},
	"config":       {"server", "govern"},
}

type listed struct {
	ImportPath string
	Doc        string
	Name       string
	Deps       []string
}

func TestLayersPointOneWayAndPackagesSayWhatTheyAreFor(t *testing.T) {
	out, err := exec.Command("go", "list", "-json", "github.com/agentgov/agentgov/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	seen := 0
	for dec.More() {
		var p listed
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		rel := strings.TrimPrefix(p.ImportPath, module)
		if p.Doc == "" && p.Name != "main" {
			t.Errorf("package %s has no doc comment saying what it is for", rel)
		}
		for _, d := range p.Deps {
			dep, ok := strings.CutPrefix(d, module)
			if !ok {
				continue
			}
			if strings.HasPrefix(dep, "cmd/") {
				t.Errorf("%s imports %s: nothing imports cmd", rel, dep)
			}
			for _, f := range forbidden[rel] {
				if f == "*" || dep == f || strings.HasPrefix(dep, f+"/") {
					t.Errorf("%s must not depend on %s", rel, dep)
				}
			}
		}
		seen++
	}
	if seen < 15 {
		t.Fatalf("only %d packages listed", seen)
	}
}
