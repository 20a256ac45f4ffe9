package examples

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// provider plays the model at the edge of the world (no provider can be
// reached from here): it answers Chat Completions requests with the tool
// call a prompt names, and after a tool's result with a text quoting it.
// It keeps every request so the test can see what the model was shown.
// Every completion has an id of its own, as a provider's have (LangGraph
// keeps one message per id).
type provider struct {
	dir   string
	mu    sync.Mutex
	seen  [][]map[string]any
	tools []string // offered to the model in the last request
}

func (p *provider) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/v1/chat/completions" {
		http.NotFound(w, r)
		return
	}
	var req struct {
		Model    string           `json:"model"`
		Messages []map[string]any `json:"messages"`
		Tools    []struct {
			Function struct{ Name string } `json:"function"`
		} `json:"tools"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	p.mu.Lock()
	p.seen = append(p.seen, req.Messages)
	p.tools = p.tools[:0]
	for _, t := range req.Tools {
		p.tools = append(p.tools, t.Function.Name)
	}
	p.mu.Unlock()
	last := req.Messages[len(req.Messages)-1]
	msg := map[string]any{"role": "assistant"}
	finish := "stop"
	if last["role"] == "tool" {
		msg["content"] = "the tool answered: " + fmt.Sprint(last["content"])
	} else {
		call := func(name string, args map[string]any) {
			b, _ := json.Marshal(args)
			msg["content"] = nil
			msg["tool_calls"] = []any{map[string]any{"id": fmt.Sprintf("call_%d", time.Now().UnixNano()), "type": "function",
				"function": map[string]any{"name": name, "arguments": string(b)}}}
			finish = "tool_calls"
		}
		switch text := fmt.Sprint(last["content"]); {
		case strings.Contains(text, "read the notes"):
			call("read_text_file", map[string]any{"path": filepath.Join(p.dir, "notes.txt")})
		case strings.Contains(text, "read the key"):
			call("read_text_file", map[string]any{"path": filepath.Join(p.dir, "secret", "key.txt")})
		case strings.Contains(text, "write the report"):
			call("write_file", map[string]any{"path": filepath.Join(p.dir, "report.txt"), "content": "Q3: all good\n"})
		default:
			msg["content"] = "nothing to do"
		}
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{
		"id": fmt.Sprintf("chatcmpl-%d", time.Now().UnixNano()), "object": "chat.completion", "created": time.Now().Unix(), "model": req.Model,
		"choices": []any{map[string]any{"index": 0, "message": msg, "finish_reason": finish}},
		"usage":   map[string]any{"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150},
	})
}

func (p *provider) offered() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.tools...)
}

// toolMessages is what the model was shown of the tools' answers.
func (p *provider) toolMessages() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var b strings.Builder
	for _, msgs := range p.seen {
		for _, m := range msgs {
			if m["role"] == "tool" {
				fmt.Fprintln(&b, m["content"])
			}
		}
	}
	return b.String()
}

// lockedBuffer collects a process's output while the test may read it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type server struct {
	bin, url, data string
	proc           *exec.Cmd
	stderr         *lockedBuffer
}

func sha(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }

const (
	adminTok    = "ex-admin-secret"
	approverTok = "ex-fin-secret"
	agentTok    = "ex-agent-secret"
)

func (s *server) api(t *testing.T, method, path, token, body string) map[string]any {
	t.Helper()
	req, _ := http.NewRequest(method, s.url+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	var m map[string]any
	json.Unmarshal(b, &m)
	if res.StatusCode >= 300 {
		t.Fatalf("%s %s: %d %s", method, path, res.StatusCode, b)
	}
	return m
}

func (s *server) cli(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(s.bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("agentgov %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// The OpenAI Agents SDK for JavaScript, unchanged, pointed at agentgov: an
// allowed tool, a denied tool whose reason the model reads, a write that a
// person approves with the CLI and that then runs, a budget that stops the
// model, a kill switch that stops the agent; all in an audit log that
// verifies.
func TestOpenAIAgentsSDKGovernedEndToEnd(t *testing.T) {
	governedScenario(t, "openai-agents", "")
}

// run is an example agent under a real `agentgov serve`: the model
// provider faked, the filesystem MCP server real and pinned, the example's
// own policies.
type run struct {
	*server
	model    *provider
	files    string
	agentErr *lockedBuffer
	// ask sends a prompt to the agent and returns its answer or error.
	ask func(prompt string) (output, failure string)
	// stop stops the server (once; it is stopped at the end of the test).
	stop func()
	// finish ends the agent's input and waits for it to exit.
	finish func()
}

// runExample builds agentgov, pins the MCP server, starts `serve` and
// the example `examples/NAME/agent.mjs` against it.
func runExample(t *testing.T, name string) *run {
	t.Helper()
	example, _ := filepath.Abs(name)
	fsServer := filepath.Join(example, "node_modules/@modelcontextprotocol/server-filesystem/dist/index.js")
	if _, err := os.Stat(fsServer); err != nil {
		t.Skip("npm packages not installed; run: npm ci --prefix examples/" + name)
	}
	files := t.TempDir()
	os.WriteFile(filepath.Join(files, "notes.txt"), []byte("standup moved to 10:00\n"), 0o644)
	os.MkdirAll(filepath.Join(files, "secret"), 0o755)
	os.WriteFile(filepath.Join(files, "secret", "key.txt"), []byte("hunter2\n"), 0o600)
	model := &provider{dir: files}
	fake := httptest.NewServer(model)
	t.Cleanup(fake.Close)

	dir := t.TempDir()
	s := &server{bin: filepath.Join(dir, "agentgov"), data: filepath.Join(dir, "data"), stderr: &lockedBuffer{}}
	build := exec.Command("go", "build", "-o", s.bin, "./cmd/agentgov")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	// The operator reviews the server's tools and pins them, as docs/mcp.md
	// says: a server with no pins has every tool quarantined.
	lock := filepath.Join(dir, "mcp.lock")
	s.cli(t, "mcp", "pin", "--lock", lock, "--name", "fs", "--", "node", fsServer, files)
	cfg := filepath.Join(dir, "agentgov.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`tokens:
  - {name: ops, role: admin, sha256: %q}
  - {name: fin, role: approver, sha256: %q}
  - {name: clerk, role: agent, agent: clerk, principal: {user: alice, team: notes, org: acme}, sha256: %q}
policies: %s
llm:
  openai: {base_url: %q, api_key_env: EXAMPLE_PROVIDER_KEY}
mcp:
  lock: %s
  servers:
    fs: {command: [node, %q, %q]}
`, sha(adminTok), sha(approverTok), sha(agentTok), filepath.Join(example, "policies"), fake.URL+"/v1", lock, fsServer, files)), 0o600)
	s.proc = exec.Command(s.bin, "serve", "--config", cfg, "--data", s.data, "--addr", "127.0.0.1:0", "--log-format", "json")
	s.proc.Env = append(os.Environ(), "EXAMPLE_PROVIDER_KEY=sk-example")
	pr, pw := io.Pipe()
	s.proc.Stderr = io.MultiWriter(s.stderr, pw)
	if err := s.proc.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			s.proc.Process.Signal(os.Interrupt)
			s.proc.Wait()
			pw.Close()
		}
	}
	t.Cleanup(stop)
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		var rec map[string]any
		if json.Unmarshal(sc.Bytes(), &rec) == nil && rec["msg"] == "agentgov serving" {
			s.url = rec["addr"].(string)
			break
		}
	}
	if s.url == "" {
		t.Fatalf("serve did not start:\n%s", s.stderr)
	}
	go io.Copy(io.Discard, pr)

	agent := exec.Command("node", "agent.mjs")
	agent.Dir = example
	agent.Env = append(os.Environ(), "AGENTGOV_URL="+s.url, "AGENTGOV_TOKEN="+agentTok)
	in, _ := agent.StdinPipe()
	outPipe, _ := agent.StdoutPipe()
	agentErr := &lockedBuffer{}
	agent.Stderr = agentErr
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { agent.Process.Kill() })
	answers := bufio.NewScanner(outPipe)
	ask := func(prompt string) (output, failure string) {
		t.Helper()
		fmt.Fprintln(in, prompt)
		if !answers.Scan() {
			t.Fatalf("the agent stopped after %q:\n%s\nserver:\n%s", prompt, agentErr.String(), s.stderr)
		}
		var r struct{ Output, Error string }
		if err := json.Unmarshal(answers.Bytes(), &r); err != nil {
			t.Fatalf("agent answered %s", answers.Bytes())
		}
		t.Logf("%s → %s%s", prompt, r.Output, r.Error)
		return r.Output, r.Error
	}
	return &run{server: s, model: model, files: files, agentErr: agentErr, ask: ask, stop: stop,
		finish: func() { in.Close(); agent.Wait() }}
}

// governedScenario runs examples/NAME's agent through the scenario both
// framework examples share: an allowed read (the agent's answer starts
// with answerPrefix), a denied read whose reason the model reads, a write
// a person approves with the CLI, a budget that stops the model, a kill
// switch that stops the agent, and an audit log that verifies.
func governedScenario(t *testing.T, name, answerPrefix string) {
	t.Helper()
	r := runExample(t, name)
	s, model, files, agentErr, ask, stop := r.server, r.model, r.files, r.agentErr, r.ask, r.stop

	// Allowed: the notes are read through the gateway.
	if out, fail := ask("please read the notes"); fail != "" || !strings.HasPrefix(out, answerPrefix) || !strings.Contains(out, "standup moved to 10:00") {
		t.Fatalf("allowed read: %q %q; tools offered: %v\nagent: %s\nserver: %s", out, fail, model.offered(), agentErr.String(), s.stderr)
	}
	// Denied: the model reads why, and the key never left the server.
	ask("please read the key")
	if shown := model.toolMessages(); !strings.Contains(shown, "files under secret/ are not for agents") || strings.Contains(shown, "hunter2") {
		t.Fatalf("what the model was shown of the denied read:\n%s", shown)
	}
	// Approval: the write waits for a person, who approves it with the CLI;
	// the same call, made again, runs.
	ask("please write the report")
	if _, err := os.Stat(filepath.Join(files, "report.txt")); err == nil {
		t.Fatal("the write ran before anyone approved it")
	}
	pending := s.api(t, "GET", "/v1/approvals?status=pending", approverTok, "")["approvals"].([]any)
	if len(pending) != 1 {
		t.Fatalf("pending tickets: %v", pending)
	}
	ticket := pending[0].(map[string]any)["id"].(string)
	s.cli(t, "approvals", "approve", ticket, "--server", s.url, "--token", approverTok, "--note", "report reviewed")
	ask("please write the report")
	if b, err := os.ReadFile(filepath.Join(files, "report.txt")); err != nil || string(b) != "Q3: all good\n" {
		t.Fatalf("the approved write: %q %v", b, err)
	}
	// A budget stops the model: the next model call would cost more than is left.
	s.api(t, "POST", "/v1/budgets", adminTok, `{"id":"clerk-daily","scope":{"agent":"clerk"},"period":"daily","limits":{"cost_usd":0.000001}}`)
	if _, fail := ask("please read the notes"); !strings.Contains(fail, "budget") {
		t.Fatalf("model call over budget: %q", fail)
	}
	s.api(t, "DELETE", "/v1/budgets/clerk-daily", adminTok, "")
	// A kill switch stops the agent at once.
	s.cli(t, "kill", "agent", "clerk", "--reason", "end of example", "--server", s.url, "--token", adminTok)
	if _, fail := ask("please read the notes"); !strings.Contains(fail, "end of example") && !strings.Contains(fail, "kill") {
		t.Fatalf("call after the kill switch: %q", fail)
	}
	r.finish()

	// Everything is in the audit log.
	var kinds = map[string]int{}
	var effects = map[string]int{}
	for after := -1; ; {
		page := s.api(t, "GET", fmt.Sprintf("/v1/audit?after=%d&limit=1000", after), adminTok, "")["entries"].([]any)
		if len(page) == 0 {
			break
		}
		for _, e := range page {
			e := e.(map[string]any)
			kinds[e["kind"].(string)]++
			if e["kind"] == "decision" {
				rec := e["record"].(map[string]any)
				d := rec["decision"].(map[string]any)
				effects[fmt.Sprint(d["effect"])+" "+fmt.Sprint(rec["action"].(map[string]any)["point"])]++
			}
			after = int(e["index"].(float64))
		}
	}
	t.Logf("audit: %v %v", kinds, effects)
	for _, want := range []string{"allow pre_tool_call", "deny pre_tool_call", "require_approval pre_tool_call", "allow pre_model_call", "deny pre_model_call"} {
		if effects[want] == 0 {
			t.Errorf("no %q decision in the audit log", want)
		}
	}
	for _, want := range []string{"approval", "kill", "budget"} {
		if kinds[want] == 0 {
			t.Errorf("no %q entry in the audit log", want)
		}
	}
	stop()
	if out := s.cli(t, "audit", "verify", "--data", s.data); !strings.Contains(out, "ok") {
		t.Fatalf("audit verify: %s", out)
	}
}
