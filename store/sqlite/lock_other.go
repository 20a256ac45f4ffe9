//go:build !(darwin || dragonfly || freebsd || linux || netbsd || openbsd || windows)

package sqlite

import (
	"fmt"
	"os"
	"runtime"
)

// tryLock refuses: without an exclusive lock that the kernel drops when its
// holder dies, two processes could write one database.
func tryLock(*os.File) (bool, error) {
	return false, fmt.Errorf("no exclusive file lock on %s: agentgov refuses to open a database for writing there", runtime.GOOS)
}
