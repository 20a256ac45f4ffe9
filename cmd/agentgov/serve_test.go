package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// These tests run the agentgov binary the way a user does: built once, then
// started with a config file and a data directory, and spoken to over HTTP.

var binPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "agentgov-bin")
	if err != nil {
		panic(err)
	}
	binPath = filepath.Join(dir, "agentgov")
	out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build agentgov: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const testPolicy = `
version: agentgov/v1
name: test
default: deny
rules:
  - id: reads
    match: {tools: ["read_*"]}
    effect: allow
  - id: no-etc
    match: {tools: [read_file]}
    when: 'args.path.startsWith("/etc/")'
    effect: deny
    severity: high
  - id: payments
    match: {tools: [pay]}
    when: 'args.amount > 1000'
    effect: require_approval
    approval: {approvers: ["group:finance"], timeout: 30m}
  - id: small-payments
    match: {tools: [pay]}
    when: 'args.amount <= 1000'
    effect: allow
`

func sum(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

type instance struct {
	t       *testing.T
	url     string
	dir     string
	data    string
	args    []string
	cmd     *exec.Cmd
	logs    *bytes.Buffer
	logsMu  *sync.Mutex
	env     []string
	stopped bool
}

func freePort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startServer writes a config with an admin, an approver in group finance
// and two agents, and starts `agentgov serve`.
func startServer(t *testing.T) *instance {
	t.Helper()
	return startServerWith(t, testPolicy)
}

// startServerWith is startServer with another policy.
func startServerWith(t *testing.T, policy string) *instance {
	t.Helper()
	dir := t.TempDir()
	pol := filepath.Join(dir, "policies")
	os.MkdirAll(pol, 0o755)
	os.WriteFile(filepath.Join(pol, "test.yaml"), []byte(policy), 0o644)
	cfg := fmt.Sprintf(`
tokens:
  - {name: ops, role: admin, sha256: %s}
  - {name: fin, role: approver, groups: [finance], sha256: %s}
  - {name: other-approver, role: approver, sha256: %s}
  - {name: a1, role: agent, agent: a1, agent_type: assistant, principal: {user: alice, team: search, org: acme}, sha256: %s}
  - {name: a2, role: agent, agent: a2, sha256: %s}
audit: {checkpoint_interval: 100ms}
`, sum("admin-tok"), sum("fin-tok"), sum("other-tok"), sum("a1-tok"), sum("a2-tok"))
	os.WriteFile(filepath.Join(dir, "agentgov.yaml"), []byte(cfg), 0o644)
	in := &instance{t: t, dir: dir, data: filepath.Join(dir, "data")}
	in.args = []string{"serve", "--config", filepath.Join(dir, "agentgov.yaml"), "--policies", pol, "--data", in.data, "--addr", freePort(t)}
	in.start()
	t.Cleanup(in.stop)
	return in
}

func (in *instance) start() {
	t := in.t
	t.Helper()
	in.logs, in.logsMu = &bytes.Buffer{}, &sync.Mutex{}
	in.cmd = exec.Command(binPath, in.args...)
	in.cmd.Dir = in.dir
	in.cmd.Env = append(os.Environ(), in.env...)
	w := &lockedWriter{b: in.logs, mu: in.logsMu}
	in.cmd.Stdout, in.cmd.Stderr = w, w
	if err := in.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	in.stopped = false
	in.url = "http://" + in.args[len(in.args)-1]
	for i := 0; i < 200; i++ {
		if resp, err := http.Get(in.url + "/healthz"); err == nil {
			resp.Body.Close()
			return
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatalf("server did not start:\n%s", in.output())
}

func (in *instance) output() string {
	in.logsMu.Lock()
	defer in.logsMu.Unlock()
	return in.logs.String()
}

func (in *instance) stop() {
	if in.stopped {
		return
	}
	in.stopped = true
	in.cmd.Process.Signal(syscall.SIGTERM)
	in.cmd.Wait()
}

func (in *instance) kill9() {
	in.stopped = true
	in.cmd.Process.Kill()
	in.cmd.Wait()
}

type lockedWriter struct {
	b  *bytes.Buffer
	mu *sync.Mutex
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// call sends a request and decodes the JSON answer into a map.
func (in *instance) call(method, path, token, body string, headers ...string) (int, map[string]any) {
	in.t.Helper()
	req, _ := http.NewRequest(method, in.url+path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		in.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &m); err != nil {
			in.t.Fatalf("%s %s: %d, not JSON: %s", method, path, resp.StatusCode, raw)
		}
	}
	return resp.StatusCode, m
}

func errMsg(m map[string]any) string {
	e, _ := m["error"].(map[string]any)
	s, _ := e["message"].(string)
	return s
}

func TestServeDecisionsApprovalsAndIdentity(t *testing.T) {
	in := startServer(t)

	code, d := in.call("POST", "/v1/decide", "a1-tok", `{"tool":{"name":"read_file"},"args":{"path":"/tmp/x"}}`)
	if code != 200 || d["effect"] != "allow" || d["audit_index"] == nil {
		t.Fatalf("allow: %d %v", code, d)
	}
	code, d = in.call("POST", "/v1/decide", "a1-tok", `{"tool":{"name":"read_file"},"args":{"path":"/etc/passwd"}}`)
	if code != 200 || d["effect"] != "deny" {
		t.Fatalf("deny: %d %v", code, d)
	}

	// The credential is the identity: another agent's id, or another
	// principal, is refused; no token, a wrong token and a wrong role too.
	if code, m := in.call("POST", "/v1/decide", "a1-tok", `{"agent":{"id":"a2"},"tool":{"name":"read_file"}}`); code != 403 || !strings.Contains(errMsg(m), "cannot claim") {
		t.Fatalf("claiming another agent: %d %v", code, m)
	}
	if code, _ := in.call("POST", "/v1/decide", "a1-tok", `{"principal":{"user":"mallory"},"tool":{"name":"read_file"}}`); code != 403 {
		t.Fatalf("claiming another principal: %d", code)
	}
	if code, _ := in.call("POST", "/v1/decide", "", `{}`); code != 401 {
		t.Fatalf("no token: %d", code)
	}
	if code, _ := in.call("POST", "/v1/decide", "wrong", `{}`); code != 401 {
		t.Fatalf("wrong token: %d", code)
	}
	if code, _ := in.call("GET", "/v1/kill", "a1-tok", ""); code != 403 {
		t.Fatalf("agent on an admin path: %d", code)
	}

	// Approval: the ticket is bound to the exact action.
	pay := `{"session":"s1","tool":{"name":"pay"},"args":{"amount":5000,"to":"bob"}}`
	code, d = in.call("POST", "/v1/decide", "a1-tok", pay)
	if code != 200 || d["effect"] != "require_approval" {
		t.Fatalf("payment: %d %v", code, d)
	}
	apr := d["approval"].(map[string]any)["id"].(string)
	code, l := in.call("GET", "/v1/approvals?status=pending", "fin-tok", "")
	if code != 200 || !strings.Contains(fmt.Sprint(l), apr) {
		t.Fatalf("queue: %d %v", code, l)
	}
	if code, _ := in.call("POST", "/v1/approvals/"+apr+"/approve", "other-tok", `{}`); code != 403 {
		t.Fatalf("approver outside group finance approved: %d", code)
	}
	if code, m := in.call("POST", "/v1/approvals/"+apr+"/approve", "fin-tok", `{"note":"ok"}`); code != 200 || m["status"] != "approved" {
		t.Fatalf("approve: %d %v", code, m)
	}
	retry := func(body string) map[string]any {
		var m map[string]any
		json.Unmarshal([]byte(body), &m)
		m["approval_id"] = apr
		b, _ := json.Marshal(m)
		_, d := in.call("POST", "/v1/decide", "a1-tok", string(b))
		return d
	}
	if d := retry(`{"session":"s1","tool":{"name":"pay"},"args":{"amount":9000,"to":"bob"}}`); d["effect"] != "deny" || !strings.Contains(fmt.Sprint(d["reasons"]), "arg") {
		t.Fatalf("changed argument: %v", d)
	}
	if d := retry(pay); d["effect"] != "allow" {
		t.Fatalf("approved retry: %v", d)
	}
	if d := retry(pay); d["effect"] != "deny" || !strings.Contains(fmt.Sprint(d["reasons"]), "used") {
		t.Fatalf("second use: %v", d)
	}
}

func TestServeRejectsBadRequestsWithoutChangingState(t *testing.T) {
	in := startServer(t)
	_, d := in.call("POST", "/v1/decide", "a1-tok", `{"tool":{"name":"read_file"}}`)
	did := d["id"].(string)
	_, before := in.call("GET", "/v1/audit/checkpoint", "admin-tok", "")
	for _, c := range []struct {
		body string
		code int
		want string
	}{
		{`{"tool":`, 400, "malformed JSON"},
		{`{"tool":{"name":"x"},"colour":"red"}`, 400, "colour"},
		{`{"tool":{"name":5}}`, 400, "tool.name"},
		{`{"point":"pre_tool"}`, 400, "point"},
		{`{"args":{"a":1}} {"b":2}`, 400, "after"},
		{`{"content":"` + strings.Repeat("x", 2<<20) + `"}`, 413, "larger than"},
	} {
		code, m := in.call("POST", "/v1/decide", "a1-tok", c.body)
		if code != c.code || !strings.Contains(errMsg(m), c.want) {
			t.Errorf("body %.40q: %d %q, want %d containing %q", c.body, code, errMsg(m), c.code, c.want)
		}
	}
	for _, c := range []struct{ method, path, body string }{
		{"POST", "/v1/kill", `{"scope":"galaxy","reason":"x"}`},
		{"POST", "/v1/kill", `{"scope":"agent"}`},
		{"POST", "/v1/budgets", `{"id":"b","period":"fortnightly","limits":{"calls":1}}`},
		{"POST", "/v1/budgets", `{"id":"b","period":"daily","limits":{"calls":-1}}`},
		{"POST", "/v1/budgets", `{"id":"b","scope":{"planet":"x"},"period":"daily"}`},
		{"GET", "/v1/audit?limit=abc", ""},
		{"GET", "/v1/usage?colour=red", ""},
	} {
		if code, m := in.call(c.method, c.path, "admin-tok", c.body); code != 400 || errMsg(m) == "" {
			t.Errorf("%s %s %s: %d %v", c.method, c.path, c.body, code, m)
		}
	}
	// Every endpoint that takes a body: broken JSON and unknown fields are
	// 400 with a message, a wrong type names its field.
	for _, ep := range []struct{ path, token string }{
		{"/v1/decide", "a1-tok"}, {"/v1/decisions/" + did + "/outcome", "a1-tok"}, {"/v1/sessions", "a1-tok"},
		{"/v1/kill", "admin-tok"}, {"/v1/budgets", "admin-tok"}, {"/v1/approvals/apr_x/approve", "admin-tok"},
	} {
		for _, body := range []string{`{"x":`, `{"colour":"red"}`, `[1,2]`} {
			if code, m := in.call("POST", ep.path, ep.token, body); (code != 400 && code != 404) || errMsg(m) == "" {
				t.Errorf("POST %s %s: %d %v", ep.path, body, code, m)
			}
		}
	}
	if code, m := in.call("POST", "/v1/decisions/"+did+"/outcome", "a1-tok", `{"status":"ok","tokens":"many"}`); code != 400 || !strings.Contains(errMsg(m), "tokens") {
		t.Errorf("wrong-typed outcome: %d %v", code, m)
	}
	if code, m := in.call("POST", "/v1/decisions/"+did+"/outcome", "a1-tok", `{"status":"ok","latency_ms":`+strings.Repeat("1", 2<<20)+`}`); code != 413 {
		t.Errorf("oversized outcome: %d %v", code, m)
	}
	if code, m := in.call("GET", "/v1/kill", "admin-tok", ""); code != 200 || fmt.Sprint(m["switches"]) != "[]" {
		t.Fatalf("a refused kill switch was stored: %v", m)
	}
	if code, m := in.call("GET", "/v1/budgets", "admin-tok", ""); code != 200 || fmt.Sprint(m["budgets"]) != "[]" {
		t.Fatalf("a refused budget was stored: %v", m)
	}
	_, after := in.call("GET", "/v1/audit/checkpoint", "admin-tok", "")
	if before["size"] != after["size"] {
		t.Fatalf("refused requests reached the audit log: %v -> %v", before["size"], after["size"])
	}
}

func TestServeKillSwitchSurvivesRestart(t *testing.T) {
	in := startServer(t)
	read := `{"tool":{"name":"read_file"},"args":{"path":"/tmp/x"}}`
	code, sw := in.call("POST", "/v1/kill", "admin-tok", `{"scope":"agent","target":"a1","reason":"runaway loop"}`)
	if code != 201 {
		t.Fatalf("engage: %d %v", code, sw)
	}
	if _, d := in.call("POST", "/v1/decide", "a1-tok", read); d["effect"] != "deny" || !strings.Contains(fmt.Sprint(d["reasons"]), "runaway loop") {
		t.Fatalf("killed agent: %v", d)
	}
	if _, d := in.call("POST", "/v1/decide", "a2-tok", read); d["effect"] != "allow" {
		t.Fatalf("other agent: %v", d)
	}
	in.stop()
	in.start()
	if _, d := in.call("POST", "/v1/decide", "a1-tok", read); d["effect"] != "deny" {
		t.Fatalf("kill switch lost on restart: %v", d)
	}
	if code, _ := in.call("DELETE", "/v1/kill/"+sw["id"].(string), "admin-tok", ""); code != 200 {
		t.Fatalf("release: %d", code)
	}
	if _, d := in.call("POST", "/v1/decide", "a1-tok", read); d["effect"] != "allow" {
		t.Fatalf("after release: %v", d)
	}
}

func TestServeSessions(t *testing.T) {
	in := startServer(t)
	code, s := in.call("POST", "/v1/sessions", "a1-tok", `{"id":"work-1"}`)
	if code != 201 {
		t.Fatalf("create: %d %v", code, s)
	}
	read := `{"session":"work-1","tool":{"name":"read_file"},"args":{"path":"/tmp/x"}}`
	if _, d := in.call("POST", "/v1/decide", "a1-tok", read); d["effect"] != "allow" {
		t.Fatalf("active: %v", d)
	}
	if code, _ := in.call("POST", "/v1/sessions/work-1/pause", "a2-tok", ""); code != 404 {
		t.Fatalf("another agent paused the session: %d", code)
	}
	in.call("POST", "/v1/sessions/work-1/pause", "a1-tok", "")
	if _, d := in.call("POST", "/v1/decide", "a1-tok", read); d["effect"] != "deny" || !strings.Contains(fmt.Sprint(d["reasons"]), "paused") {
		t.Fatalf("paused: %v", d)
	}
	in.call("POST", "/v1/sessions/work-1/resume", "a1-tok", "")
	in.call("POST", "/v1/sessions/work-1/close", "a1-tok", "")
	if code, _ := in.call("POST", "/v1/sessions/work-1/resume", "a1-tok", ""); code != 409 {
		t.Fatalf("resume after close: %d, want 409", code)
	}
	if _, d := in.call("POST", "/v1/decide", "a1-tok", read); d["effect"] != "deny" {
		t.Fatalf("closed: %v", d)
	}
}

func TestServeIdempotencyAndOutcome(t *testing.T) {
	in := startServer(t)
	body := `{"tool":{"name":"read_file"},"args":{"path":"/tmp/x"}}`
	_, d1 := in.call("POST", "/v1/decide", "a1-tok", body, "Idempotency-Key", "k-1", "Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	_, d2 := in.call("POST", "/v1/decide", "a1-tok", body, "Idempotency-Key", "k-1")
	if d1["id"] == nil || d1["id"] != d2["id"] {
		t.Fatalf("retry made a new decision: %v vs %v", d1["id"], d2["id"])
	}
	if code, _ := in.call("POST", "/v1/decide", "a1-tok", `{"tool":{"name":"read_x"}}`, "Idempotency-Key", "k-1"); code != 422 {
		t.Fatalf("key reused for another request: %d", code)
	}
	id := d1["id"].(string)
	if code, m := in.call("GET", "/v1/decisions/"+id, "a2-tok", ""); code != 404 {
		t.Fatalf("another agent read the decision: %d %v", code, m)
	}
	if code, m := in.call("GET", "/v1/decisions/"+id, "a1-tok", ""); code != 200 || m["id"] != id {
		t.Fatalf("own decision: %d %v", code, m)
	}
	if code, _ := in.call("POST", "/v1/decisions/"+id+"/outcome", "a1-tok", `{"status":"fine"}`); code != 400 {
		t.Fatalf("bad outcome: %d", code)
	}
	if code, m := in.call("POST", "/v1/decisions/"+id+"/outcome", "a1-tok", `{"status":"ok","latency_ms":12}`); code != 200 {
		t.Fatalf("outcome: %d %v", code, m)
	}
	_, entries := in.call("GET", "/v1/audit?limit=1000", "admin-tok", "")
	all := fmt.Sprint(entries)
	if !strings.Contains(all, "4bf92f3577b34da6a3ce929d0e0e4736") || strings.Count(all, "kind:outcome") != 1 {
		t.Fatalf("audit lacks the trace or has not exactly one outcome: %s", all)
	}
}

// 100 concurrent retries with one approved ticket: exactly one is allowed.
func TestServeApprovedTicketIsUsedOnce(t *testing.T) {
	in := startServer(t)
	pay := `{"tool":{"name":"pay"},"args":{"amount":5000}}`
	_, d := in.call("POST", "/v1/decide", "a1-tok", pay)
	apr := d["approval"].(map[string]any)["id"].(string)
	in.call("POST", "/v1/approvals/"+apr+"/approve", "admin-tok", "")
	var allowed atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, d := in.call("POST", "/v1/decide", "a1-tok", `{"tool":{"name":"pay"},"args":{"amount":5000},"approval_id":"`+apr+`"}`)
			if d["effect"] == "allow" {
				allowed.Add(1)
			}
		}()
	}
	wg.Wait()
	if n := allowed.Load(); n != 1 {
		t.Fatalf("%d retries allowed, want exactly 1", n)
	}
}

// SIGKILL in the middle of a stream of decisions: every decision whose
// answer was received is in the log after a restart, and the log verifies.
func TestServeSIGKILLLosesNoAcknowledgedDecision(t *testing.T) {
	in := startServer(t)
	type ack struct{ id, index string }
	var mu sync.Mutex
	var acks []ack
	var wg sync.WaitGroup
	stop := make(chan struct{})
	client := &http.Client{Timeout: 5 * time.Second}
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				req, _ := http.NewRequest("POST", in.url+"/v1/decide", strings.NewReader(`{"tool":{"name":"read_file"},"args":{"path":"/tmp/x"}}`))
				req.Header.Set("Authorization", "Bearer a1-tok")
				resp, err := client.Do(req)
				if err != nil {
					return // the server is gone
				}
				var d map[string]any
				err = json.NewDecoder(resp.Body).Decode(&d)
				resp.Body.Close()
				if err == nil && d["audit_index"] != nil {
					mu.Lock()
					acks = append(acks, ack{d["id"].(string), fmt.Sprint(d["audit_index"])})
					mu.Unlock()
				}
			}
		}()
	}
	for {
		mu.Lock()
		n := len(acks)
		mu.Unlock()
		if n >= 300 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	in.kill9()
	close(stop)
	wg.Wait()

	in.start()
	for _, a := range acks {
		code, d := in.call("GET", "/v1/decisions/"+a.id, "admin-tok", "")
		if code != 200 || fmt.Sprint(d["audit_index"]) != a.index {
			t.Fatalf("acknowledged decision %s (index %s) after SIGKILL: %d %v", a.id, a.index, code, d)
		}
	}
	in.stop()
	out, err := exec.Command(binPath, "audit", "verify", "--data", in.data).CombinedOutput()
	if err != nil {
		t.Fatalf("audit verify after SIGKILL: %v\n%s", err, out)
	}
	t.Logf("%d acknowledged decisions survived SIGKILL", len(acks))
}

