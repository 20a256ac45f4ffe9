package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/agentgov/agentgov/audit"
	"github.com/agentgov/agentgov/stack"
	"github.com/agentgov/agentgov/store/sqlite"
)

// startAuditServer starts `agentgov serve` as startServer does, with extra
// lines appended to its configuration, on the data directory data (created
// by the caller or by the server).
func startAuditServer(t *testing.T, extra, data string) *instance {
	t.Helper()
	dir := t.TempDir()
	pol := filepath.Join(dir, "policies")
	os.MkdirAll(pol, 0o755)
	os.WriteFile(filepath.Join(pol, "test.yaml"), []byte(testPolicy), 0o644)
	cfg := fmt.Sprintf("tokens:\n  - {name: ops, role: admin, sha256: %s}\n  - {name: a1, role: agent, agent: a1, sha256: %s}\n%s",
		sum("admin-tok"), sum("a1-tok"), extra)
	os.WriteFile(filepath.Join(dir, "agentgov.yaml"), []byte(cfg), 0o644)
	if data == "" {
		data = filepath.Join(dir, "data")
	}
	in := &instance{t: t, dir: dir, data: data}
	in.args = []string{"serve", "--config", filepath.Join(dir, "agentgov.yaml"), "--policies", pol, "--data", in.data, "--addr", freePort(t)}
	in.start()
	t.Cleanup(in.stop)
	return in
}

func (in *instance) decide(n int) {
	in.t.Helper()
	for range n {
		if code, d := in.call("POST", "/v1/decide", "a1-tok", `{"tool":{"name":"read_file"},"args":{"path":"/tmp/x"}}`); code != 200 {
			in.t.Fatalf("decide: %d %v", code, d)
		}
	}
}

// agentgov runs the binary and returns its exit code and combined output.
func agentgov(t *testing.T, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, binPath, args...).CombinedOutput()
	if err == nil {
		return 0, string(out)
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), string(out)
	}
	t.Fatalf("agentgov %v: %v\n%s", args, err, out)
	return 0, ""
}

