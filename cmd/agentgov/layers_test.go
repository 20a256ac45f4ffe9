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
	"action":            {"policy", "govern", "detect", "audit", "budget", "approval", "session", "killswitch", "models", "config", "policies", "store/sqlite", "server", "mcp", "llmproxy", "client"}, // only jcs and errcode
	"jcs":               {"*"},
	"provenance":        {"*"},
	"replay":            {"server", "mcp", "llmproxy", "store/sqlite", "store/postgres", "client", "govern", "policy"},
	"errcode":           {"*"},
	"detect":            {"policy", "govern", "server", "mcp", "llmproxy", "audit", "store/sqlite", "client"},
	"policy":            {"govern", "server", "mcp", "llmproxy", "audit", "budget", "approval", "session", "killswitch", "store/sqlite", "client"},
	"audit":             {"policy", "govern", "server", "mcp", "llmproxy", "client"},
	"budget":            {"policy", "govern", "server", "mcp", "llmproxy", "client"},
	"approval":          {"policy", "govern", "server", "mcp", "llmproxy", "client"},
	"session":           {"policy", "govern", "server", "mcp", "llmproxy", "client"},
	"killswitch":        {"policy", "govern", "server", "mcp", "llmproxy", "client"},
	"trust":             {"govern", "server", "mcp", "llmproxy", "client", "config", "audit", "budget", "session", "killswitch", "store/sqlite", "store/postgres"},
	"govern":            {"server", "mcp", "llmproxy", "store/sqlite", "client", "config"},
	"mcp":               {"server", "llmproxy", "store/sqlite", "client", "govern"},
	"mcp/pin":           {"mcp", "server", "llmproxy", "store", "client", "govern", "audit", "policy"},
	"mcp/wire":          {"mcp", "server", "llmproxy", "store", "client", "govern", "audit", "policy", "detect"},
	"llmproxy":          {"server", "mcp", "store/sqlite", "client", "govern"},
	"a2agateway":        {"server", "mcp", "llmproxy", "store/sqlite", "store/postgres", "client", "govern", "policy", "config"},
	"server":            {"client", "store/sqlite", "store/postgres"},
	"metrics":           {"server", "client", "store/sqlite", "store/postgres"},
	"client":            {"server", "govern", "policy", "store/sqlite"},
	"store":             {"*"},
	"store/sqlite":      {"govern", "server", "mcp", "llmproxy", "client", "store/postgres"},
	"store/postgres":    {"govern", "server", "mcp", "llmproxy", "client", "store/sqlite"},
	"policies":          {"govern", "server"},
	"models":            {"govern", "server", "llmproxy"},
	"config":            {"server", "govern", "llmproxy", "telemetry"},
	"console":           {"server", "govern", "store/sqlite", "store/postgres", "mcp", "llmproxy", "policy"},
	"identity":          {"policy", "govern", "server", "mcp", "llmproxy", "audit", "budget", "approval", "session", "killswitch", "config", "store/sqlite", "store/postgres", "client", "stack"},
	"alert":             {"govern", "server", "mcp", "llmproxy", "audit", "policy", "store/sqlite", "store/postgres", "client", "config", "sre"},
	"telemetry":         {"server", "mcp", "llmproxy", "store/sqlite", "store/postgres", "client", "config", "sre", "alert"},
	"chaos":             {"govern", "server", "mcp", "llmproxy", "audit", "store/sqlite", "store/postgres", "client", "config", "sre"},
	"sre":               {"govern", "server", "mcp", "llmproxy", "audit", "store/sqlite", "store/postgres", "client", "config"},
	"bundle":            {"govern", "server", "mcp", "llmproxy", "audit", "store/sqlite", "store/postgres", "client", "config"},
	"threatmodel":       {"*"},
	"report":            {"govern", "server", "mcp", "llmproxy", "store/sqlite", "store/postgres", "client", "config"},
	"evidence":          {"govern", "server", "mcp", "llmproxy", "store/sqlite", "store/postgres", "client", "config"},
	"policy/policytest": {"govern", "server", "mcp", "llmproxy", "audit", "store/sqlite", "client"},

	// What the transports tell a tracer: plain data, below them all.
	"calltrace": {"*"},

	// Readers of command lines and SQL: plain parsers, below the policy language.
	"shellcmd": {"*"},
	"sqlstmt":  {"*"},
	"anomaly":  {"policy", "govern", "trust", "killswitch", "server", "mcp", "llmproxy", "audit", "store/sqlite", "store/postgres", "client", "config"},
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
			// stacktest builds it for the tests in front of the stack.
			if dep == "stack" && !strings.HasPrefix(rel, "cmd/") && rel != "stack/stacktest" {
				t.Errorf("%s imports stack: only the commands build the application", rel)
			}
			if dep == "stack/stacktest" {
				t.Errorf("%s imports stack/stacktest, which is for tests", rel)
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
