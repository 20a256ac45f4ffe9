package audit_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/agentgov/agentgov/audit"
	"github.com/agentgov/agentgov/store/sqlite"
)

// killChildEnv makes the test binary act as an appending server (see
// appendUntilKilled) instead of running tests.
const killChildEnv = "AGENTGOV_AUDIT_KILL_CHILD_DIR"

func TestMain(m *testing.M) {
	if dir := os.Getenv(killChildEnv); dir != "" {
		if err := appendUntilKilled(dir); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// appendUntilKilled appends from several goroutines forever, printing each
// index once Append has acknowledged it, one write per line.
func appendUntilKilled(dir string) error {
	ctx := context.Background()
	db, err := sqlite.OpenDir(ctx, dir)
	if err != nil {
		return err
	}
	signer, verifier, err := audit.LoadOrCreateKey(dir, "")
	if err != nil {
		return err
	}
	l, err := audit.Open(ctx, db, signer, verifier, audit.Options{CheckpointEvery: 50})
	if err != nil {
		return err
	}
	go l.Run(ctx)
	var mu sync.Mutex
	errc := make(chan error)
	for w := range 8 {
		go func() {
			for seq := 0; ; seq++ {
				idx, err := l.Append(ctx, "decision", map[string]int{"worker": w, "seq": seq})
				if err != nil {
					errc <- err
					return
				}
				mu.Lock()
				_, err = os.Stdout.WriteString(strconv.FormatUint(idx, 10) + "\n")
				mu.Unlock()
				if err != nil {
					errc <- err
					return
				}
			}
		}()
	}
	return <-errc
}

func TestAcknowledgedEntriesSurviveSIGKILL(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("needs SIGKILL")
	}
	if testing.Short() {
		t.Skip("starts a subprocess")
	}
	ctx := context.Background()
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), killChildEnv+"="+dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}

	acked := make(map[uint64]bool)
	r := bufio.NewReader(out)
	killed := false
	for {
		line, err := r.ReadString('\n')
		if err == io.EOF {
			break // a partial last line was never acknowledged in full
		}
		if err != nil {
			t.Fatal(err)
		}
		idx, perr := strconv.ParseUint(strings.TrimSuffix(line, "\n"), 10, 64)
		if perr != nil {
			t.Fatalf("child printed %q", line)
		}
		acked[idx] = true
		// Kill mid-stream, while appenders are queued and a batch may be
		// in flight; keep reading what was acknowledged before the kill.
		if len(acked) == 500 && !killed {
			if err := cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			killed = true
		}
	}
	werr := cmd.Wait()
	if !killed {
		t.Fatalf("child ended before it was killed: %v", werr)
	}

	db, err := sqlite.OpenDir(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	size, err := db.AuditSize(ctx)
	if err != nil {
		t.Fatal(err)
	}
	present := make(map[uint64]bool)
	for after := int64(-1); ; {
		page, err := audit.Entries(ctx, db, after, audit.MaxEntriesPage)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		for _, e := range page {
			present[e.Index] = true
		}
		after = int64(page[len(page)-1].Index)
	}
	for idx := range acked {
		if !present[idx] {
			t.Errorf("acknowledged index %d is not in the log after SIGKILL", idx)
		}
	}
	t.Logf("%d acknowledged, %d stored after SIGKILL", len(acked), size)

	v, err := audit.LoadVerifier(dir + "/" + audit.PubFile)
	if err != nil {
		t.Fatal(err)
	}
	// Entries written since the killed process's last checkpoint are
	// intact but unsigned, and verify does not vouch for them.
	rep, err := audit.Verify(ctx, db, v, audit.VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Entries != size || rep.Signed+rep.Unsigned != size || (rep.Unsigned > 0) == rep.OK() {
		t.Fatalf("verify after SIGKILL = %+v", rep)
	}
	if rep.Unsigned > 0 && (rep.FirstBad != int64(rep.Signed) || !strings.Contains(rep.Reason, "not signed")) {
		t.Fatalf("unsigned tail reported as %d: %s", rep.FirstBad, rep.Reason)
	}
	t.Logf("%d entries unsigned after SIGKILL", rep.Unsigned)

	// The log reopens and carries on where the killed process stopped.
	signer, verifier, err := audit.LoadOrCreateKey(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	l, err := audit.Open(ctx, db, signer, verifier, audit.Options{})
	if err != nil {
		t.Fatalf("reopen after SIGKILL: %v", err)
	}
	if l.Size() != size {
		t.Fatalf("reopened size %d, want %d", l.Size(), size)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error)
	go func() { done <- l.Run(runCtx) }()
	idx, err := l.Append(ctx, "decision", "after the crash")
	if err != nil || idx != size {
		t.Fatalf("append after reopen = %d, %v; want %d", idx, err, size)
	}
	// The restarted log signed the tail it found before taking appends.
	if rep, err := audit.Verify(ctx, db, v, audit.VerifyOptions{}); err != nil || rep.Signed != size {
		t.Fatalf("verify while the restarted log runs = %+v, %v; want everything before %d signed", rep, err, size)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if rep, err := audit.Verify(ctx, db, v, audit.VerifyOptions{}); err != nil || !rep.OK() || rep.Signed != size+1 {
		t.Fatalf("verify after reopen = %+v, %v", rep, err)
	}
}
