//go:build darwin || dragonfly || freebsd || linux || netbsd || openbsd

package sqlite

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// lockChildEnv makes the test binary hold a database open (see TestMain)
// instead of running tests: another process, as a second server would be.
const lockChildEnv = "AGENTGOV_SQLITE_LOCK_CHILD_DIR"

func TestMain(m *testing.M) {
	if dir := os.Getenv(lockChildEnv); dir != "" {
		db, err := OpenDir(context.Background(), dir)
		if err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(1)
		}
		fmt.Println("open")
		io.Copy(io.Discard, os.Stdin) // hold it until killed or told
		db.Close()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// holdInChild opens dir for writing in another process and returns it once
// the database is open.
func holdInChild(t *testing.T, dir string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), lockChildEnv+"="+dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "open\n" {
		t.Fatalf("child: %q, %v", line, err)
	}
	return cmd
}

// A second process on a database in use is refused with a message naming
// the directory and the holder, and the database opens once the holder is
// gone, even killed with SIGKILL: the kernel dropped its lock.
func TestAnotherProcessIsRefused(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	child := holdInChild(t, dir)
	_, err := OpenDir(ctx, dir)
	var inUse *InUseError
	if !errors.Is(err, ErrInUse) || !errors.As(err, &inUse) {
		t.Fatalf("OpenDir beside another process = %v; want ErrInUse", err)
	}
	for _, want := range []string{"data directory " + dir + " is in use", fmt.Sprintf("(pid %d)", child.Process.Pid)} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("refusal %q does not say %q", err, want)
		}
	}
	if err := child.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	child.Wait()
	db, err := OpenDir(ctx, dir)
	if err != nil {
		t.Fatalf("open after the holder was killed: %v", err)
	}
	db.Close()
}

// The lock is the process's: handles of one process share it, and it is
// released only when the last one closes.
func TestHandlesOfOneProcessShareTheLock(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	a, err := OpenDir(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := OpenDir(ctx, dir)
	if err != nil {
		t.Fatalf("second handle in the same process: %v", err)
	}
	a.Close()
	a.Close() // closing one handle twice gives back one share only
	child := exec.Command(os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), lockChildEnv+"="+dir)
	if out, err := child.CombinedOutput(); err == nil || !strings.Contains(string(out), "is in use") {
		t.Fatalf("another process while one handle is open: %v\n%s", err, out)
	}
	b.Close()
	holdInChild(t, dir) // free once the last handle closed
}

// Verifying reads a live database: the read-only opener takes no lock and
// is not refused by a writer's.
func TestReadOnlyOpenerTakesNoLock(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	w, err := OpenDir(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	rows := rowsOf(0, 3)
	if err := w.AuditAppend(ctx, rows, leafNodes(rows)); err != nil {
		t.Fatal(err)
	}
	r, err := OpenAuditReadOnly(ctx, filepath.Join(dir, FileName))
	if err != nil {
		t.Fatalf("read-only open of a live database: %v", err)
	}
	defer r.Close()
	if n, err := r.AuditSize(ctx); err != nil || n != 3 {
		t.Fatalf("read-only size = %d, %v; want 3", n, err)
	}
	// And it does not stand in a writer's way either.
	w.Close()
	w2, err := OpenDir(ctx, dir)
	if err != nil {
		t.Fatalf("writer beside a read-only opener: %v", err)
	}
	w2.Close()
}

// withUmask runs f with the process umask set to mask.
func withUmask(t *testing.T, mask int, f func()) {
	t.Helper()
	old := syscall.Umask(mask)
	defer syscall.Umask(old)
	f()
}

// checkPrivate checks that every file of the database in dir is 0600.
func checkPrivate(t *testing.T, dir string) {
	t.Helper()
	path := filepath.Join(dir, FileName)
	for _, p := range []string{path, path + "-wal", path + "-shm", path + LockSuffix} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatalf("%s: %v", filepath.Base(p), err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", filepath.Base(p), fi.Mode().Perm())
		}
	}
}

// Another local user must not read the audit log, budgets or approvals:
// with the directory already 0755 and a umask that takes nothing away,
// every file of the database is still 0600.
func TestStateFilesArePrivateWhateverTheUmask(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755) // whatever the test's own umask did
	withUmask(t, 0, func() {
		db, err := OpenDir(ctx, dir)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		rows := rowsOf(0, 2)
		if err := db.AuditAppend(ctx, rows, leafNodes(rows)); err != nil {
			t.Fatal(err)
		}
		checkPrivate(t, dir)
	})
}

// A database left readable by an older version (SQLite's default 0644,
// its -wal and -shm alike) is made private when it is next opened.
func TestOpenMakesAnExistingDatabasePrivate(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, FileName)
	withUmask(t, 0, func() {
		raw, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)")
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		if _, err := raw.Exec(`CREATE TABLE old (x)`); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{path, path + "-wal", path + "-shm"} {
			if fi, err := os.Stat(p); err != nil || fi.Mode().Perm()&0o044 == 0 {
				t.Fatalf("set-up: %s is not readable by others: %v %v", p, fi.Mode(), err)
			}
		}
		db, err := OpenDir(ctx, dir)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		checkPrivate(t, dir)
	})
}
