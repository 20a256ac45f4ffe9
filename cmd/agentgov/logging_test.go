package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentgov/agentgov/mcp/pin"
)

// A secret the detectors know, and the personal data beside it.
const (
	logSecret = "AKIAIOSFODNN7EXAMPLE"
	logEmail  = "jane.doe@example.com"
)

// Every string a log line writes is masked: the message, values, keys,
// groups, errors and values logged as any.
func TestLogLinesNeverHoldWhatTheDetectorsFind(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		var buf bytes.Buffer
		log, err := newLogger(format, "debug", &buf)
		if err != nil {
			t.Fatal(err)
		}
		log = log.With("upstream", "npx server --key "+logSecret)
		log.Debug("key "+logSecret+" seen",
			"tool", "send_to_"+logEmail,
			slog.Group("call", "args", `{"key":"`+logSecret+`"}`),
			"err", errors.New("cannot connect with aws_access_key_id = "+logSecret),
			"any", []string{logEmail},
			"n", 42)
		out := buf.String()
		if strings.Contains(out, logSecret) || strings.Contains(out, logEmail) {
			t.Errorf("%s: a secret or address reached the log:\n%s", format, out)
		}
		if !strings.Contains(out, "[REDACTED") || !strings.Contains(out, "42") {
			t.Errorf("%s: masked line lost its shape:\n%s", format, out)
		}
		if format == "json" && !json.Valid(bytes.TrimSpace(buf.Bytes())) {
			t.Errorf("not one JSON object: %s", out)
		}
	}
}

