package sqlite

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// ErrInUse is wrapped by the error of Open when another process holds the
// database open for writing. Two processes on one file would each keep
// their own audit tree and budget state in memory and deny every other
// decision on the other's rows.
var ErrInUse = errors.New("data directory is in use")

// InUseError says which database is held, and by whom when that is known.
type InUseError struct {
	Dir string
	PID int // 0 when unknown
}

func (e *InUseError) Error() string {
	holder := "another agentgov process"
	if e.PID > 0 {
		holder = fmt.Sprintf("another agentgov process (pid %d)", e.PID)
	}
	return fmt.Sprintf("data directory %s is in use by %s: one data directory serves one process; stop it or give this one another --data", e.Dir, holder)
}

func (e *InUseError) Unwrap() error { return ErrInUse }

// LockSuffix names the lock file beside a database: agentgov.db.lock.
const LockSuffix = ".lock"

// The lock is the process's: every DB this process opens on one database
// shares it (SQLite serialises their writes), and it is released when the
// last of them closes. The kernel releases it when the process dies, so a
// SIGKILL leaves nothing that blocks the next start; the file itself stays,
// holding the last holder's pid for the message above.
var (
	locksMu sync.Mutex
	locks   = map[string]*heldLock{} // by absolute lock file path
)

type heldLock struct {
	f    *os.File
	refs int
}

// dbLock is one DB's share of its database's lock.
type dbLock struct{ key string }

// acquireLock takes the lock of the database at path, or says who holds it.
func acquireLock(path string) (*dbLock, error) {
	lp, err := filepath.Abs(path + LockSuffix)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path+LockSuffix, err)
	}
	locksMu.Lock()
	defer locksMu.Unlock()
	if h, ok := locks[lp]; ok {
		h.refs++
		return &dbLock{key: lp}, nil
	}
	f, err := os.OpenFile(lp, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", lp, err)
	}
	if err := restrictMode(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", lp, err)
	}
	held, err := tryLock(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", lp, err)
	}
	if held {
		f.Close()
		return nil, &InUseError{Dir: filepath.Dir(path), PID: readPID(lp)}
	}
	// The pid is only for the message of the next process refused: a
	// failure to write it changes nothing about who holds the lock.
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	locks[lp] = &heldLock{f: f, refs: 1}
	return &dbLock{key: lp}, nil
}

// release gives up this DB's share; the last one out closes the file,
// which is what releases the lock.
func (l *dbLock) release() error {
	if l == nil || l.key == "" {
		return nil
	}
	locksMu.Lock()
	defer locksMu.Unlock()
	key := l.key
	l.key = "" // a second release of one DB gives nothing back
	h := locks[key]
	if h == nil {
		return nil
	}
	if h.refs--; h.refs > 0 {
		return nil
	}
	delete(locks, key)
	return h.f.Close()
}

func readPID(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0
	}
	return pid
}

// stateMode is the mode of every file of a database: its content is the
// audit log, budgets and approvals, which no other user may read or write,
// whatever the umask or the mode of the directory it sits in.
const stateMode fs.FileMode = 0o600

// restrictMode takes group and other permissions away from an open file
// (one created by an older version with SQLite's default 0644, or one that
// a permissive umask left open).
func restrictMode(f *os.File) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if fi.Mode().Perm()&^stateMode == 0 {
		return nil
	}
	if err := f.Chmod(fi.Mode().Perm() & stateMode); err != nil {
		return fmt.Errorf("make %s private (mode %v): %w", f.Name(), fi.Mode().Perm(), err)
	}
	return nil
}

// prepareFiles creates the database file with mode 0600 before SQLite does
// (SQLite would create it 0644 and give its -wal and -shm files the
// database's mode), and makes existing ones private. It runs under the
// lock, so no other agentgov process is creating the same files.
func prepareFiles(path string) error {
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		flag := os.O_RDWR
		if p == path {
			flag |= os.O_CREATE
		}
		f, err := os.OpenFile(p, flag, stateMode)
		if errors.Is(err, fs.ErrNotExist) {
			continue // SQLite creates it with the database's mode
		}
		if err != nil {
			return err
		}
		err = restrictMode(f)
		f.Close()
		if err != nil {
			return err
		}
	}
	return nil
}