func TestServePolicyReloadKeepsTheOldSetOnError(t *testing.T) {
	in := startServer(t)
	_, p1 := in.call("GET", "/v1/policies", "admin-tok", "")
	os.WriteFile(filepath.Join(in.dir, "policies", "broken.yaml"), []byte("version: agentgov/v1\nname: broken\nrules:\n  - id: r\n    when: 'agent.idd == 1'\n    effect: deny\n"), 0o644)
	code, m := in.call("POST", "/v1/policies/reload", "admin-tok", "")
	if code != 422 || !strings.Contains(errMsg(m), "broken.yaml:5") {
		t.Fatalf("bad reload: %d %v", code, m)
	}
	_, p2 := in.call("GET", "/v1/policies", "admin-tok", "")
	if p1["digest"] != p2["digest"] {
		t.Fatal("a refused set replaced the one in force")
	}
	if _, d := in.call("POST", "/v1/decide", "a1-tok", `{"tool":{"name":"read_file"},"args":{"path":"/tmp/x"}}`); d["effect"] != "allow" {
		t.Fatalf("old set not in force: %v", d)
	}
	// SIGHUP with the broken file still there is refused the same way.
	in.cmd.Process.Signal(syscall.SIGHUP)
	os.Remove(filepath.Join(in.dir, "policies", "broken.yaml"))
	os.WriteFile(filepath.Join(in.dir, "policies", "test.yaml"), []byte("version: agentgov/v1\nname: test\ndefault: deny\n"), 0o644)
	if code, _ := in.call("POST", "/v1/policies/reload", "admin-tok", ""); code != 200 {
		t.Fatalf("good reload: %d", code)
	}
	if _, d := in.call("POST", "/v1/decide", "a1-tok", `{"tool":{"name":"read_file"},"args":{"path":"/tmp/x"}}`); d["effect"] != "deny" {
		t.Fatalf("new set not in force: %v", d)
	}
}

func TestServeZeroConfig(t *testing.T) {
	dir := t.TempDir()
	addr := freePort(t)
	cmd := exec.Command(binPath, "serve", "--addr", addr)
	cmd.Dir = dir
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	sc := bufio.NewScanner(stdout)
	var token string
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); strings.HasPrefix(l, "agt_") {
			token = l
			break
		}
	}
	go io.Copy(io.Discard, stdout)
	fi, err := os.Stat(filepath.Join(dir, "agentgov-data", "admin.token"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("admin token file: %v %v", fi, err)
	}
	if token == "" {
		t.Fatal("admin token not printed")
	}
	in := &instance{t: t, url: "http://" + addr}
	for i := 0; i < 200; i++ {
		if resp, err := http.Get(in.url + "/healthz"); err == nil {
			resp.Body.Close()
			break
		}
		time.Sleep(25 * time.Millisecond)
	}
	if code, m := in.call("GET", "/v1/policies", token, ""); code != 200 {
		t.Fatalf("printed admin token does not work: %d %v", code, m)
	}
}
