package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The desktop-client configurations in docs/mcp.md work as written: each
// command line is started exactly as the client would start it, with
// PATH holding the installed agentgov, from a working directory of the
// client's, and an MCP client makes a call through it. Only the
// placeholders a user replaces are replaced (their directory, the server's
// address, their token file); npx is replaced by the installed package,
// since the tests run offline.
func TestDocsDesktopConfigurationsWork(t *testing.T) {
	raw, err := os.ReadFile("../../docs/mcp.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?ms)^```json\n(.*?)^```").FindAllStringSubmatch(string(raw), -1)
	type server struct {
		Command string   `json:"command"`
		Args    []string `json:"args"`
	}
	var configs []server
	for _, b := range blocks {
		var doc struct {
			MCPServers map[string]server `json:"mcpServers"` // Claude Desktop
			Servers    map[string]server `json:"servers"`    // VS Code
		}
		if err := json.Unmarshal([]byte(b[1]), &doc); err != nil {
			t.Fatalf("a JSON block of docs/mcp.md does not parse: %v\n%s", err, b[1])
		}
		for _, m := range []map[string]server{doc.MCPServers, doc.Servers} {
			for _, s := range m {
				configs = append(configs, s)
			}
		}
	}
	if len(configs) < 3 {
		t.Fatalf("found %d desktop configurations in docs/mcp.md; want Claude Desktop, VS Code and a joined one", len(configs))
	}

	// The user's machine: agentgov installed on PATH, npx able to run the
	// filesystem server, node.
	fsIndex := fsServer(t)
	bin := t.TempDir()
	if err := os.Symlink(binPath, filepath.Join(bin, "agentgov")); err != nil {
		t.Fatal(err)
	}
	npx := "#!/bin/sh\n[ \"$1\" = -y ] && shift\n[ \"$1\" = @modelcontextprotocol/server-filesystem ] || { echo \"npx: unexpected $*\" >&2; exit 1; }\nshift\nexec node " + fsIndex + " \"$@\"\n"
	if err := os.WriteFile(filepath.Join(bin, "npx"), []byte(npx), 0o755); err != nil {
		t.Fatal(err)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed")
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+filepath.Dir(node))
	env, _ := userEnv(t)

	in := startServerWith(t, joinPolicy)
	projects := t.TempDir()
	os.WriteFile(filepath.Join(projects, "todo.txt"), []byte("ship it"), 0o644)
	tokenFile := filepath.Join(t.TempDir(), "agent.token")
	os.WriteFile(tokenFile, []byte("a1-tok\n"), 0o600)
	replace := strings.NewReplacer(
		"/home/me/projects", projects,
		"${workspaceFolder}", projects,
		"/home/me/.config/agentgov/agent.token", tokenFile,
		"http://127.0.0.1:8420", in.url,
	)
	joined := 0
	for _, c := range configs {
		args := make([]string, len(c.Args))
		for i, a := range c.Args {
			args[i] = replace.Replace(a)
		}
		cwd := t.TempDir()
		cmd := exec.Command(c.Command, args...)
		cmd.Dir, cmd.Env = cwd, append(env, "PATH="+os.Getenv("PATH"))
		g, err := connectCmd(t, cmd)
		if err != nil {
			t.Fatalf("%s %q: %v", c.Command, c.Args, err)
		}
		res := g.call(t, "read_text_file", map[string]any{"path": filepath.Join(projects, "todo.txt")})
		if res.IsError || !strings.Contains(textOf(res), "ship it") {
			t.Fatalf("%s %q: the call = %s", c.Command, c.Args, textOf(res))
		}
		g.Close()
		if left, _ := os.ReadDir(cwd); len(left) != 0 {
			t.Errorf("%q left %v in the client's working directory", c.Args, left)
		}
		if strings.Contains(strings.Join(c.Args, " "), "--server") {
			joined++
		}
	}
	if joined == 0 {
		t.Fatal("no joined configuration was tried")
	}
	// The joined gateway's call was decided, and recorded, by the server.
	_, m := in.call("GET", "/v1/audit?limit=1000", "admin-tok", "")
	found := false
	for _, e := range m["entries"].([]any) {
		b, _ := json.Marshal(e)
		found = found || strings.Contains(string(b), `"filesystem"`) && strings.Contains(string(b), `"read_text_file"`)
	}
	if !found {
		t.Fatal("the server's log holds no decision of the joined gateway's call")
	}
}

// connectCmd connects an MCP client to cmd as a desktop client does.
func connectCmd(t *testing.T, cmd *exec.Cmd) (*gateway, error) {
	t.Helper()
	return connectWith(t, cmd, cmd.Args[1:])
}
