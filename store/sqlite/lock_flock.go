//go:build darwin || dragonfly || freebsd || linux || netbsd || openbsd

package sqlite

import (
	"errors"
	"os"
	"syscall"
)

// tryLock takes an exclusive flock without waiting and reports whether
// someone else holds it. flock, unlike the fcntl locks SQLite uses on the
// database itself, belongs to the open file: SQLite closing one of its own
// descriptors never drops it.
func tryLock(f *os.File) (held bool, err error) {
	sc, err := f.SyscallConn()
	if err != nil {
		return false, err
	}
	var lerr error
	if err := sc.Control(func(fd uintptr) {
		for {
			lerr = syscall.Flock(int(fd), syscall.LOCK_EX|syscall.LOCK_NB)
			if !errors.Is(lerr, syscall.EINTR) {
				return
			}
		}
	}); err != nil {
		return false, err
	}
	if errors.Is(lerr, syscall.EWOULDBLOCK) {
		return true, nil
	}
	return false, lerr
}
