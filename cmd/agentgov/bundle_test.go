package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentgov/agentgov/audit"
	"github.com/agentgov/agentgov/store/sqlite"
)

// writeKeyPair writes PREFIX.key (the seed, 0600) and PREFIX.pub as
// `agentgov keygen` does.
func writeKeyPair(t *testing.T, prefix string) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(prefix+".key", []byte(base64.RawURLEncoding.EncodeToString(priv.Seed())+"\n"), 0o600)
	os.WriteFile(prefix+".pub", []byte(base64.RawURLEncoding.EncodeToString(pub)+"\n"), 0o644)
}

// tamperBundle rewrites one file inside a bundle the way someone who can
// write the file would, leaving its manifest and signatures as they were.
func tamperBundle(t *testing.T, src, dst, file, from, to string) {
	t.Helper()
	raw, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		d, _ := io.ReadAll(tr)
		if h.Name == file {
			d = []byte(strings.Replace(string(d), from, to, 1))
			if bytes.Equal(d, raw) {
				t.Fatal("nothing replaced")
			}
		}
		h.Size = int64(len(d))
		tw.WriteHeader(h)
		tw.Write(d)
	}
	tw.Close()
	zw.Close()
	if err := os.WriteFile(dst, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// auditRecords reads a stopped server's log: each entry's kind and record.
func auditRecords(t *testing.T, data string) []audit.Entry {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.OpenAuditReadOnly(ctx, filepath.Join(data, sqlite.FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var all []audit.Entry
	after := int64(-1)
	for {
		es, err := audit.Entries(ctx, db, after, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(es) == 0 {
			return all
		}
		all = append(all, es...)
		after = int64(es[len(es)-1].Index)
	}
}

func TestSignedBundlesFromBuildToAServerThatRefusesTampering(t *testing.T) {
	dir := t.TempDir()
	pol := filepath.Join(dir, "policies")
	os.MkdirAll(pol, 0o755)
	os.WriteFile(filepath.Join(pol, "test.yaml"), []byte(testPolicy), 0o644)
	writeKeyPair(t, filepath.Join(dir, "release"))
	writeKeyPair(t, filepath.Join(dir, "stranger"))
	bun := filepath.Join(dir, "policies.tar.gz")

	code, out := agentgov(t, "bundle", "build", pol, "-o", bun)
	if code != 0 || !strings.HasPrefix(out, "sha256:") {
		t.Fatalf("build: %d %s", code, out)
	}
	digest := strings.TrimSpace(out)
	if code, out := agentgov(t, "bundle", "verify", "--pub", filepath.Join(dir, "release.pub"), bun); code != 1 || !strings.Contains(out, "not signed") {
		t.Fatalf("verify of an unsigned bundle: %d %s", code, out)
	}
	if code, out := agentgov(t, "bundle", "sign", "--key", filepath.Join(dir, "release.key"), bun); code != 0 || strings.TrimSpace(out) != digest {
		t.Fatalf("sign: %d %s (want %s)", code, out, digest)
	}
	if code, out := agentgov(t, "bundle", "verify", "--pub", filepath.Join(dir, "release.pub"), bun); code != 0 || strings.TrimSpace(out) != digest {
		t.Fatalf("verify: %d %s", code, out)
	}
	if code, out := agentgov(t, "bundle", "verify", "--pub", filepath.Join(dir, "stranger.pub"), bun); code != 1 || !strings.Contains(out, "not signed by a trusted key") {
		t.Fatalf("verify with another key: %d %s", code, out)
	}
	// A key file others may read is refused for signing.
	os.Chmod(filepath.Join(dir, "stranger.key"), 0o644)
	if code, out := agentgov(t, "bundle", "sign", "--key", filepath.Join(dir, "stranger.key"), bun); code != 1 || !strings.Contains(out, "chmod 600") {
		t.Fatalf("sign with a readable key: %d %s", code, out)
	}

	// Someone who can write the bundle turns the /etc deny into an allow.
	tampered := filepath.Join(dir, "tampered.tar.gz")
	tamperBundle(t, bun, tampered, "test.yaml", "effect: deny", "effect: allow")
	if code, out := agentgov(t, "bundle", "verify", "--pub", filepath.Join(dir, "release.pub"), tampered); code != 1 || !strings.Contains(out, "does not match its manifest") {
		t.Fatalf("verify of a tampered bundle: %d %s", code, out)
	}

	cfg := fmt.Sprintf("tokens:\n  - {name: ops, role: admin, sha256: %s}\n  - {name: a1, role: agent, agent: a1, sha256: %s}\npolicy_trust: {keys: [%s]}\naudit: {checkpoint_interval: 100ms}\n",
		sum("admin-tok"), sum("a1-tok"), filepath.Join(dir, "release.pub"))
	cfgPath := filepath.Join(dir, "agentgov.yaml")
	os.WriteFile(cfgPath, []byte(cfg), 0o644)

	// At start, the tampered bundle, an unsigned directory and the
	// built-in pack are refused, each saying why.
	for _, c := range []struct{ policies, want string }{
		{tampered, "does not match its manifest"},
		{pol, "must be a signed bundle"},
		{"", "must be a signed bundle"},
	} {
		args := []string{"serve", "--config", cfgPath, "--data", filepath.Join(dir, "refused"), "--addr", freePort(t)}
		if c.policies != "" {
			args = append(args, "--policies", c.policies)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		outb, err := exec.CommandContext(ctx, binPath, args...).CombinedOutput()
		cancel()
		if err == nil || !strings.Contains(string(outb), c.want) {
			t.Fatalf("serve --policies %q: %v\n%s", c.policies, err, outb)
		}
	}

	// The signed bundle serves; its digest is in every decision record.
	live := filepath.Join(dir, "live.tar.gz")
	copyFile(t, bun, live)
	in := &instance{t: t, dir: dir, data: filepath.Join(dir, "data")}
	in.args = []string{"serve", "--config", cfgPath, "--policies", live, "--data", in.data, "--addr", freePort(t)}
	in.start()
	t.Cleanup(in.stop)
	if code, d := in.call("POST", "/v1/decide", "a1-tok", `{"tool":{"name":"read_file"},"args":{"path":"/etc/passwd"}}`); code != 200 || d["effect"] != "deny" {
		t.Fatalf("decide: %d %v", code, d)
	}
	_, pols := in.call("GET", "/v1/policies", "admin-tok", "")
	inForce := pols["digest"]

	// On reload, a tampered bundle is refused and the signed set stays.
	copyFile(t, tampered, live)
	if code, m := in.call("POST", "/v1/policies/reload", "admin-tok", ""); code != 422 || !strings.Contains(errMsg(m), "does not match its manifest") {
		t.Fatalf("reload of a tampered bundle: %d %v", code, m)
	}
	if _, p := in.call("GET", "/v1/policies", "admin-tok", ""); p["digest"] != inForce {
		t.Fatalf("policy in force changed: %v, was %v", p["digest"], inForce)
	}
	if code, d := in.call("POST", "/v1/decide", "a1-tok", `{"tool":{"name":"read_file"},"args":{"path":"/etc/passwd"}}`); code != 200 || d["effect"] != "deny" {
		t.Fatalf("decide after a refused reload: %d %v", code, d)
	}
	in.stop()

	decisions, refused := 0, 0
	for _, e := range auditRecords(t, in.data) {
		var r map[string]any
		json.Unmarshal(e.Record, &r)
		switch {
		case e.Kind == "decision":
			decisions++
			if r["bundle"] != digest {
				t.Errorf("decision %d names bundle %v, want %s", e.Index, r["bundle"], digest)
			}
		case e.Kind == "policy_load" && r["event"] == "refused":
			refused++
			if !strings.Contains(fmt.Sprint(r["error"]), "does not match its manifest") {
				t.Errorf("refusal record: %v", r)
			}
		case e.Kind == "policy_load" && r["event"] == "start" && r["bundle"] != digest:
			t.Errorf("start record: %v", r)
		}
	}
	if decisions != 2 || refused != 1 {
		t.Fatalf("%d decisions, %d refusals in the log", decisions, refused)
	}
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestAServerUnderPolicyTrustLoadsOnlyASignedMCPLock(t *testing.T) {
	dir := t.TempDir()
	pol := filepath.Join(dir, "policies")
	os.MkdirAll(pol, 0o755)
	os.WriteFile(filepath.Join(pol, "test.yaml"), []byte(testPolicy), 0o644)
	writeKeyPair(t, filepath.Join(dir, "release"))
	bun := filepath.Join(dir, "p.tar.gz")
	if code, out := agentgov(t, "bundle", "build", pol, "-o", bun); code != 0 {
		t.Fatal(out)
	}
	if code, out := agentgov(t, "bundle", "sign", "--key", filepath.Join(dir, "release.key"), bun); code != 0 {
		t.Fatal(out)
	}
	lock := filepath.Join(dir, "mcp.lock")
	os.WriteFile(lock, []byte("# reviewed pins\n"), 0o644)
	cfgPath := filepath.Join(dir, "agentgov.yaml")
	os.WriteFile(cfgPath, []byte(fmt.Sprintf("tokens:\n  - {name: ops, role: admin, sha256: %s}\npolicy_trust: {keys: [%s]}\nmcp:\n  lock: %s\n  servers:\n    fs: {command: [/bin/true]}\n",
		sum("admin-tok"), filepath.Join(dir, "release.pub"), lock)), 0o644)
	serve := func() (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, binPath, "serve", "--config", cfgPath, "--policies", bun, "--data", filepath.Join(dir, "data"), "--addr", freePort(t)).CombinedOutput()
		return string(out), err
	}
	if out, err := serve(); err == nil || !strings.Contains(out, "not signed") {
		t.Fatalf("an unsigned lock: %v\n%s", err, out)
	}
	if code, out := agentgov(t, "bundle", "sign", "--key", filepath.Join(dir, "release.key"), lock); code != 0 {
		t.Fatal(out)
	}
	// Signed: the server starts (and runs until the test's deadline).
	if out, _ := serve(); !strings.Contains(out, "agentgov serving") {
		t.Fatalf("a signed lock:\n%s", out)
	}
	// A pin added after signing is refused.
	os.WriteFile(lock, []byte("# reviewed pins, and one more line\n"), 0o644)
	if out, err := serve(); err == nil || !strings.Contains(out, "does not match its manifest") {
		t.Fatalf("a lock changed after signing: %v\n%s", err, out)
	}
	// A FIFO in the lock's place would be read without end: refused at
	// start, saying why.
	os.Remove(lock)
	if err := exec.Command("mkfifo", lock).Run(); err != nil {
		t.Logf("mkfifo: %v; the FIFO case is not tried", err)
		return
	}
	if out, err := serve(); err == nil || !strings.Contains(out, "is not a regular file") {
		t.Fatalf("a FIFO for the lock: %v\n%s", err, out)
	}
}

func TestPolicyEvalReadsABundle(t *testing.T) {
	dir := t.TempDir()
	pol := filepath.Join(dir, "policies")
	os.MkdirAll(pol, 0o755)
	os.WriteFile(filepath.Join(pol, "test.yaml"), []byte(testPolicy), 0o644)
	bun := filepath.Join(dir, "p.tar.gz")
	if code, out := agentgov(t, "bundle", "build", pol, "-o", bun); code != 0 {
		t.Fatal(out)
	}
	code, out, errOut := runCLI(t, `{"agent":{"id":"a1"},"tool":{"name":"read_file"},"args":{"path":"/etc/passwd"}}`, "policy", "eval", "--policies", bun)
	if code != 0 || !strings.Contains(out, `"effect": "deny"`) && !strings.Contains(out, `"effect":"deny"`) {
		t.Fatalf("eval of a bundle: %d %s %s", code, out, errOut)
	}
}
