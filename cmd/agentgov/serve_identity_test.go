package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/agentgov/agentgov/identity"
)

const identityAudience = "https://agentgov.identity.test"

// startIdentityServer is startServerWith whose configuration sets the
// server's audience.
func startIdentityServer(t *testing.T) *instance {
	t.Helper()
	dir := t.TempDir()
	pol := filepath.Join(dir, "policies")
	os.MkdirAll(pol, 0o755)
	os.WriteFile(filepath.Join(pol, "test.yaml"), []byte(testPolicy), 0o644)
	cfg := fmt.Sprintf(`
tokens:
  - {name: ops, role: admin, sha256: %s}
  - {name: a1, role: agent, agent: a1, sha256: %s}
audit: {checkpoint_interval: 100ms}
identity: {audience: %q}
`, sum("admin-tok"), sum("a1-tok"), identityAudience)
	os.WriteFile(filepath.Join(dir, "agentgov.yaml"), []byte(cfg), 0o644)
	in := &instance{t: t, dir: dir, data: filepath.Join(dir, "data")}
	in.args = []string{"serve", "--config", filepath.Join(dir, "agentgov.yaml"), "--policies", pol, "--data", in.data, "--addr", freePort(t)}
	in.start()
	t.Cleanup(in.stop)
	return in
}