func TestLogFlagsAndLevels(t *testing.T) {
	var buf bytes.Buffer
	log, err := newLogger("json", "warn", &buf)
	if err != nil {
		t.Fatal(err)
	}
	log.Info("quiet")
	log.Warn("loud")
	if out := buf.String(); strings.Contains(out, "quiet") || !strings.Contains(out, `"msg":"loud"`) {
		t.Errorf("level warn, json: %s", out)
	}
	for _, bad := range [][2]string{{"xml", "info"}, {"text", "verbose"}} {
		if _, err := newLogger(bad[0], bad[1], &buf); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

// jsonLines decodes a JSON log, one object per line; lines that are not
// JSON (the admin token printed on first start) are skipped.
func jsonLines(t *testing.T, out string) []map[string]any {
	t.Helper()
	var lines []map[string]any
	for _, l := range strings.Split(out, "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil {
			lines = append(lines, m)
		}
	}
	return lines
}

func findLine(lines []map[string]any, msg string, match func(map[string]any) bool) map[string]any {
	for _, l := range lines {
		if l["msg"] == msg && (match == nil || match(l)) {
			return l
		}
	}
	return nil
}

// The server run as a user runs it, with --log-format json: its start
// names the MCP servers, the model providers and the policy digest; each
// request is one access line naming the agent and the decision; a reload
// over HTTP, a kill switch and a budget threshold are lines of their own;
// and a secret a client puts in a request never reaches the log.
func TestServeLogsWhatAnOperatorNeeds(t *testing.T) {
	dir := t.TempDir()
	pol := filepath.Join(dir, "policies")
	os.MkdirAll(pol, 0o755)
	os.WriteFile(filepath.Join(pol, "test.yaml"), []byte(testPolicy), 0o644)
	cfg := fmt.Sprintf(`
tokens:
  - {name: ops, role: admin, sha256: %s}
  - {name: a1, role: agent, agent: a1, principal: {user: alice, team: search, org: acme}, sha256: %s}
log: {format: text, level: warn}
mcp:
  servers:
    fs: {command: [npx, -y, "@modelcontextprotocol/server-filesystem", /srv/data]}
`, sum("admin-tok"), sum("a1-tok"))
	os.WriteFile(filepath.Join(dir, "agentgov.yaml"), []byte(cfg), 0o644)
	in := &instance{t: t, dir: dir, data: filepath.Join(dir, "data"), env: []string{"OPENAI_API_KEY=sk-test"}}
	// The flags override the file's log section.
	in.args = []string{"serve", "--config", filepath.Join(dir, "agentgov.yaml"), "--policies", pol, "--data", in.data,
		"--log-format", "json", "--log-level", "info", "--addr", freePort(t)}
	in.start()
	t.Cleanup(in.stop)

	_, ready := in.call("GET", "/readyz", "", "")
	digest := ready["policy"]
	code, d := in.call("POST", "/v1/decide", "a1-tok", `{"tool":{"name":"read_file"},"args":{"path":"/tmp/`+logSecret+`"}}`, "X-Request-Id", "trace-1")
	if code != 200 || d["effect"] != "allow" {
		t.Fatalf("decide: %d %v", code, d)
	}
	if code, _ := in.call("GET", "/v1/decisions/"+logSecret, "a1-tok", ""); code != 400 {
		t.Fatalf("a secret in the path: %d", code)
	}
	if code, _ := in.call("POST", "/v1/policies/reload", "admin-tok", ""); code != 200 {
		t.Fatalf("reload: %d", code)
	}
	code, sw := in.call("POST", "/v1/kill", "admin-tok", `{"scope":"agent","target":"a1","reason":"runaway"}`)
	if code != 201 {
		t.Fatalf("kill: %d %v", code, sw)
	}
	if code, _ := in.call("DELETE", "/v1/kill/"+sw["id"].(string), "admin-tok", ""); code != 200 {
		t.Fatalf("release: %d", code)
	}
	if code, _ := in.call("POST", "/v1/budgets", "admin-tok", `{"id":"one","scope":{"agent":"a1"},"period":"daily","limits":{"calls":1}}`); code != 201 {
		t.Fatalf("budget: %d", code)
	}
	for range 3 {
		in.call("POST", "/v1/decide", "a1-tok", `{"tool":{"name":"read_file"},"args":{"path":"/tmp/x"}}`)
	}

	var lines []map[string]any
	deadline := time.Now().Add(10 * time.Second)
	for {
		lines = jsonLines(t, in.output())
		if findLine(lines, "budget threshold crossed", nil) != nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	out := in.output()
	if strings.Contains(out, logSecret) {
		t.Errorf("the secret reached the log:\n%s", out)
	}
	for _, want := range []struct {
		msg   string
		match func(map[string]any) bool
	}{
		{"mcp server", func(l map[string]any) bool {
			return l["name"] == "fs" && strings.Contains(l["upstream"].(string), "server-filesystem")
		}},
		{"model provider", func(l map[string]any) bool { return l["provider"] == "openai" }},
		{"model provider not configured", func(l map[string]any) bool {
			return l["provider"] == "anthropic" && strings.Contains(l["why"].(string), "ANTHROPIC_API_KEY")
		}},
		{"agentgov serving", func(l map[string]any) bool { return l["digest"] == digest && digest != nil }},
		{"request", func(l map[string]any) bool {
			return l["path"] == "/v1/decide" && l["status"] == float64(200) && l["agent"] == "a1" &&
				l["request_id"] == "trace-1" && l["decision"] == d["id"] && l["duration_ms"] != nil && l["method"] == "POST"
		}},
		{"request", func(l map[string]any) bool {
			return l["path"] == "/v1/kill" && l["caller"] == "ops" && l["status"] == float64(201)
		}},
		{"request", func(l map[string]any) bool {
			return strings.HasPrefix(l["path"].(string), "/v1/decisions/") && l["code"] == "bad_request"
		}},
		{"policy loaded", func(l map[string]any) bool { return l["digest"] == digest && l["previous"] == digest }},
		{"kill switch engaged", func(l map[string]any) bool { return l["agent"] == "a1" && l["reason"] == "runaway" && l["by"] == "ops" }},
		{"kill switch released", func(l map[string]any) bool { return l["switch"] == sw["id"] }},
		{"budget threshold crossed", func(l map[string]any) bool { return l["kind"] == "budget_hard" && l["budget"] == "one" }},
	} {
		if findLine(lines, want.msg, want.match) == nil {
			t.Errorf("no %q line as expected in:\n%s", want.msg, out)
		}
	}
	if l := findLine(lines, "request", func(l map[string]any) bool { return l["path"] == "/healthz" }); l != nil {
		t.Errorf("health checks are logged at info: %v", l)
	}
}

// `mcp run` logs to standard error only (standard output is the protocol),
// in the format asked for: a tool quarantined for want of a pin is a line,
// and so is the kill switch a policy's isolate response engages.
func TestMCPRunLogsToStderrInTheFormatAskedFor(t *testing.T) {
	data, files, pol := t.TempDir(), t.TempDir(), t.TempDir()
	lock := filepath.Join(t.TempDir(), "mcp.lock")
	if err := pin.WriteLock(lock, &pin.Lock{}); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(pol, "isolate.yaml"), []byte(`version: agentgov/v1
name: isolate
default: allow
rules:
  - id: no-secrets
    match: {tools: [read_text_file]}
    when: 'args.path.endsWith("secret.txt")'
    effect: deny
    severity: high
responses:
  high: [isolate]
`), 0o644)
	args := []string{"mcp", "run", "--data", data, "--name", "fs", "--policies", pol, "--lock", lock,
		"--log-format", "json", "--log-level", "info", "--", "node", fsServer(t), files}
	cmd := exec.Command(binPath, args...)
	stderr := &lockedWriter{b: &bytes.Buffer{}, mu: &sync.Mutex{}}
	cmd.Stderr = stderr
	cs, err := sdk.NewClient(&sdk.Implementation{Name: "desktop", Version: "1"}, nil).Connect(context.Background(), &sdk.CommandTransport{Command: cmd}, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := cs.CallTool(context.Background(), &sdk.CallToolParams{Name: "read_text_file", Arguments: map[string]any{"path": filepath.Join(files, "secret.txt")}})
	if err != nil || !res.IsError {
		t.Fatalf("a call to a quarantined tool: %+v %v", res, err)
	}
	cs.Close()
	stderr.mu.Lock()
	out := stderr.b.String()
	stderr.mu.Unlock()
	lines := jsonLines(t, out)
	if findLine(lines, "tool quarantined", func(l map[string]any) bool {
		return l["server"] == "fs" && l["tool"] == "read_text_file" && strings.Contains(fmt.Sprint(l["reason"]), "no pinned tools")
	}) == nil {
		t.Errorf("no quarantine line in:\n%s", out)
	}
	if findLine(lines, "agentgov mcp gateway", nil) == nil {
		t.Errorf("no start line in:\n%s", out)
	}
	// The upstream's own standard error passes through as it wrote it;
	// the gateway's lines are all JSON.
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if strings.HasPrefix(l, "time=") {
			t.Errorf("a text line from the gateway: %q", l)
		}
	}
}
