package storetest

import (
	"bytes"
	"strings"
	"testing"

	"github.com/agentgov/agentgov/audit"
)

// Each replica appends to, checkpoints and verifies its own log, from the
// same tables; neither sees the other's entries, and each log verifies
// only with its own key.
func testReplicasKeepTheirOwnLogs(t *testing.T, b Backend) {
	if !b.Replicas {
		t.Skip("one audit log per database")
	}
	opener := b.Fresh(t)
	k1, k2 := NewKey(t, "agentgov-test/r1"), NewKey(t, "agentgov-test/r2")
	st1, st2 := opener(t, "r1", k1.Text), opener(t, "r2", k2.Text)
	l1, stop1 := runLog(t, st1, k1)
	l2, stop2 := runLog(t, st2, k2)
	for i := range 7 {
		if _, err := l1.Append(bg, "test", map[string]any{"replica": "r1", "n": i}); err != nil {
			t.Fatal(err)
		}
		if i < 3 {
			if _, err := l2.Append(bg, "test", map[string]any{"replica": "r2", "n": i}); err != nil {
				t.Fatal(err)
			}
		}
	}
	stop1()
	stop2()
	for _, c := range []struct {
		st    Store
		key   Key
		other Key
		n     uint64
		name  string
	}{{st1, k1, k2, 7, "r1"}, {st2, k2, k1, 3, "r2"}} {
		rep, err := audit.Verify(bg, c.st, c.key.Verifier, audit.VerifyOptions{})
		if err != nil || !rep.OK() || rep.Entries != c.n {
			t.Fatalf("%s: verify = %+v, %v", c.name, rep, err)
		}
		rows, err := c.st.AuditRows(bg, -1, 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			if !bytes.Contains(r.Data, []byte(`"replica":"`+c.name+`"`)) {
				t.Fatalf("%s's log holds %s", c.name, r.Data)
			}
		}
		if rep, _ := audit.Verify(bg, c.st, c.other.Verifier, audit.VerifyOptions{}); rep.OK() {
			t.Fatalf("%s's log verified with the other replica's key", c.name)
		}
	}
	// A replica restarted with the same id and key continues its log.
	st1.Close()
	l1, stop1 = runLog(t, opener(t, "r1", k1.Text), k1)
	if idx, err := l1.Append(bg, "test", map[string]any{"replica": "r1", "n": 7}); err != nil || idx != 7 {
		t.Fatalf("append after restart: %d, %v", idx, err)
	}
	stop1()
}

// Any replica finds any replica's decision, in the log that holds it.
func testReplicasShareState(t *testing.T, b Backend) {
	if !b.Replicas {
		t.Skip("one audit log per database")
	}
	opener := b.Fresh(t)
	k1, k2 := NewKey(t, "agentgov-test/r1"), NewKey(t, "agentgov-test/r2")
	st1, st2 := opener(t, "r1", k1.Text), opener(t, "r2", k2.Text)
	row := func(i int, id string) audit.Row {
		return audit.Row{Index: uint64(i), Data: []byte(`{"index":` + string(rune('0'+i)) + `,"kind":"decision","record":{"decision":{"effect":"deny","id":"` + id + `"}},"time":"2026-03-01T12:00:00Z"}`)}
	}
	r1 := []audit.Row{row(0, "dec_ONE")}
	r2 := []audit.Row{row(0, "dec_TWO0"), row(1, "dec_TWO1")}
	if err := st1.AuditAppend(bg, r1, leafNodes(r1)); err != nil {
		t.Fatal(err)
	}
	if err := st2.AuditAppend(bg, r2, leafNodes(r2)); err != nil {
		t.Fatal(err)
	}
	d, err := st1.FindDecision(bg, "dec_TWO1")
	if err != nil || d.Log != "r2" || d.Index != 1 || !bytes.Equal(d.Data, r2[1].Data) {
		t.Fatalf("r1 finding r2's decision: %+v, %v", d, err)
	}
	d, err = st2.FindDecision(bg, "dec_ONE")
	if err != nil || d.Log != "r1" || d.Index != 0 {
		t.Fatalf("r2 finding r1's decision: %+v, %v", d, err)
	}
	if !strings.Contains(string(d.Data), "dec_ONE") {
		t.Fatalf("entry %s", d.Data)
	}
}
