package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/audit"
	"github.com/agentgov/agentgov/store/sqlite"
)

// These tests start `agentgov mcp run` as a desktop client does, in front
// of the real npm filesystem server, and talk MCP to it.

// userEnv is the environment of a desktop client's user whose per-user
// directories are temporary: the gateway's state goes under state.
func userEnv(t *testing.T) (env []string, state string) {
	t.Helper()
	home := t.TempDir()
	state = filepath.Join(home, "state")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HOME=") && !strings.HasPrefix(kv, "XDG_STATE_HOME=") && !strings.HasPrefix(kv, "AGENTGOV_") {
			env = append(env, kv)
		}
	}
	return append(env, "HOME="+home, "XDG_STATE_HOME="+state), state
}

// gateway is a running `agentgov mcp run` with a Go SDK client connected.
type gateway struct {
	*sdk.ClientSession
	stderr *lockedWriter
}

// connect starts `agentgov args...` in dir with env and connects a client.
func connect(t *testing.T, dir string, env []string, args ...string) (*gateway, error) {
	t.Helper()
	cmd := exec.Command(binPath, args...)
	cmd.Dir, cmd.Env = dir, env
	return connectWith(t, cmd, args)
}

func connectWith(t *testing.T, cmd *exec.Cmd, args []string) (*gateway, error) {
	t.Helper()
	stderr := &lockedWriter{b: &bytes.Buffer{}, mu: &sync.Mutex{}}
	cmd.Stderr = stderr
	cs, err := sdk.NewClient(&sdk.Implementation{Name: "desktop", Version: "1"}, nil).Connect(context.Background(), &sdk.CommandTransport{Command: cmd}, nil)
	t.Cleanup(func() {
		if t.Failed() {
			stderr.mu.Lock()
			t.Logf("agentgov %s said:\n%s", strings.Join(args, " "), stderr.b)
			stderr.mu.Unlock()
		}
	})
	if err != nil {
		return nil, err
	}
	g := &gateway{ClientSession: cs, stderr: stderr}
	t.Cleanup(func() { cs.Close() })
	return g, nil
}

func (g *gateway) call(t *testing.T, tool string, args map[string]any) *sdk.CallToolResult {
	t.Helper()
	res, err := g.CallTool(context.Background(), &sdk.CallToolParams{Name: tool, Arguments: args})
	if err != nil {
		t.Fatalf("%s: %v", tool, err)
	}
	return res
}