// cli runs the agentgov binary against the instance with the admin token.
func (in *instance) cli(args ...string) (string, error) {
	cmd := exec.Command(binPath, args...)
	cmd.Dir = in.dir
	cmd.Env = append(os.Environ(), "AGENTGOV_SERVER="+in.url, "AGENTGOV_TOKEN=admin-tok")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// agentJWT signs a fresh JWT as agent id with the seed in keyFile.
func agentJWT(t *testing.T, keyFile, id string, edit func(jwt.MapClaims)) string {
	t.Helper()
	b, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	seed, err := base64.RawURLEncoding.DecodeString(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	c := jwt.MapClaims{"iss": id, "sub": id, "aud": identityAudience, "iat": now.Unix(), "exp": now.Add(2 * time.Minute).Unix(), "jti": rand.Text()}
	if edit != nil {
		edit(c)
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c)
	tok.Header["kid"] = "k1"
	s, err := tok.SignedString(ed25519.NewKeyFromSeed(seed))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func reasonOf(m map[string]any) string {
	e, _ := m["error"].(map[string]any)
	s, _ := e["reason"].(string)
	return s
}

// auditKinds reads the whole audit log as admin.
func (in *instance) auditEntries() []map[string]any {
	in.t.Helper()
	_, m := in.call("GET", "/v1/audit?limit=1000", "admin-tok", "")
	var out []map[string]any
	for _, e := range m["entries"].([]any) {
		out = append(out, e.(map[string]any))
	}
	return out
}

// The whole identity path against the running binary: keys made and
// registered with the CLI, agent-signed JWTs deciding, every refusal a
// 401 naming why and audited, a delegation chain of depth 3 that only
// narrows, the same credentials on the model proxy, and a revocation in
// force on the next request.
func TestServeAgentIdentity(t *testing.T) {
	in := startIdentityServer(t)
	keys := filepath.Join(in.dir, "keys")
	os.MkdirAll(keys, 0o700)
	for _, id := range []string{"planner", "coder", "tester", "reader", "extra"} {
		out, err := in.cli("keygen", "--out", filepath.Join(keys, id))
		if err != nil || !strings.Contains(out, "thumbprint: ") {
			t.Fatalf("keygen: %v\n%s", err, out)
		}
		if fi, err := os.Stat(filepath.Join(keys, id+".key")); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("private key mode: %v %v", fi.Mode(), err)
		}
		if out, err := in.cli("agents", "register", id, "--pub", filepath.Join(keys, id+".pub"), "--type", "assistant", "--user", "alice"); err != nil || !strings.Contains(out, "registered "+id) {
			t.Fatalf("register %s: %v\n%s", id, err, out)
		}
	}
	if out, err := in.cli("keygen", "--out", filepath.Join(keys, "planner")); err == nil {
		t.Fatalf("keygen overwrote a key: %s", out)
	}
	pub, _ := os.ReadFile(filepath.Join(keys, "planner.pub"))
	p, _ := identity.ParsePublicKey(string(pub))
	thumb := identity.Thumbprint(p)
	out, err := in.cli("agents", "list")
	if err != nil || !strings.Contains(out, "planner") || !strings.Contains(out, "reader") {
		t.Fatalf("agents list: %v\n%s", err, out)
	}

	key := func(id string) string { return filepath.Join(keys, id+".key") }
	decide := func(tok, tool string) (int, map[string]any) {
		return in.call("POST", "/v1/decide", tok, `{"tool":{"name":"`+tool+`"}}`)
	}

	// A signed JWT decides as its agent; the audit entry names the key.
	tok := agentJWT(t, key("planner"), "planner", nil)
	code, d := decide(tok, "read_notes")
	if code != 200 || d["effect"] != "allow" {
		t.Fatalf("decide with a JWT: %d %v", code, d)
	}
	var found bool
	for _, e := range in.auditEntries() {
		if e["kind"] != "decision" {
			continue
		}
		rec := e["record"].(map[string]any)
		if rec["decision"].(map[string]any)["id"] != d["id"] {
			continue
		}
		ag := rec["action"].(map[string]any)["agent"].(map[string]any)
		cred, _ := ag["credential"].(map[string]any)
		if ag["id"] != "planner" || cred["kind"] != "jwt" || cred["thumbprint"] != thumb {
			t.Fatalf("the decision's audit record: %v", ag)
		}
		found = true
	}
	if !found {
		t.Fatal("the decision is not in the audit log")
	}

	// Refusals: 401, the reason in the body, an audit entry each.
	refusals := []struct {
		name, tok, reason string
	}{
		{"replayed", tok, "replayed"},
		{"wrong audience", agentJWT(t, key("planner"), "planner", func(c jwt.MapClaims) { c["aud"] = "https://elsewhere.test" }), "audience"},
		{"expired", agentJWT(t, key("planner"), "planner", func(c jwt.MapClaims) {
			c["iat"], c["exp"] = time.Now().Add(-4*time.Minute).Unix(), time.Now().Add(-2*time.Minute).Unix()
		}), "expired"},
		{"forged", agentJWT(t, key("coder"), "planner", nil), "signature"},
		{"wrong issuer", agentJWT(t, key("planner"), "nobody", nil), "issuer"},
	}
	for _, r := range refusals {
		code, m := decide(r.tok, "read_notes")
		if code != 401 || reasonOf(m) != r.reason {
			t.Errorf("%s: %d %v, want 401 %s", r.name, code, m, r.reason)
		}
	}
	refused := map[string]bool{}
	for _, e := range in.auditEntries() {
		if e["kind"] == "credential_refused" {
			refused[e["record"].(map[string]any)["reason"].(string)] = true
		}
	}
	for _, r := range refusals {
		if !refused[r.reason] {
			t.Errorf("no credential_refused entry with reason %s (have %v)", r.reason, refused)
		}
	}

	// A body cannot claim a delegation or a credential.
	if code, m := in.call("POST", "/v1/decide", agentJWT(t, key("planner"), "planner", nil),
		`{"agent":{"id":"planner","delegation":[{"id":"x","agent":"root","delegate":"planner","expires_at":"2099-01-01T00:00:00Z","max_depth":9}]},"tool":{"name":"read_notes"}}`); code != 403 {
		t.Fatalf("a body claiming a delegation: %d %v", code, m)
	}

	// Delegation, depth 3: planner → coder → tester → reader.
	delegate := func(tok, body string) (int, map[string]any) {
		return in.call("POST", "/v1/delegations", tok, body)
	}
	code, m := delegate(agentJWT(t, key("planner"), "planner", nil), `{"agent":"coder","tools":["read_*","pay"],"expires_in":600,"max_depth":2}`)
	if code != 201 {
		t.Fatalf("delegate to coder: %d %v", code, m)
	}
	t1 := m["token"].(string)
	code, m = delegate(t1, `{"agent":"tester","tools":["read_file","read_notes"],"expires_in":300,"max_depth":1}`)
	if code != 201 {
		t.Fatalf("delegate to tester: %d %v", code, m)
	}
	t2 := m["token"].(string)
	code, m = delegate(t2, `{"agent":"reader","tools":["shell"],"expires_in":60}`)
	if code != 403 || !strings.Contains(errMsg(m), `"shell" is not within`) {
		t.Fatalf("a widening delegation: %d %v", code, m)
	}
	code, m = delegate(t2, `{"agent":"reader","tools":["read_notes"],"expires_in":60}`)
	if code != 201 {
		t.Fatalf("delegate to reader: %d %v", code, m)
	}
	if chain := m["delegation"].([]any); len(chain) != 3 {
		t.Fatalf("chain of %d links", len(chain))
	}
	t3 := m["token"].(string)
	if code, d := decide(t3, "read_notes"); code != 200 || d["effect"] != "allow" {
		t.Fatalf("reader within its chain: %d %v", code, d)
	}
	code, d = decide(t3, "read_file")
	if code != 200 || d["effect"] != "deny" || !strings.Contains(fmt.Sprint(d["reasons"]), "does not cover tool read_file") {
		t.Fatalf("reader outside its own link: %d %v", code, d)
	}
	if code, m := delegate(t3, `{"agent":"extra","expires_in":10}`); code != 403 {
		t.Fatalf("a delegation with max_depth 0 delegated: %d %v", code, m)
	}
	var refusedDelegation bool
	for _, e := range in.auditEntries() {
		if e["kind"] == "delegation" && e["record"].(map[string]any)["event"] == "refused" {
			refusedDelegation = true
		}
	}
	if !refusedDelegation {
		t.Fatal("the widening delegation was not audited")
	}

	// The model proxy takes the same credentials.
	for name, c := range map[string]string{"a delegation token": t3, "an agent JWT": agentJWT(t, key("coder"), "coder", nil)} {
		req, _ := http.NewRequest("GET", in.url+"/llm/v1/models", nil)
		req.Header.Set("Authorization", "Bearer "+c)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("model proxy with %s: %d %s", name, resp.StatusCode, body)
		}
	}
	req, _ := http.NewRequest("GET", in.url+"/llm/v1/models", nil)
	req.Header.Set("Authorization", "Bearer "+tok) // replayed
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("model proxy with a replayed JWT: %d", resp.StatusCode)
	}

	// Revocation: in force on the next request, for the agent and for
	// every delegation below it.
	if out, err := in.cli("agents", "revoke", "planner"); err != nil || !strings.Contains(out, "revoked planner") {
		t.Fatalf("revoke: %v\n%s", err, out)
	}
	if code, m := decide(agentJWT(t, key("planner"), "planner", nil), "read_notes"); code != 401 || reasonOf(m) != "revoked" {
		t.Fatalf("a revoked agent's fresh JWT: %d %v", code, m)
	}
	if code, m := decide(t3, "read_notes"); code != 401 || reasonOf(m) != "revoked" {
		t.Fatalf("a delegation under a revoked agent: %d %v", code, m)
	}
	code, m = in.call("GET", "/v1/agents/planner", "admin-tok", "")
	if code != 200 || m["revoked_at"] == nil {
		t.Fatalf("GET the revoked agent: %d %v", code, m)
	}
	if code, _ := in.call("POST", "/v1/agents", "admin-tok", `{"id":"planner","keys":[{"kid":"k1","public_key":"`+strings.TrimSpace(string(pub))+`"}]}`); code != 409 {
		t.Fatalf("a revoked id registered again: %d", code)
	}
	if code, m := in.call("POST", "/v1/agents", "a1-tok", `{"id":"x"}`); code != 403 {
		t.Fatalf("an agent registering: %d %v", code, m)
	}
	if code, m := in.call("POST", "/v1/agents", "admin-tok", `{"id":"x","keys":[{"kid":"k1","public_key":"short"}]}`); code != 400 || !strings.Contains(errMsg(m), "keys[0].public_key") {
		t.Fatalf("a bad key: %d %v", code, m)
	}
	if code, m := in.call("POST", "/v1/agents", "admin-tok", `{"id":"x","keys":[{"kid":"k1","public_key":"`+strings.TrimSpace(string(pub))+`","thumbprint":"forged"}]}`); code != 400 {
		t.Fatalf("a registration setting a thumbprint: %d %v", code, m)
	}
	// A revoked agent's static token goes too.
	if code, _ := decide("a1-tok", "read_notes"); code != 200 {
		t.Fatalf("a1's static token before: %d", code)
	}
	if out, err := in.cli("agents", "register", "a1", "--pub", filepath.Join(keys, "extra.pub")); err != nil {
		t.Fatalf("register a1: %v\n%s", err, out)
	}
	if out, err := in.cli("agents", "revoke", "a1"); err != nil {
		t.Fatalf("revoke a1: %v\n%s", err, out)
	}
	if code, m := decide("a1-tok", "read_notes"); code != 401 || reasonOf(m) != "revoked" {
		t.Fatalf("a revoked agent's static token: %d %v", code, m)
	}
	var kinds []string
	for _, e := range in.auditEntries() {
		if e["kind"] == "agent" {
			kinds = append(kinds, e["record"].(map[string]any)["event"].(string))
		}
	}
	if b, _ := json.Marshal(kinds); string(b) != `["register","register","register","register","register","revoke","register","revoke"]` {
		t.Fatalf("agent audit entries: %s", b)
	}
}
