package sqlite

import (
	"os"
	"syscall"
)

// syncData flushes a file's data and the metadata needed to read it back,
// as SQLite itself does on Linux: fdatasync skips the timestamps that fsync
// would also write, which costs a journal commit on every call.
func syncData(f *os.File) error {
	sc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := sc.Control(func(fd uintptr) {
		for {
			serr = syscall.Fdatasync(int(fd))
			if serr != syscall.EINTR {
				return
			}
		}
	}); err != nil {
		return err
	}
	return serr
}
