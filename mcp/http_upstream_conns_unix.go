//go:build unix

package mcp

import (
	"net"
	"syscall"
)

const canCheckIdleConns = true

// idleConnAlive says whether an idle connection is still open and has
// nothing unread: a peek that does not wait finds the server's close (or
// stray bytes, which make the connection unusable too). This is what
// net/http learns from the read goroutine it keeps on every idle
// connection.
func idleConnAlive(nc net.Conn) bool {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	alive := false
	err = rc.Read(func(fd uintptr) bool {
		var b [1]byte
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		// Nothing to read yet: open and clean. Zero bytes read (the
		// server's close), a byte or another error: not reusable.
		alive = err == syscall.EAGAIN || err == syscall.EWOULDBLOCK
		return true // never wait for readiness
	})
	return err == nil && alive
}
