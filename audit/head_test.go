package audit_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/transparency-dev/merkle/compact"
	"golang.org/x/mod/sumdb/note"

	"github.com/agentgov/agentgov/audit"
	"github.com/agentgov/agentgov/store/sqlite"
)

// These tests play someone who can rewrite the data directory: the
// database, and the key files when they are kept there. What they show is
// what each safeguard buys: checkpoints must cover every entry, a head kept
// elsewhere bounds what can be deleted or rewritten, and a key kept
// elsewhere is what stops a rewrite from being signed again.

// verifyWith verifies the log in dir with key v and an optional head.
func verifyWith(t *testing.T, dir string, v note.Verifier, head []byte) audit.Report {
	t.Helper()
	db, err := sqlite.OpenAuditReadOnly(context.Background(), filepath.Join(dir, sqlite.FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rep, err := audit.Verify(context.Background(), db, v, audit.VerifyOptions{Head: head})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func dirVerifier(t *testing.T, dir string) note.Verifier {
	t.Helper()
	v, err := audit.LoadVerifier(filepath.Join(dir, audit.PubFile))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// storedHead reads the checkpoint note at size, as an operator exporting
// heads would have saved it before the attack.
func storedHead(t *testing.T, dir string, size int) []byte {
	t.Helper()
	db, err := sql.Open("sqlite", filepath.Join(dir, sqlite.FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	return checkpointNote(t, db, size)
}

// rootAt is the Merkle root of the first size stored entries.
func rootAt(t *testing.T, db *sql.DB, size int) []byte {
	t.Helper()
	rng := (&compact.RangeFactory{Hash: testHasher.HashChildren}).NewEmptyRange(0)
	for i := range size {
		if err := rng.Append(testHasher.HashLeaf(entryData(t, db, i)), nil); err != nil {
			t.Fatal(err)
		}
	}
	root, err := rng.GetRootHash(nil)
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// resign stores checkpoints at sizes over the entries as they now are,
// signed with signer: what someone holding the signing key can do.
func resign(t *testing.T, db *sql.DB, signer note.Signer, sizes ...int) {
	t.Helper()
	for _, size := range sizes {
		body := audit.FormatCheckpoint(audit.TreeHead{Origin: signer.Name(), Size: uint64(size), Root: rootAt(t, db, size)})
		msg, err := note.Sign(&note.Note{Text: string(body)}, signer)
		if err != nil {
			t.Fatal(err)
		}
		mustExec(t, db, `INSERT INTO audit_checkpoints (size, note) VALUES (?, ?)`, size, msg)
	}
}

func wantBad(t *testing.T, rep audit.Report, firstBad int64, reason string) {
	t.Helper()
	if rep.OK() || rep.FirstBad != firstBad || !strings.Contains(rep.Reason, reason) {
		t.Fatalf("report %+v\nwant first bad index %d with %q", rep, firstBad, reason)
	}
}

// Deleting every checkpoint leaves nothing that ties the entries to the
// key: anyone could then rewrite any entry and rebuild the tree. Such a log
// does not verify.
func TestVerifyRefusesEntriesNoCheckpointCovers(t *testing.T) {
	dir := tamperLog(t)
	tamper(t, dir, func(db *sql.DB) {
		mustExec(t, db, `DELETE FROM audit_checkpoints`)
		rewriteEntry(t, db, 12)
		rebuildTree(t, db)
	})
	rep := verifyWith(t, dir, dirVerifier(t, dir), nil)
	wantBad(t, rep, 0, "not signed: entries 0..24")
	if rep.Unsigned != 25 || rep.Entries != 25 || rep.Signed != 0 {
		t.Fatalf("report %+v; want 25 entries checked, none signed, 25 unsigned", rep)
	}
}

// The close variant: keep the oldest checkpoint, delete the newer ones and
// rewrite what only they covered.
func TestVerifyRefusesARewrittenTailWhoseCheckpointsWereDeleted(t *testing.T) {
	dir := tamperLog(t)
	tamper(t, dir, func(db *sql.DB) {
		mustExec(t, db, `DELETE FROM audit_checkpoints WHERE size > 10`)
		rewriteEntry(t, db, 15)
		rebuildTree(t, db)
	})
	rep := verifyWith(t, dir, dirVerifier(t, dir), nil)
	wantBad(t, rep, 10, "not signed: entries 10..24")
	if rep.Unsigned != 15 || rep.Signed != 10 || rep.Checkpoints != 1 {
		t.Fatalf("report %+v; want entries before 10 signed by 1 checkpoint, 15 unsigned", rep)
	}
}

// Deleting the newest entries together with the checkpoints and tree nodes
// that covered them leaves a shorter log that is consistent in itself; only
// a head kept elsewhere shows that it was longer.
func TestVerifyRefusesALogShorterThanTheHeadGiven(t *testing.T) {
	dir := tamperLog(t)
	head := storedHead(t, dir, 25)
	tamper(t, dir, func(db *sql.DB) {
		mustExec(t, db, `DELETE FROM audit_entries WHERE idx >= 20`)
		mustExec(t, db, `DELETE FROM audit_checkpoints WHERE size > 20`)
		mustExec(t, db, `DELETE FROM audit_nodes WHERE ((idx + 1) << level) > 20`)
	})
	v := dirVerifier(t, dir)
	if rep := verifyWith(t, dir, v, nil); !rep.OK() || rep.Entries != 20 {
		t.Fatalf("set-up: the cut log should be consistent in itself: %+v", rep)
	}
	rep := verifyWith(t, dir, v, head)
	wantBad(t, rep, 20, "truncated: the log ends at 20 entries but the head given covers 25")
}

// The same cut without cleaning up the tree: the leaf hashes of the
// deleted entries give it away even without a head.
func TestVerifyNoticesTreeNodesPastTheEnd(t *testing.T) {
	dir := tamperLog(t)
	tamper(t, dir, func(db *sql.DB) {
		mustExec(t, db, `DELETE FROM audit_entries WHERE idx >= 20`)
		mustExec(t, db, `DELETE FROM audit_checkpoints WHERE size > 20`)
	})
	rep := verifyWith(t, dir, dirVerifier(t, dir), nil)
	wantBad(t, rep, 20, "leaf hash of entry 20 is stored")
}

// With the signing key in the data directory, a rewrite can be signed
// again and the log verifies by itself; a head kept elsewhere catches it.
func TestVerifyAgainstAHeadCatchesARewriteSignedAgain(t *testing.T) {
	for _, tc := range []struct {
		name   string
		sizes  []int
		reason string
	}{
		{"every checkpoint signed again", []int{10, 20, 25}, "re-signed: a stored checkpoint for tree size 20 verifies"},
		{"only the newest signed again", []int{25}, "rewritten: the entries before 20 do not have the root of the head given"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := tamperLog(t)
			head := storedHead(t, dir, 20)
			signer, _, err := audit.LoadOrCreateKey(dir, "")
			if err != nil {
				t.Fatal(err)
			}
			tamper(t, dir, func(db *sql.DB) {
				mustExec(t, db, `DELETE FROM audit_checkpoints`)
				rewriteEntry(t, db, 5)
				rebuildTree(t, db)
				resign(t, db, signer, tc.sizes...)
			})
			v := dirVerifier(t, dir)
			if rep := verifyWith(t, dir, v, nil); !rep.OK() {
				t.Fatalf("set-up: a log signed again with its own key verifies by itself: %+v", rep)
			}
			wantBad(t, verifyWith(t, dir, v, head), 0, tc.reason)
		})
	}
}

// Replacing audit.key and audit.pub together and signing the rewrite with
// the new key fools a verifier that trusts the directory's audit.pub, and
// nothing else: the public key kept elsewhere, or a head it signed.
func TestVerifyWithKeysReplacedTogether(t *testing.T) {
	dir := tamperLog(t)
	head := storedHead(t, dir, 20)
	kept := dirVerifier(t, dir) // the copy an auditor kept elsewhere
	skey, vkey, err := note.GenerateKey(rand.Reader, "test.example/audit")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, audit.KeyFile), []byte(skey+"\n"), 0o600)
	os.WriteFile(filepath.Join(dir, audit.PubFile), []byte(vkey+"\n"), 0o644)
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	tamper(t, dir, func(db *sql.DB) {
		mustExec(t, db, `DELETE FROM audit_checkpoints`)
		rewriteEntry(t, db, 5)
		rebuildTree(t, db)
		resign(t, db, signer, 10, 20, 25)
	})
	if rep := verifyWith(t, dir, dirVerifier(t, dir), nil); !rep.OK() {
		t.Fatalf("set-up: with both keys replaced the directory vouches for itself: %+v", rep)
	}
	wantBad(t, verifyWith(t, dir, kept, nil), 0, "checkpoint for tree size 10: signature does not verify")
	wantBad(t, verifyWith(t, dir, dirVerifier(t, dir), head), 0, "the head given: signature does not verify")
}

// Replacing only audit.pub changes nothing that the signatures vouch for.
func TestVerifyWithThePublicKeySwapped(t *testing.T) {
	dir := tamperLog(t)
	_, vkey, err := note.GenerateKey(rand.Reader, "test.example/audit")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, audit.PubFile), []byte(vkey+"\n"), 0o644)
	wantBad(t, verifyWith(t, dir, dirVerifier(t, dir), nil), 0, "checkpoint for tree size 10: signature does not verify")
}

// A checkpoint row's size is not signed; its note is. Editing the size
// either way is caught.
func TestVerifyCatchesAnEditedCheckpointSize(t *testing.T) {
	for _, tc := range []struct {
		name, stmt, reason string
	}{
		{"raised past the end", `UPDATE audit_checkpoints SET size = 30 WHERE size = 25`, "checkpoint stored for tree size 30 does not sign that size"},
		{"lowered inside the log", `UPDATE audit_checkpoints SET size = 22 WHERE size = 25`, "checkpoint for tree size 22: the note signs tree size 25"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := tamperLog(t)
			tamper(t, dir, func(db *sql.DB) { mustExec(t, db, tc.stmt) })
			wantBad(t, verifyWith(t, dir, dirVerifier(t, dir), nil), 20, tc.reason)
		})
	}
}

// A head that matches the log vouches for what it covers, even when the
// stored checkpoint at its size is gone.
func TestVerifyHeadVouchesForWhatItCovers(t *testing.T) {
	dir := tamperLog(t)
	head := storedHead(t, dir, 25)
	v := dirVerifier(t, dir)
	rep := verifyWith(t, dir, v, head)
	if !rep.OK() || rep.Head == nil || rep.Head.Size != 25 || rep.Checkpoints != 3 {
		t.Fatalf("untouched log against its own head: %+v", rep)
	}
	tamper(t, dir, func(db *sql.DB) { mustExec(t, db, `DELETE FROM audit_checkpoints WHERE size = 25`) })
	if rep := verifyWith(t, dir, v, nil); rep.OK() || rep.Unsigned != 5 {
		t.Fatalf("without the head, the last 5 entries are unsigned: %+v", rep)
	}
	if rep := verifyWith(t, dir, v, head); !rep.OK() || rep.Signed != 25 || rep.Checkpoints != 2 {
		t.Fatalf("the head covers them: %+v", rep)
	}
}

// A key file is created where it is told, private key 0600 and its public
// half beside it, and loads again as the same key.
func TestLoadOrCreateKeyFileKeepsTheKeyWhereItIsTold(t *testing.T) {
	keys := filepath.Join(t.TempDir(), "keys")
	keyPath := filepath.Join(keys, "audit.key")
	s1, v1, err := audit.LoadOrCreateKeyFile(keyPath, audit.PubPath(keyPath), "test.example/audit")
	if err != nil {
		t.Fatal(err)
	}
	if audit.PubPath(keyPath) != filepath.Join(keys, "audit.pub") || audit.PubPath("/k/signing") != "/k/signing.pub" {
		t.Fatalf("PubPath(%s) = %s", keyPath, audit.PubPath(keyPath))
	}
	for name, mode := range map[string]os.FileMode{"audit.key": 0o600, "audit.pub": 0o644} {
		if fi, err := os.Stat(filepath.Join(keys, name)); err != nil || fi.Mode().Perm() != mode {
			t.Fatalf("%s: %v %v, want mode %v", name, fi, err, mode)
		}
	}
	s2, v2, err := audit.LoadOrCreateKeyFile(keyPath, audit.PubPath(keyPath), "test.example/audit")
	if err != nil || s2.KeyHash() != s1.KeyHash() || v2.KeyHash() != v1.KeyHash() {
		t.Fatalf("reloading the key file: %v", err)
	}
}