// auditKinds counts the entries of each kind in a data directory's log.
func auditKinds(t *testing.T, data string) map[string]int {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.OpenAuditReadOnly(ctx, filepath.Join(data, sqlite.FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	entries, err := audit.Entries(ctx, db, -1, 100000)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, e := range entries {
		out[e.Kind]++
	}
	return out
}

// A client that writes its requests and closes its input at once (as a
// script piping into the gateway does) gets every answer: the gateway
// exits only once it has answered.
func TestMCPRunAnswersWhatWasAskedBeforeItsInputClosed(t *testing.T) {
	files := t.TempDir()
	os.WriteFile(filepath.Join(files, "notes.txt"), []byte("hello from the notes"), 0o644)
	env, _ := userEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, "mcp", "run", "--data", t.TempDir(), "--name", "fs", "--", "node", fsServer(t), files)
	cmd.Env = env
	cmd.Stdin = strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"pipe","version":"1"}}}
{"jsonrpc":"2.0","method":"notifications/initialized"}
{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"read_text_file","arguments":{"path":"` + filepath.Join(files, "notes.txt") + `"}}}
{"jsonrpc":"2.0","id":3,"method":"tools/list"}
`)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("mcp run: %v\n%s", err, stderr.String())
	}
	answered := map[float64]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m struct {
			ID     float64         `json:"id"`
			Result json.RawMessage `json:"result"`
		}
		if json.Unmarshal(sc.Bytes(), &m) == nil && m.Result != nil {
			answered[m.ID] = string(m.Result)
		}
	}
	if !strings.Contains(answered[2], "hello from the notes") || !strings.Contains(answered[3], "read_text_file") || len(answered) != 3 {
		t.Fatalf("answers = %v; want initialize, the call and the listing answered\nstderr:\n%s", answered, stderr.String())
	}
}

// Without --data, the gateway keeps its state in a directory of its own
// under the per-user state directory, whatever the working directory the
// client starts it in; started again from elsewhere, it finds it again.
func TestMCPRunKeepsItsStateInThePerUserDirectory(t *testing.T) {
	files := t.TempDir()
	os.WriteFile(filepath.Join(files, "notes.txt"), []byte("hello"), 0o644)
	env, state := userEnv(t)
	data := filepath.Join(state, "agentgov", "mcp", "fs")
	for i, cwd := range []string{t.TempDir(), t.TempDir()} {
		g, err := connect(t, cwd, env, "mcp", "run", "--name", "fs", "--", "node", fsServer(t), files)
		if err != nil {
			t.Fatal(err)
		}
		if res := g.call(t, "read_text_file", map[string]any{"path": filepath.Join(files, "notes.txt")}); res.IsError {
			t.Fatalf("run %d: %s", i, textOf(res))
		}
		g.Close()
		if left, _ := os.ReadDir(cwd); len(left) != 0 {
			t.Fatalf("run %d left %v in its working directory", i, left)
		}
		kinds := auditKinds(t, data)
		if kinds["decision"] < 2*(i+1) || kinds["mcp.pin"] != 1 || kinds["policy_load"] != i+1 {
			t.Fatalf("run %d: the log in %s holds %v; want the decisions of both runs and one pin", i, data, kinds)
		}
	}
	if _, err := os.Stat(filepath.Join(data, "mcp.lock")); err != nil {
		t.Fatalf("pins: %v", err)
	}
}

// A --lock that does not exist is created on the first pin, with its
// directory; one that exists is the reviewed truth: a server it does not
// pin has its tools quarantined, saying how to pin them.
func TestMCPRunLockIsCreatedOnFirstPin(t *testing.T) {
	files := t.TempDir()
	notes := filepath.Join(files, "notes.txt")
	os.WriteFile(notes, []byte("hello"), 0o644)
	env, _ := userEnv(t)
	lock := filepath.Join(t.TempDir(), "config", "agentgov", "mcp.lock")
	g, err := connect(t, t.TempDir(), env, "mcp", "run", "--name", "fs", "--lock", lock, "--", "node", fsServer(t), files)
	if err != nil {
		t.Fatal(err)
	}
	if res := g.call(t, "read_text_file", map[string]any{"path": notes}); res.IsError {
		t.Fatalf("first run: %s", textOf(res))
	}
	g.Close()
	if b, err := os.ReadFile(lock); err != nil || !strings.Contains(string(b), "server fs ") {
		t.Fatalf("the lock after the first run: %v\n%s", err, b)
	}

	// The lock now exists: another server it does not pin is quarantined.
	g, err = connect(t, t.TempDir(), env, "mcp", "run", "--name", "other", "--lock", lock, "--", "node", fsServer(t), files)
	if err != nil {
		t.Fatal(err)
	}
	res := g.call(t, "read_text_file", map[string]any{"path": notes})
	if !res.IsError || !strings.Contains(textOf(res), "no pinned tools") || !strings.Contains(textOf(res), "agentgov mcp pin") {
		t.Fatalf("a server the existing lock does not pin: %s", textOf(res))
	}
}

// Two gateways for two filesystem servers, whose tools have the same
// names, pinned in one reviewed lock: each client sees only its own
// server's tools, so neither gateway quarantines the other's.
func TestTwoMCPRunGatewaysSharingToolNames(t *testing.T) {
	docs, code := t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(docs, "a.txt"), []byte("docs"), 0o644)
	os.WriteFile(filepath.Join(code, "b.txt"), []byte("code"), 0o644)
	lock := filepath.Join(t.TempDir(), "mcp.lock")
	for name, dir := range map[string]string{"docs": docs, "code": code} {
		if code, out := agentgov(t, "mcp", "pin", "--lock", lock, "--name", name, "--", "node", fsServer(t), dir); code != 0 {
			t.Fatalf("pin %s: %d %s", name, code, out)
		}
	}
	env, _ := userEnv(t)
	var gws []*gateway
	datas := []string{t.TempDir(), t.TempDir()}
	for i, s := range []struct{ name, dir, file string }{{"docs", docs, "a.txt"}, {"code", code, "b.txt"}} {
		g, err := connect(t, t.TempDir(), env, "mcp", "run", "--name", s.name, "--lock", lock, "--data", datas[i], "--", "node", fsServer(t), s.dir)
		if err != nil {
			t.Fatal(err)
		}
		gws = append(gws, g)
		tools, err := g.ListTools(context.Background(), nil)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, tl := range tools.Tools {
			names = append(names, tl.Name)
		}
		if !strings.Contains(strings.Join(names, ","), "read_text_file") {
			t.Fatalf("%s lists %v", s.name, names)
		}
		if res := g.call(t, "read_text_file", map[string]any{"path": filepath.Join(s.dir, s.file)}); res.IsError {
			t.Fatalf("%s: %s", s.name, textOf(res))
		}
	}
	for _, g := range gws {
		g.Close()
	}
	for _, d := range datas {
		if k := auditKinds(t, d); k["mcp.finding"] != 0 {
			t.Fatalf("findings audited in %s: %v", d, k)
		}
	}
}

// The policy of the joined server: writes need a person's approval,
// reads are allowed.
const joinPolicy = `
version: agentgov/v1
name: join
default: allow
rules:
  - id: writes
    match: {points: [pre_tool_call], tools: ["fs/write_file"]}
    effect: require_approval
    approval: {timeout: 30m}
