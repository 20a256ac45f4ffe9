package wire

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// FrameError is a message from the client that could not be read. Unlike
// the SDK's own stdio transport, which stops at the first bad line, the
// gateway answers it with a JSON-RPC error and keeps serving: one broken
// message should not take down a desktop client's whole tool set.
type FrameError struct {
	ID   jsonrpc.ID // the request's id when it could be recovered
	Code int64
	Err  error
}

func (e *FrameError) Error() string { return e.Err.Error() }
func (e *FrameError) Unwrap() error { return e.Err }

// StdioConn is the client side of `agentgov mcp run`: newline-delimited
// JSON-RPC over a reader and a writer, as the MCP stdio transport defines.
type StdioConn struct {
	r     *bufio.Reader
	max   int
	queue []jsonrpc.Message

	wmu  sync.Mutex
	w    io.Writer
	wbuf []byte

	closeOnce sync.Once
	closed    atomic.Bool
	closer    io.Closer
}

// NewStdioConn reads messages from r and writes them to w. max bounds one
// message (DefaultMaxMessageBytes when 0). closer, if not nil, is closed
// with the connection.
func NewStdioConn(r io.Reader, w io.Writer, closer io.Closer, max int) *StdioConn {
	if max <= 0 {
		max = DefaultMaxMessageBytes
	}
	return &StdioConn{r: bufio.NewReaderSize(pollable(r), 64*1024), w: w, max: max, closer: closer}
}

var _ sdk.Connection = (*StdioConn)(nil)

// Read returns the next message. A line that is not a JSON-RPC message, or
// is longer than the limit, is returned as a *FrameError and reading can go
// on; io.EOF means the client closed its side.
func (c *StdioConn) Read(ctx context.Context) (jsonrpc.Message, error) {
	for {
		if len(c.queue) > 0 {
			m := c.queue[0]
			c.queue = c.queue[1:]
			return m, nil
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		line, err := c.readLine()
		if err != nil {
			if c.closed.Load() {
				return nil, io.EOF // the read failed because we closed
			}
			return nil, err
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		if line[0] == '[' {
			// A JSON-RPC batch (protocol 2025-03-26): relay its members one by one.
			var raws []json.RawMessage
			if err := json.Unmarshal(line, &raws); err != nil {
				return nil, &FrameError{Code: jsonrpc.CodeParseError, Err: fmt.Errorf("parse error: %v", err)}
			}
			if len(raws) == 0 {
				return nil, &FrameError{Code: jsonrpc.CodeInvalidRequest, Err: errors.New("invalid request: empty batch")}
			}
			for _, raw := range raws {
				m, err := DecodeMessage(raw)
				if err != nil {
					return nil, err
				}
				c.queue = append(c.queue, m)
			}
			continue
		}
		return DecodeMessage(line)
	}
}

// readLine reads one line; a line over the limit is consumed and reported.
func (c *StdioConn) readLine() ([]byte, error) {
	var buf []byte
	for {
		chunk, err := c.r.ReadSlice('\n')
		if len(buf)+len(chunk) > c.max {
			// Skip the rest of the line so that the next message is read whole.
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = c.r.ReadSlice('\n')
			}
			if err != nil && !errors.Is(err, io.EOF) {
				return nil, err
			}
			return nil, &FrameError{Code: jsonrpc.CodeInvalidRequest, Err: fmt.Errorf("message refused: it is longer than the limit of %d bytes", c.max)}
		}
		buf = append(buf, chunk...)
		switch {
		case err == nil:
			return buf, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && len(bytes.TrimSpace(buf)) > 0:
			return buf, nil
		default:
			return nil, err
		}
	}
}

// Write sends one message as a line. Writes are serialised, so one
// buffer serves them all; a buffer grown by a large message is dropped
// rather than kept for the life of the connection.
func (c *StdioConn) Write(ctx context.Context, msg jsonrpc.Message) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	data, err := AppendMessage(c.wbuf[:0], msg)
	if err != nil {
		return err
	}
	data = append(data, '\n')
	if cap(data) <= MaxKeptWriteBuffer {
		c.wbuf = data
	}
	_, err = c.w.Write(data)
	return err
}

// MaxKeptWriteBuffer bounds the write buffer a connection keeps between
// messages.
const MaxKeptWriteBuffer = 64 << 10

// Close closes the underlying closer, if any.
func (c *StdioConn) Close() error {
	var err error
	c.closeOnce.Do(func() {
		c.closed.Store(true)
		if c.closer != nil {
			err = c.closer.Close()
		}
	})
	return err
}

// SessionID is empty: a stdio connection is one session.
func (c *StdioConn) SessionID() string { return "" }

// Command returns a Dialer that starts argv as a stdio MCP server, a new
// process for every connection. Its standard error goes to stderr. The
// connection is the same newline-delimited framing as the client side,
// over the process's pipes; closing it shuts the process down as the MCP
// stdio transport asks (see process.Close).
func Command(argv []string, env []string, stderr io.Writer) (Dialer, error) {
	if len(argv) == 0 {
		return nil, errors.New("no upstream command")
	}
	return func(ctx context.Context) (sdk.Connection, error) {
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Env = env
		cmd.Stderr = stderr
		stdin, err := cmd.StdinPipe()
		if err != nil {
			return nil, fmt.Errorf("start %s: %w", argv[0], err)
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			return nil, fmt.Errorf("start %s: %w", argv[0], err)
		}
		if err := cmd.Start(); err != nil {
			return nil, fmt.Errorf("start %s: %w", argv[0], err)
		}
		p := &process{cmd: cmd, stdin: stdin, grace: processGrace}
		return NewStdioConn(stdout, stdin, p, MaxUpstreamMessageBytes), nil
	}, nil
}

// processGrace is how long a stopping upstream process gets after its
// input is closed, and again after SIGTERM, before the next step.
const processGrace = 5 * time.Second

// process is an upstream server process, stopped when its connection is
// closed.
type process struct {
	cmd   *exec.Cmd
	stdin io.Closer
	grace time.Duration
}

// Close stops the process the way the MCP stdio transport specifies:
// close its input and wait for it to exit, then SIGTERM, then SIGKILL.
// Waiting also closes its output, which ends the connection's Read.
func (p *process) Close() error {
	p.stdin.Close()
	exited := make(chan error, 1)
	go func() { exited <- p.cmd.Wait() }()
	wait := func() (error, bool) {
		select {
		case err := <-exited:
			return err, true
		case <-time.After(p.grace):
			return nil, false
		}
	}
	if err, ok := wait(); ok {
		return exitError(err)
	}
	if p.cmd.Process.Signal(syscall.SIGTERM) == nil {
		if err, ok := wait(); ok {
			return exitError(err)
		}
	}
	if err := p.cmd.Process.Kill(); err != nil {
		return fmt.Errorf("kill upstream process: %w", err)
	}
	if err, ok := wait(); ok {
		return exitError(err)
	}
	return errors.New("the upstream process does not exit")
}

// exitError keeps an exit status from being mistaken for a failed close:
// a server stopped by a signal or exiting non-zero has still stopped.
func exitError(err error) error {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return nil
	}
	return err
}
