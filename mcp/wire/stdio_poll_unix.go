//go:build unix

package wire

import (
	"io"
	"os"
	"syscall"
	"time"
)

// pollable returns a reader for r that waits for input in Go's network
// poller rather than in a blocking read, when r is a pipe or socket such
// as the standard input an MCP client gives the gateway. A blocking read
// holds its scheduler slot: the goroutine that handles the request just
// read then waits, on a loaded machine about 100 µs at the median, for
// the runtime to move it elsewhere. The descriptor is duplicated, so the
// returned reader can be closed without closing r.
func pollable(r io.Reader) io.Reader {
	f, ok := r.(*os.File)
	if !ok {
		return r
	}
	if f.SetReadDeadline(time.Time{}) == nil {
		return r // already read through the poller
	}
	st, err := f.Stat()
	if err != nil || st.Mode()&(os.ModeNamedPipe|os.ModeSocket) == 0 {
		return r // a terminal or a regular file: leave it as it is
	}
	sc, err := f.SyscallConn()
	if err != nil {
		return r
	}
	fd := -1
	sc.Control(func(orig uintptr) {
		if d, err := syscall.Dup(int(orig)); err == nil {
			fd = d
		}
	})
	if fd < 0 {
		return r
	}
	syscall.CloseOnExec(fd)
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		return r
	}
	// os.NewFile sees the descriptor is non-blocking and registers it with
	// the poller.
	return os.NewFile(uintptr(fd), f.Name())
}
