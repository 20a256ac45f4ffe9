package audit_test

import (
	"bytes"
	"context"
	"crypto"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/agentgov/agentgov/audit"
	"github.com/agentgov/agentgov/store/sqlite"
)

// tamperLog writes 25 entries with checkpoints at 10, 20 and (on shutdown)
// 25, stops the log, and returns its data directory.
func tamperLog(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	l := startLog(t, dir, audit.Options{CheckpointEvery: 10, CheckpointInterval: time.Hour})
	for i := range 25 {
		rec := map[string]any{"seq": i, "note": fmt.Sprintf("entry number %d", i)}
		if _, err := l.Append(context.Background(), "decision", rec); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.stop(); err != nil {
		t.Fatal(err)
	}
	if rep := verifyDir(t, dir); !rep.OK() {
		t.Fatalf("untouched log does not verify: %+v", rep)
	}
	return dir
}

// tamper edits the database file directly, the way someone with access to
// the disk would: the append-only triggers, and any index over the audit
// tables that would refuse the edit, are dropped first.
func tamper(t *testing.T, dir string, edit func(db *sql.DB)) {
	t.Helper()
	db, err := sql.Open("sqlite", filepath.Join(dir, sqlite.FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT type, name FROM sqlite_master
		WHERE type IN ('trigger', 'index') AND sql IS NOT NULL AND tbl_name LIKE 'audit_%'`)
	if err != nil {
		t.Fatal(err)
	}
	var drops []string
	triggers := 0
	for rows.Next() {
		var typ, name string
		rows.Scan(&typ, &name)
		drops = append(drops, "DROP "+strings.ToUpper(typ)+" "+name)
		if typ == "trigger" {
			triggers++
		}
	}
	rows.Close()
	if triggers == 0 {
		t.Fatal("no append-only triggers found")
	}
	for _, stmt := range drops {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatal(err)
		}
	}
	edit(db)
}

func mustExec(t *testing.T, db *sql.DB, q string, args ...any) {
	t.Helper()
	res, err := db.Exec(q, args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		t.Fatalf("%s: changed nothing", q)
	}
}

func entryData(t *testing.T, db *sql.DB, idx int) []byte {
	t.Helper()
	var data []byte
	if err := db.QueryRow(`SELECT data FROM audit_entries WHERE idx = ?`, idx).Scan(&data); err != nil {
		t.Fatal(err)
	}
	return data
}

func checkpointNote(t *testing.T, db *sql.DB, size int) []byte {
	t.Helper()
	var note []byte
	if err := db.QueryRow(`SELECT note FROM audit_checkpoints WHERE size = ?`, size).Scan(&note); err != nil {
		t.Fatal(err)
	}
	return note
}

// rewriteEntry replaces entry idx's record text, keeping valid canonical JSON.
func rewriteEntry(t *testing.T, db *sql.DB, idx int) []byte {
	t.Helper()
	data := entryData(t, db, idx)
	from := fmt.Sprintf("entry number %d", idx)
	forged := bytes.Replace(data, []byte(from), []byte(strings.ToUpper(from)), 1)
	if bytes.Equal(forged, data) {
		t.Fatalf("entry %d does not contain %q: %s", idx, from, data)
	}
	mustExec(t, db, `UPDATE audit_entries SET data = ? WHERE idx = ?`, forged, idx)
	return forged
}

var testHasher = rfc6962.New(crypto.SHA256)

// rebuildTree recomputes every stored tree node from the stored entries, as
// an attacker covering their tracks would.
func rebuildTree(t *testing.T, db *sql.DB) {
	t.Helper()
	rows, err := db.Query(`SELECT data FROM audit_entries ORDER BY idx`)
	if err != nil {
		t.Fatal(err)
	}
	var leaves [][]byte
	for rows.Next() {
		var data []byte
		rows.Scan(&data)
		leaves = append(leaves, testHasher.HashLeaf(data))
	}
	rows.Close()
	rf := &compact.RangeFactory{Hash: testHasher.HashChildren}
	rng := rf.NewEmptyRange(0)
	for _, leaf := range leaves {
		err := rng.Append(leaf, func(id compact.NodeID, hash []byte) {
			if _, err := db.Exec(`UPDATE audit_nodes SET hash = ? WHERE level = ? AND idx = ?`, hash, id.Level, id.Index); err != nil {
				t.Fatal(err)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestVerifyNamesTheFirstBadIndex(t *testing.T) {
	for _, tc := range []struct {
		name     string
		edit     func(t *testing.T, db *sql.DB)
		firstBad int64
		reason   string
	}{
		{
			name: "one changed byte inside a value",
			edit: func(t *testing.T, db *sql.DB) {
				data := entryData(t, db, 13)
				i := bytes.Index(data, []byte("number"))
				data[i] ^= 0x01 // 'n' -> 'o'
				mustExec(t, db, `UPDATE audit_entries SET data = ? WHERE idx = 13`, data)
			},
			firstBad: 13, reason: "stored leaf hash does not match",
		},
		{
			name: "one changed byte breaking the JSON",
			edit: func(t *testing.T, db *sql.DB) {
				data := entryData(t, db, 13)
				data[0] = '['
				mustExec(t, db, `UPDATE audit_entries SET data = ? WHERE idx = 13`, data)
			},
			firstBad: 13, reason: "not valid JSON",
		},
		{
			name: "a deleted entry",
			edit: func(t *testing.T, db *sql.DB) {
				mustExec(t, db, `DELETE FROM audit_entries WHERE idx = 13`)
			},
			firstBad: 13, reason: "missing: the next stored entry is 14",
		},
		{
			name: "the last entry deleted",
			edit: func(t *testing.T, db *sql.DB) {
				mustExec(t, db, `DELETE FROM audit_entries WHERE idx = 24`)
			},
			firstBad: 24, reason: "a checkpoint covers 25",
		},
		{
			name: "two entries swapped",
			edit: func(t *testing.T, db *sql.DB) {
				a, b := entryData(t, db, 3), entryData(t, db, 17)
				mustExec(t, db, `UPDATE audit_entries SET data = ? WHERE idx = 3`, b)
				mustExec(t, db, `UPDATE audit_entries SET data = ? WHERE idx = 17`, a)
			},
			firstBad: 3, reason: "own index field is 17",
		},
		{
			name: "two entries swapped with their index fields rewritten",
			edit: func(t *testing.T, db *sql.DB) {
				a, b := entryData(t, db, 3), entryData(t, db, 17)
				a = bytes.Replace(a, []byte(`"index":3,`), []byte(`"index":17,`), 1)
				b = bytes.Replace(b, []byte(`"index":17,`), []byte(`"index":3,`), 1)
				mustExec(t, db, `UPDATE audit_entries SET data = ? WHERE idx = 3`, b)
				mustExec(t, db, `UPDATE audit_entries SET data = ? WHERE idx = 17`, a)
			},
			firstBad: 3, reason: "stored leaf hash does not match",
		},
		{
			name: "an entry rewritten together with its leaf hash",
			edit: func(t *testing.T, db *sql.DB) {
				forged := rewriteEntry(t, db, 12)
				mustExec(t, db, `UPDATE audit_nodes SET hash = ? WHERE level = 0 AND idx = 12`, testHasher.HashLeaf(forged))
			},
			firstBad: 12, reason: "stored tree node (level 1, index 6) over entries 12..13 does not match",
		},
		{
			name: "an entry rewritten and the whole tree rebuilt",
			edit: func(t *testing.T, db *sql.DB) {
				rewriteEntry(t, db, 12)
				rebuildTree(t, db)
			},
			// Only the signature still knows: entries before 10 are vouched
			// for by the good checkpoint at 10, the one at 20 fails.
			firstBad: 10, reason: "checkpoint for tree size 20: the entries do not have the signed root hash",
		},
		{
			name: "a checkpoint's root edited",
			edit: func(t *testing.T, db *sql.DB) {
				n := checkpointNote(t, db, 20)
				lines := bytes.SplitN(n, []byte("\n"), 4)
				lines[2][0] ^= 0x01
				mustExec(t, db, `UPDATE audit_checkpoints SET note = ? WHERE size = 20`, bytes.Join(lines, []byte("\n")))
			},
			firstBad: 10, reason: "checkpoint for tree size 20: signature does not verify",
		},
		{
			name: "a checkpoint replaced by an older one",
			edit: func(t *testing.T, db *sql.DB) {
				mustExec(t, db, `UPDATE audit_checkpoints SET note = ? WHERE size = 20`, checkpointNote(t, db, 10))
			},
			firstBad: 10, reason: "checkpoint for tree size 20: the note signs tree size 10",
		},
		{
			name: "a tree node deleted",
			edit: func(t *testing.T, db *sql.DB) {
				mustExec(t, db, `DELETE FROM audit_nodes WHERE level = 2 AND idx = 1`)
			},
			// Entries 4..7 each match their leaf and level-1 hashes, yet
			// a rewrite of one of them (with its leaf and parent) looks
			// exactly like this, so trust ends at 4.
			firstBad: 4, reason: "stored tree node (level 2, index 1) over entries 4..7 is missing",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := tamperLog(t)
			tamper(t, dir, func(db *sql.DB) { tc.edit(t, db) })
			rep := verifyDir(t, dir)
			if rep.OK() {
				t.Fatalf("tampered log verified: %+v", rep)
			}
			if rep.FirstBad != tc.firstBad || !strings.Contains(rep.Reason, tc.reason) {
				t.Fatalf("first bad index %d: %s\nwant index %d with %q", rep.FirstBad, rep.Reason, tc.firstBad, tc.reason)
			}
		})
	}
}

// A bad node is reported at the first entry under it that no good
// checkpoint vouches for: node (3, 1) covers entries 8..15, and by the time
// entry 15 exposes it the checkpoint at size 10 has verified.
func TestVerifyReportsBadNodeWhereItIsFound(t *testing.T) {
	dir := tamperLog(t)
	tamper(t, dir, func(db *sql.DB) {
		mustExec(t, db, `UPDATE audit_nodes SET hash = ? WHERE level = 3 AND idx = 1`, bytes.Repeat([]byte{1}, 32))
	})
	rep := verifyDir(t, dir)
	if rep.FirstBad != 10 || !strings.Contains(rep.Reason, "level 3, index 1") {
		t.Fatalf("first bad index %d: %s; want 10 naming node (3, 1)", rep.FirstBad, rep.Reason)
	}
}

func TestOpenRefusesATamperedLog(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(t *testing.T, db *sql.DB)
		want string
	}{
		{"latest checkpoint edited", func(t *testing.T, db *sql.DB) {
			n := checkpointNote(t, db, 25)
			mustExec(t, db, `UPDATE audit_checkpoints SET note = ? WHERE size = 25`, bytes.Replace(n, []byte("\n25\n"), []byte("\n24\n"), 1))
		}, "signature does not verify"},
		{"signed entries deleted", func(t *testing.T, db *sql.DB) {
			mustExec(t, db, `DELETE FROM audit_entries WHERE idx >= 20`)
		}, "covers 25 entries but the log holds 20"},
		{"tree rebuilt over a rewritten entry", func(t *testing.T, db *sql.DB) {
			rewriteEntry(t, db, 3)
			rebuildTree(t, db)
		}, "does not have the root signed by the latest checkpoint"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			dir := tamperLog(t)
			tamper(t, dir, func(db *sql.DB) { tc.edit(t, db) })
			db, err := sqlite.OpenDir(ctx, dir)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			signer, verifier, err := audit.LoadOrCreateKey(dir, "")
			if err != nil {
				t.Fatal(err)
			}
			_, err = audit.Open(ctx, db, signer, verifier, audit.Options{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Open = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestProveRefusesTamperedEntries(t *testing.T) {
	ctx := context.Background()
	dir := tamperLog(t)
	tamper(t, dir, func(db *sql.DB) {
		forged := rewriteEntry(t, db, 12)
		mustExec(t, db, `UPDATE audit_nodes SET hash = ? WHERE level = 0 AND idx = 12`, testHasher.HashLeaf(forged))
	})
	db, err := sqlite.OpenDir(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	v, err := audit.LoadVerifier(filepath.Join(dir, audit.PubFile))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := audit.Prove(ctx, db, v, 12); err == nil {
		t.Fatal("proved a rewritten entry")
	}
	// Entries whose proofs do not pass through the forged subtree still
	// prove: the damage is reported, not spread.
	if _, err := audit.Prove(ctx, db, v, 24); err != nil {
		t.Fatalf("prove 24: %v", err)
	}
}

func TestVerifyCountsOnlyWhatPrecedesTheFailure(t *testing.T) {
	dir := tamperLog(t)
	tamper(t, dir, func(db *sql.DB) {
		data := entryData(t, db, 13)
		data[bytes.Index(data, []byte("number"))] ^= 0x01
		mustExec(t, db, `UPDATE audit_entries SET data = ? WHERE idx = 13`, data)
	})
	rep := verifyDir(t, dir)
	// Entries 0..12 checked, and only the checkpoint at 10 precedes 13.
	if rep.FirstBad != 13 || rep.Entries != 13 || rep.Checkpoints != 1 || rep.Signed != 10 {
		t.Fatalf("report = %+v; want first bad 13, 13 entries, 1 checkpoint, signed 10", rep)
	}
}
