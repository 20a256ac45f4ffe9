package mcp

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// plainTransport sends requests to a plain-HTTP upstream over HTTP/1.1
// connections of its own, writing each request and reading its response on
// the goroutine that makes the call. net/http's Transport hands every
// request to a connection's write goroutine and every response back from
// its read goroutine; on a tools/call of a few hundred µs those hand-offs
// were a visible part of what the gateway adds. It does nothing else that
// Transport does (no TLS, proxies, HTTP/2 or compression): URL uses it only
// for http:// upstreams reached without a proxy.
//
// An idle connection is only reused when it is known to be still open (see
// idleConnAlive): a POST written to a connection the server had already
// closed cannot be told apart from one the server received and then failed
// on, and a tools/call must never be sent twice.
type plainTransport struct {
	addr   string
	dialer net.Dialer

	mu   sync.Mutex
	idle []*plainConn
}

type plainConn struct {
	nc net.Conn
	lr *headerLimit // under br
	br *bufio.Reader
	bw *bufio.Writer
}

// maxResponseHeaderBytes bounds a response's status line and headers, which
// http.ReadResponse reads without limit (net/http's Transport allows 10 MB
// by default; an MCP server's headers are a few hundred bytes).
const maxResponseHeaderBytes = 1 << 20

var errHeaderTooLong = fmt.Errorf("the upstream's response headers are longer than %d bytes", maxResponseHeaderBytes)

// headerLimit lets at most n bytes through while a response's headers are
// read; n < 0 lifts the limit for the body, whose readers have their own.
type headerLimit struct {
	r io.Reader
	n int64
}

func (h *headerLimit) Read(p []byte) (int, error) {
	if h.n < 0 {
		return h.r.Read(p)
	}
	if h.n == 0 {
		return 0, errHeaderTooLong
	}
	if int64(len(p)) > h.n {
		p = p[:h.n]
	}
	n, err := h.r.Read(p)
	h.n -= int64(n)
	return n, err
}

// plainTransportFor returns a plainTransport for u, or nil when u needs
// more than it does.
func plainTransportFor(u *url.URL) *plainTransport {
	if u.Scheme != "http" || u.User != nil || !canCheckIdleConns {
		return nil
	}
	req := &http.Request{URL: u}
	if p, err := http.ProxyFromEnvironment(req); err != nil || p != nil {
		return nil
	}
	return &plainTransport{addr: hostPort(u), dialer: net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}}
}

func hostPort(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = "80"
	}
	return net.JoinHostPort(u.Hostname(), port)
}

func (t *plainTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	// It serves one upstream: a redirect elsewhere is not followed.
	if req.URL.Scheme != "http" || hostPort(req.URL) != t.addr {
		closeBody(req)
		return nil, fmt.Errorf("upstream transport: %s is not the upstream at %s", req.URL.Redacted(), t.addr)
	}
	ctx := req.Context()
	pc, err := t.conn(ctx)
	if err != nil {
		closeBody(req)
		return nil, err
	}
	// Cancelling the request interrupts whatever I/O is under way.
	stop := context.AfterFunc(ctx, func() { pc.nc.SetDeadline(time.Unix(1, 0)) })
	fail := func(err error) (*http.Response, error) {
		stop()
		pc.nc.Close()
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return nil, err
	}
	if err := req.Write(pc.bw); err != nil {
		return fail(fmt.Errorf("write request: %w", err))
	}
	if err := pc.bw.Flush(); err != nil {
		return fail(fmt.Errorf("write request: %w", err))
	}
	var resp *http.Response
	pc.lr.n = maxResponseHeaderBytes
	for {
		resp, err = http.ReadResponse(pc.br, req)
		if err != nil {
			return fail(fmt.Errorf("read response: %w", err))
		}
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			break
		}
		// An interim answer (100 Continue, 103 Early Hints) precedes the real one.
	}
	pc.lr.n = -1
	reuse := !resp.Close && !req.Close && resp.StatusCode != http.StatusSwitchingProtocols
	body := &plainBody{t: t, pc: pc, rc: resp.Body, stop: stop, reuse: reuse}
	if resp.Body == http.NoBody {
		body.finish(true)
		return resp, nil
	}
	resp.Body = body
	return resp, nil
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// conn returns an idle connection that is still open, or dials a new one.
func (t *plainTransport) conn(ctx context.Context) (*plainConn, error) {
	for {
		t.mu.Lock()
		n := len(t.idle)
		if n == 0 {
			t.mu.Unlock()
			break
		}
		pc := t.idle[n-1]
		t.idle = t.idle[:n-1]
		t.mu.Unlock()
		if idleConnAlive(pc.nc) {
			return pc, nil
		}
		pc.nc.Close()
	}
	nc, err := t.dialer.DialContext(ctx, "tcp", t.addr)
	if err != nil {
		return nil, fmt.Errorf("dial upstream: %w", err)
	}
	lr := &headerLimit{r: nc, n: -1}
	return &plainConn{nc: nc, lr: lr, br: bufio.NewReaderSize(lr, 4096), bw: bufio.NewWriterSize(nc, 4096)}, nil
}

// put keeps pc for the next request, or closes it when enough are kept.
func (t *plainTransport) put(pc *plainConn) {
	t.mu.Lock()
	if len(t.idle) < upstreamIdleConns {
		t.idle = append(t.idle, pc)
		pc = nil
	}
	t.mu.Unlock()
	if pc != nil {
		pc.nc.Close()
	}
}

// CloseIdleConnections closes the connections kept for reuse, as
// http.Client.CloseIdleConnections expects of a transport.
func (t *plainTransport) CloseIdleConnections() {
	t.mu.Lock()
	idle := t.idle
	t.idle = nil
	t.mu.Unlock()
	for _, pc := range idle {
		pc.nc.Close()
	}
}

// plainBody is a response body that gives its connection back once read to
// the end, and closes it when abandoned before the end (what is left of
// the response would otherwise be read as the next one).
type plainBody struct {
	t     *plainTransport
	pc    *plainConn
	rc    io.ReadCloser
	stop  func() bool
	reuse bool

	mu   sync.Mutex
	done bool
}

func (b *plainBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err == io.EOF {
		b.finish(b.reuse)
	} else if err != nil {
		b.finish(false)
	}
	return n, err
}

func (b *plainBody) Close() error {
	b.finish(false)
	return nil
}

// finish releases the connection once: back to the pool after a whole
// response, closed otherwise. A body closed from another goroutine while a
// Read is blocked unblocks it, as with net/http.
func (b *plainBody) finish(reuse bool) {
	b.mu.Lock()
	if b.done {
		b.mu.Unlock()
		return
	}
	b.done = true
	b.mu.Unlock()
	if !b.stop() {
		reuse = false // the request was cancelled: its deadline is set
	}
	if reuse && b.pc.br.Buffered() == 0 {
		b.t.put(b.pc)
		return
	}
	b.pc.nc.Close()
}