`

// `mcp run --server` decides through a running server as the agent of its
// token. A call that needs approval is approved there by an approver with
// `agentgov approvals approve`, while the client is closed; the client,
// restarted (a new process, a new MCP session), makes the same call again
// and it goes through, once. A changed call is not let through by that
// ticket. The gateway opens no data directory.
func TestMCPRunJoinedApprovalSurvivesAClientRestart(t *testing.T) {
	in := startServerWith(t, joinPolicy)
	files := t.TempDir()
	target := filepath.Join(files, "report.txt")
	tokenFile := filepath.Join(t.TempDir(), "agent.token")
	os.WriteFile(tokenFile, []byte("a1-tok\n"), 0o600)
	env, state := userEnv(t)
	start := func() *gateway {
		t.Helper()
		g, err := connect(t, t.TempDir(), env, "mcp", "run", "--name", "fs", "--server", in.url, "--token-file", tokenFile, "--", "node", fsServer(t), files)
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	write := func(g *gateway, content string) *sdk.CallToolResult {
		return g.call(t, "write_file", map[string]any{"path": target, "content": content})
	}

	g := start()
	res := write(g, "quarterly numbers")
	ticket, _ := res.Meta["agentgov/approval_id"].(string)
	if !res.IsError || ticket == "" || !strings.Contains(textOf(res), "approvals approve "+ticket) {
		t.Fatalf("the write: %s %v; want a pending ticket", textOf(res), res.Meta)
	}
	if res := g.call(t, "read_text_file", map[string]any{"path": target}); !res.IsError {
		t.Fatalf("the file exists before the approval: %s", textOf(res))
	}
	g.Close()

	if code, out, errOut := in.agentgov(t, "admin-tok", "approvals", "approve", ticket, "--note", "ok"); code != 0 {
		t.Fatalf("approve: %d %s %s", code, out, errOut)
	}

	// Someone who can write the gateway's directory maps a changed write to
	// the approved ticket: the server refuses it, since the ticket is bound
	// to the exact action, and the ticket stays unused.
	ticketsFile := filepath.Join(state, "agentgov", "mcp", "fs", "joined-tickets.json")
	var kept struct {
		Tickets []map[string]string `json:"tickets"`
	}
	if b, err := os.ReadFile(ticketsFile); err != nil || json.Unmarshal(b, &kept) != nil || len(kept.Tickets) != 1 || kept.Tickets[0]["ticket"] != ticket {
		t.Fatalf("the gateway keeps %s: %v", ticketsFile, kept)
	}
	changed, _, _ := action.ArgsDigest(map[string]any{"path": target, "content": "other numbers"})
	kept.Tickets = append(kept.Tickets, map[string]string{"session": "mcp-run-fs", "call": "write_file " + changed, "ticket": ticket})
	b, _ := json.Marshal(kept)
	os.WriteFile(ticketsFile, b, 0o600)

	g = start()
	if res := write(g, "other numbers"); !res.IsError || !strings.Contains(textOf(res), "args_changed") {
		t.Fatalf("a changed write under the approval: %s; want it refused, the arguments named", textOf(res))
	}
	if res := write(g, "quarterly numbers"); res.IsError {
		t.Fatalf("the approved write after a restart: %s", textOf(res))
	}
	if b, err := os.ReadFile(target); err != nil || string(b) != "quarterly numbers" {
		t.Fatalf("the file: %q %v", b, err)
	}
	res = write(g, "quarterly numbers")
	if again, _ := res.Meta["agentgov/approval_id"].(string); !res.IsError || again == "" || again == ticket {
		t.Fatalf("the same write a second time: %s %v; want a new ticket", textOf(res), res.Meta)
	}
	g.Close()

	// Decided, and recorded, on the server for the token's agent.
	code, m := in.call("GET", "/v1/approvals/"+ticket, "admin-tok", "")
	if code != 200 || m["status"] != "used" || m["agent_id"] != "a1" {
		t.Fatalf("the ticket on the server: %d %v", code, m)
	}
	if entries, _ := os.ReadDir(filepath.Join(state, "agentgov", "mcp", "fs")); containsDB(entries) {
		t.Fatalf("the joined gateway opened a data directory: %v", entries)
	}
}

func containsDB(entries []os.DirEntry) bool {
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), sqlite.FileName) {
			return true
		}
	}
	return false
}

// A joined gateway refuses flags that belong to a gateway deciding alone,
// and a missing token; any gateway a session id that cannot be one; all
// before it starts anything.
func TestMCPRunFlagMistakes(t *testing.T) {
	env, _ := userEnv(t)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--server", "http://127.0.0.1:1", "--policies", "p"}, "--policies is not for --server"},
		{[]string{"--server", "http://127.0.0.1:1", "--data", "d"}, "--data is not for --server"},
		{[]string{"--server", "http://127.0.0.1:1", "--agent", "me"}, "--agent is not for --server"},
		{[]string{"--server", "http://127.0.0.1:1"}, "needs an agent token"},
		{[]string{"--server", "ftp://x", "--token-file", "/dev/null"}, "needs an agent token"},
		{[]string{"--token-file", "f"}, "--token-file is for --server"},
		{[]string{"--session", "my session"}, "--session"},
		{[]string{"--name", ".."}, "--name"},
	} {
		cmd := exec.Command(binPath, append(append([]string{"mcp", "run"}, c.args...), "--", "node", "x.js")...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(string(out), c.want) {
			t.Errorf("%q: %v\n%s", c.args, err, out)
		}
	}
}
