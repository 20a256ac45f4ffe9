//go:build unix

package wire

import (
	"context"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
)

// A blocking pipe, as a process's standard input is, is read through the
// poller, on a descriptor of its own.
func TestStdinPipeIsPolled(t *testing.T) {
	var fds [2]int
	if err := syscall.Pipe(fds[:]); err != nil {
		t.Fatal(err)
	}
	r, w := os.NewFile(uintptr(fds[0]), "stdin"), os.NewFile(uintptr(fds[1]), "client")
	defer r.Close()
	defer w.Close()
	if r.SetReadDeadline(time.Time{}) == nil {
		t.Fatal("the test pipe is already polled")
	}
	polled, ok := pollable(r).(*os.File)
	if !ok || polled == r || polled.SetReadDeadline(time.Time{}) != nil {
		t.Fatalf("pollable(pipe) = %v; want a polled file of its own", polled)
	}
	polled.Close()

	c := NewStdioConn(r, w, nil, 0)
	go w.WriteString(`{"jsonrpc":"2.0","id":1,"method":"ping"}` + "\n")
	m, err := c.Read(context.Background())
	if req, ok := m.(*jsonrpc.Request); err != nil || !ok || req.Method != "ping" {
		t.Fatalf("Read = %v, %v", m, err)
	}
	if _, err := r.Stat(); err != nil {
		t.Fatalf("the original descriptor was closed: %v", err)
	}
}
