package mcp

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// DefaultMaxMessageBytes bounds one message from a client.
const DefaultMaxMessageBytes = 16 << 20

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

	wmu sync.Mutex
	w   io.Writer

	closeOnce sync.Once
	closer    io.Closer
}

// NewStdioConn reads messages from r and writes them to w. max bounds one
// message (DefaultMaxMessageBytes when 0). closer, if not nil, is closed
// with the connection.
func NewStdioConn(r io.Reader, w io.Writer, closer io.Closer, max int) *StdioConn {
	if max <= 0 {
		max = DefaultMaxMessageBytes
	}
	return &StdioConn{r: bufio.NewReaderSize(r, 64*1024), w: w, max: max, closer: closer}
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
				m, err := decodeMessage(raw)
				if err != nil {
					return nil, err
				}
				c.queue = append(c.queue, m)
			}
			continue
		}
		return decodeMessage(line)
	}
}

func decodeMessage(data []byte) (jsonrpc.Message, error) {
	if !json.Valid(data) {
		return nil, &FrameError{Code: jsonrpc.CodeParseError, Err: errors.New("parse error: the message is not valid JSON")}
	}
	m, err := jsonrpc.DecodeMessage(data)
	if err != nil {
		fe := &FrameError{Code: jsonrpc.CodeInvalidRequest, Err: fmt.Errorf("invalid request: %v", err)}
		var probe struct {
			ID any `json:"id"`
		}
		if json.Unmarshal(data, &probe) == nil {
			if id, err := jsonrpc.MakeID(probe.ID); err == nil {
				fe.ID = id
			}
		}
		return nil, fe
	}
	return m, nil
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

// Write sends one message as a line.
func (c *StdioConn) Write(ctx context.Context, msg jsonrpc.Message) error {
	data, err := jsonrpc.EncodeMessage(msg)
	if err != nil {
		return fmt.Errorf("encode message: %w", err)
	}
	data = append(data, '\n')
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_, err = c.w.Write(data)
	return err
}

// Close closes the underlying closer, if any.
func (c *StdioConn) Close() error {
	var err error
	c.closeOnce.Do(func() {
		if c.closer != nil {
			err = c.closer.Close()
		}
	})
	return err
}

// SessionID is empty: a stdio connection is one session.
func (c *StdioConn) SessionID() string { return "" }

// Command returns a Dialer that starts argv as a stdio MCP server, a new
// process for every connection. Its standard error goes to stderr.
func Command(argv []string, env []string, stderr io.Writer) (Dialer, error) {
	if len(argv) == 0 {
		return nil, errors.New("no upstream command")
	}
	return func(ctx context.Context) (sdk.Connection, error) {
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Env = env
		cmd.Stderr = stderr
		t := &sdk.CommandTransport{Command: cmd}
		conn, err := t.Connect(ctx)
		if err != nil {
			return nil, fmt.Errorf("start %s: %w", argv[0], err)
		}
		return conn, nil
	}, nil
}

// URL returns a Dialer for an upstream speaking streamable HTTP at url.
func URL(url string, client *http.Client) Dialer {
	return func(ctx context.Context) (sdk.Connection, error) {
		t := &sdk.StreamableClientTransport{Endpoint: url, HTTPClient: client, MaxRetries: -1, DisableStandaloneSSE: true}
		return t.Connect(ctx)
	}
}