// sqlTamper edits a stopped server's database the way someone holding the
// data directory would, append-only triggers dropped first.
func sqlTamper(t *testing.T, data string, stmts ...string) {
	t.Helper()
	db, err := sql.Open("sqlite", filepath.Join(data, sqlite.FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, op := range []string{"update", "delete"} {
		for _, tbl := range []string{"audit_entries", "audit_nodes", "audit_checkpoints"} {
			if _, err := db.Exec(fmt.Sprintf("DROP TRIGGER IF EXISTS %s_no_%s", tbl, op)); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

func auditSize(t *testing.T, data string) int {
	t.Helper()
	db, err := sql.Open("sqlite", filepath.Join(data, sqlite.FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT COUNT(*) FROM audit_entries`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// A server killed before its next checkpoint leaves entries unsigned:
// verify does not call them ok, says what to do, and passes once a restart
// has signed them.
func TestAuditVerifyAfterSIGKILLAsksForARestart(t *testing.T) {
	in := startAuditServer(t, "audit: {checkpoint_interval: 1h}\n", "")
	in.decide(5)
	in.kill9()
	code, out := agentgov(t, "audit", "verify", "--data", in.data)
	if code != 1 || !strings.Contains(out, "not signed") || !strings.Contains(out, "start it again on this directory") {
		t.Fatalf("verify after SIGKILL: exit %d\n%s", code, out)
	}
	in.start()
	in.stop()
	if code, out := agentgov(t, "audit", "verify", "--data", in.data); code != 0 || !strings.HasSuffix(out, "ok\n") {
		t.Fatalf("verify after a restart: exit %d\n%s", code, out)
	}
}

// A server that stopped cleanly signed everything; deleting its newest
// checkpoints and rewriting what they covered is refused, not ok.
func TestAuditVerifyRefusesATailWhoseCheckpointsWereDeleted(t *testing.T) {
	in := startAuditServer(t, "audit: {checkpoint_every: 3, checkpoint_interval: 1h}\n", "")
	in.decide(8)
	in.stop()
	sqlTamper(t, in.data,
		`DELETE FROM audit_checkpoints WHERE size > 3`,
		`UPDATE audit_entries SET data = replace(data, '/tmp/x', '/tmp/y') WHERE idx = 5`,
		`DELETE FROM audit_nodes`)
	rebuildNodes(t, in.data)
	code, out := agentgov(t, "audit", "verify", "--data", in.data)
	if code != 1 || !strings.Contains(out, "first bad index 3: not signed") || !strings.Contains(out, "its final checkpoint was deleted") {
		t.Fatalf("verify: exit %d\n%s", code, out)
	}
}

// A head exported while the server ran (GET /v1/audit/checkpoint) and kept
// elsewhere: the log must still hold it.
func TestAuditVerifyAgainstAnExportedHead(t *testing.T) {
	in := startAuditServer(t, "", "")
	in.decide(6)
	code, cp := in.call("GET", "/v1/audit/checkpoint", "admin-tok", "")
	if code != 200 {
		t.Fatalf("checkpoint: %d %v", code, cp)
	}
	size := int(cp["size"].(float64))
	elsewhere := t.TempDir()
	noteFile := filepath.Join(elsewhere, "head.note")
	os.WriteFile(noteFile, []byte(cp["checkpoint"].(string)), 0o644)
	raw, _ := json.Marshal(cp)
	jsonFile := filepath.Join(elsewhere, "head.json")
	os.WriteFile(jsonFile, raw, 0o644)
	in.decide(2)
	in.stop()

	for _, f := range []string{noteFile, jsonFile} {
		code, out := agentgov(t, "audit", "verify", "--data", in.data, "--checkpoint", f)
		if code != 0 || !strings.Contains(out, fmt.Sprintf("(tree size %d): the log holds it", size)) {
			t.Fatalf("verify --checkpoint %s: exit %d\n%s", filepath.Base(f), code, out)
		}
	}

	// Cut the log back below the head, with the checkpoints and tree nodes
	// that would give the cut away: consistent in itself, not with the head.
	keep := size - 2
	sqlTamper(t, in.data,
		fmt.Sprintf(`DELETE FROM audit_entries WHERE idx >= %d`, keep),
		fmt.Sprintf(`DELETE FROM audit_checkpoints WHERE size > %d`, keep),
		fmt.Sprintf(`DELETE FROM audit_nodes WHERE ((idx + 1) << level) > %d`, keep))
	key, _, err := audit.LoadOrCreateKey(in.data, "")
	if err != nil {
		t.Fatal(err)
	}
	resignAt(t, in.data, key, keep)
	if code, out := agentgov(t, "audit", "verify", "--data", in.data); code != 0 {
		t.Fatalf("set-up: the cut log should verify by itself: exit %d\n%s", code, out)
	}
	code, out := agentgov(t, "audit", "verify", "--data", in.data, "--checkpoint", noteFile)
	if code != 1 || !strings.Contains(out, fmt.Sprintf("truncated: the log ends at %d entries but the head given covers %d", keep, size)) {
		t.Fatalf("verify --checkpoint after the cut: exit %d\n%s", code, out)
	}
}

// resignAt stores a checkpoint at size signed with key: what someone who
// can read the key in the data directory can do.
func resignAt(t *testing.T, data string, key note.Signer, size int) {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.OpenAuditReadOnly(ctx, filepath.Join(data, sqlite.FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.AuditRows(ctx, -1, size)
	if err != nil || len(rows) != size {
		t.Fatalf("entries: %d, %v", len(rows), err)
	}
	rng := newRange()
	for _, r := range rows {
		if err := rng.Append(audit.LeafHash(r.Data), nil); err != nil {
			t.Fatal(err)
		}
	}
	root, err := rng.GetRootHash(nil)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := note.Sign(&note.Note{Text: string(audit.FormatCheckpoint(audit.TreeHead{Origin: key.Name(), Size: uint64(size), Root: root}))}, key)
	if err != nil {
		t.Fatal(err)
	}
	sqlTamper(t, data, fmt.Sprintf(`INSERT OR REPLACE INTO audit_checkpoints (size, note) VALUES (%d, x'%x')`, size, msg))
}

// With audit.key_file the data directory holds no key at all: verify asks
// for the public key, and a log rewritten and signed with a key the
// attacker made does not verify with it.
func TestServeWithTheSigningKeyOutsideTheDataDirectory(t *testing.T) {
	keys := filepath.Join(t.TempDir(), "keys")
	keyFile := filepath.Join(keys, "audit.key")
	in := startAuditServer(t, fmt.Sprintf("audit: {key_file: %s}\n", keyFile), "")
	in.decide(3)
	in.stop()
	for _, name := range []string{audit.KeyFile, audit.PubFile} {
		if _, err := os.Stat(filepath.Join(in.data, name)); err == nil {
			t.Fatalf("%s written to the data directory despite audit.key_file", name)
		}
	}
	if fi, err := os.Stat(keyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", fi, err)
	}
	pub := filepath.Join(keys, "audit.pub")
	code, out := agentgov(t, "audit", "verify", "--data", in.data)
	if code != 1 || !strings.Contains(out, "pass --pub") {
		t.Fatalf("verify without --pub: exit %d\n%s", code, out)
	}
	code, out = agentgov(t, "audit", "verify", "--data", in.data, "--pub", pub)
	if code != 0 || strings.Contains(out, "in the data directory itself") {
		t.Fatalf("verify --pub: exit %d\n%s", code, out)
	}

	// The attacker rewrites an entry and signs the log with a key of their
	// own, dropped into the data directory for good measure.
	skey, vkey, err := note.GenerateKey(rand.Reader, stack.AuditOrigin)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(in.data, audit.KeyFile), []byte(skey+"\n"), 0o600)
	os.WriteFile(filepath.Join(in.data, audit.PubFile), []byte(vkey+"\n"), 0o644)
	forger, _ := note.NewSigner(skey)
	n := auditSize(t, in.data)
	sqlTamper(t, in.data,
		`DELETE FROM audit_checkpoints`,
		`UPDATE audit_entries SET data = replace(data, '/tmp/x', '/tmp/y') WHERE idx = 1`,
		`DELETE FROM audit_nodes`)
	rebuildNodes(t, in.data)
	resignAt(t, in.data, forger, n)
	code, out = agentgov(t, "audit", "verify", "--data", in.data)
	if code != 0 || !strings.Contains(out, "in the data directory itself") {
		t.Fatalf("set-up: the forged directory vouches for itself, with a warning: exit %d\n%s", code, out)
	}
	code, out = agentgov(t, "audit", "verify", "--data", in.data, "--pub", pub)
	if code != 1 || !strings.Contains(out, "signature does not verify") {
		t.Fatalf("verify --pub of a log signed with another key: exit %d\n%s", code, out)
	}
}

// The key in the data directory (the default) is named for what it is.
func TestAuditVerifySaysAKeyInTheDataDirectoryProvesNothing(t *testing.T) {
	in := startAuditServer(t, "", "")
	in.stop()
	code, out := agentgov(t, "audit", "verify", "--data", in.data)
	if code != 0 || !strings.Contains(out, "proves nothing against someone who could rewrite the directory") {
		t.Fatalf("verify: exit %d\n%s", code, out)
	}
	if code, out := agentgov(t, "audit", "verify", "--data", in.data, "--pub", filepath.Join(in.data, audit.PubFile)); code != 0 || strings.Contains(out, "proves nothing") {
		t.Fatalf("verify --pub: exit %d\n%s", code, out)
	}
}

// rebuildNodes recomputes every tree node from the stored entries, as an
// attacker covering their tracks would.
func rebuildNodes(t *testing.T, data string) {
	t.Helper()
	ctx := context.Background()
	ro, err := sqlite.OpenAuditReadOnly(ctx, filepath.Join(data, sqlite.FileName))
	if err != nil {
		t.Fatal(err)
	}
	rows, err := ro.AuditRows(ctx, -1, 100000)
	ro.Close()
	if err != nil {
		t.Fatal(err)
	}
	var stmts []string
	rng := newRange()
	for _, r := range rows {
		err := rng.Append(audit.LeafHash(r.Data), func(id nodeID, h []byte) {
			stmts = append(stmts, fmt.Sprintf(`INSERT INTO audit_nodes (level, idx, hash) VALUES (%d, %d, x'%x')`, id.Level, id.Index, h))
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	sqlTamper(t, data, stmts...)
}

// One data directory, one process: a second server, or an MCP gateway, on
// a directory in use is refused at start and says by whom; audit verify
// still reads it; and a holder killed with SIGKILL blocks nothing.
func TestASecondProcessOnADataDirectoryIsRefused(t *testing.T) {
	in := startAuditServer(t, "", "")
	in.decide(2)
	pid := strconv.Itoa(in.cmd.Process.Pid)
	for _, args := range [][]string{
		{"serve", "--policies", filepath.Join(in.dir, "policies"), "--data", in.data, "--addr", freePort(t)},
		{"mcp", "run", "--data", in.data, "--", "true"},
	} {
		code, out := agentgov(t, args...)
		if code == 0 || !strings.Contains(out, "data directory "+in.data+" is in use by another agentgov process (pid "+pid+")") {
			t.Fatalf("agentgov %s on a directory in use: exit %d\n%s", args[0], code, out)
		}
	}
	if code, d := in.call("POST", "/v1/decide", "a1-tok", `{"tool":{"name":"read_file"},"args":{"path":"/tmp/x"}}`); code != 200 || d["effect"] != "allow" {
		t.Fatalf("the first server after the refusals: %d %v", code, d)
	}
	if code, out := agentgov(t, "audit", "verify", "--data", in.data, "--wait", "10s"); code != 0 {
		t.Fatalf("verify of a live directory: exit %d\n%s", code, out)
	}
	in.kill9()
	in.start() // the lock died with its holder
	in.decide(1)
}

type nodeID = compact.NodeID

func newRange() *compact.Range {
	return (&compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}).NewEmptyRange(0)
}
