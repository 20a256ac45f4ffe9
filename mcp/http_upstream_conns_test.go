//go:build unix

package mcp

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
)

func plainClient(t *testing.T, raw string) *http.Client {
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	tr := plainTransportFor(u)
	if tr == nil {
		t.Fatalf("no plain transport for %s", raw)
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

func post(t *testing.T, c *http.Client, url, body string) (*http.Response, error) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return c.Do(req)
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestPlainTransportFor(t *testing.T) {
	for raw, want := range map[string]bool{
		"http://127.0.0.1:8080/mcp":    true,
		"http://localhost/mcp":         true,
		"https://127.0.0.1:8443/mcp":   false, // TLS is net/http's
		"http://user:pw@127.0.0.1/mcp": false,
	} {
		u, _ := url.Parse(raw)
		if got := plainTransportFor(u) != nil; got != want {
			t.Errorf("plainTransportFor(%s) = %v, want %v", raw, got, want)
		}
	}
	u, _ := url.Parse("http://localhost/mcp")
	if tr := plainTransportFor(u); tr == nil || tr.addr != "localhost:80" {
		t.Errorf("the default port is not filled in: %+v", tr)
	}
}

// A response read to its end gives its connection back: requests one after
// another share it, whether the body had a length or came in chunks.
func TestPlainTransportReusesConnection(t *testing.T) {
	ts, conns := countingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.URL.Query().Get("chunked") != "" {
			w.Write([]byte("echo: "))
			w.(http.Flusher).Flush()
		} else {
			w.Header().Set("Content-Length", fmt.Sprint(len(b)+6))
			w.Write([]byte("echo: "))
		}
		w.Write(b)
	}))
	c := plainClient(t, ts.URL)
	for i := range 6 {
		u := ts.URL + "/"
		if i%2 == 1 {
			u += "?chunked=1"
		}
		resp, err := post(t, c, u, fmt.Sprint("call ", i))
		if err != nil {
			t.Fatal(err)
		}
		if got, want := readAll(t, resp), fmt.Sprint("echo: call ", i); got != want {
			t.Fatalf("response %d = %q, want %q", i, got, want)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("6 requests in a row used %d connections, want 1", n)
	}
}

// A body closed before its end must not leave its rest to be read as the
// next response: the connection is closed, and the next request gets its
// own answer on a new one.
func TestPlainTransportClosesAbandonedConnection(t *testing.T) {
	ts, conns := countingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "first part;")
		w.(http.Flusher).Flush()
		io.WriteString(w, "rest of "+r.URL.Path)
	}))
	c := plainClient(t, ts.URL)
	resp, err := post(t, c, ts.URL+"/a", "")
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(resp.Body, buf); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	resp, err = post(t, c, ts.URL+"/b", "")
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, resp); got != "first part;rest of /b" {
		t.Fatalf("second response = %q", got)
	}
	if n := conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2 (the abandoned one closed)", n)
	}
}

// A connection the server closed while it was idle is noticed before a
// request is written to it: every request reaches the server exactly once
// and succeeds.
func TestPlainTransportSkipsConnectionClosedWhileIdle(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	var requests atomic.Int32
	closed := make(chan struct{})
	go func() {
		for {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			// Answer one request without announcing a close, then close:
			// the client keeps the connection as idle.
			req, err := http.ReadRequest(bufio.NewReader(nc))
			if err == nil {
				requests.Add(1)
				io.Copy(io.Discard, req.Body)
				io.WriteString(nc, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			}
			nc.Close()
			closed <- struct{}{}
		}
	}()
	c := plainClient(t, "http://"+l.Addr().String())
	for i := range 3 {
		resp, err := post(t, c, "http://"+l.Addr().String()+"/", "x")
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if got := readAll(t, resp); got != "ok" {
			t.Fatalf("request %d answered %q", i, got)
		}
		<-closed
	}
	if n := requests.Load(); n != 3 {
		t.Errorf("the server received %d requests, want 3", n)
	}
}

// Cancelling a request interrupts it while it waits for the answer.
func TestPlainTransportCancel(t *testing.T) {
	release := make(chan struct{})
	ts, _ := countingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
	}))
	defer close(release)
	c := plainClient(t, ts.URL)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, ts.URL, strings.NewReader("x"))
	done := make(chan error, 1)
	go func() {
		resp, err := c.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled request returned %v, want context.Canceled", err)
	}
}

// The transport serves its one upstream: a redirect to another host is an
// error, not a request sent to the upstream's address under another name.
func TestPlainTransportRefusesOtherHosts(t *testing.T) {
	var requests atomic.Int32
	ts, _ := countingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		http.Redirect(w, r, "http://elsewhere.example:8080/mcp", http.StatusTemporaryRedirect)
	}))
	c := plainClient(t, ts.URL)
	resp, err := post(t, c, ts.URL+"/mcp", "x")
	if err == nil {
		resp.Body.Close()
		t.Fatal("a redirect to another host was followed")
	}
	if !strings.Contains(err.Error(), "is not the upstream") {
		t.Errorf("error = %v", err)
	}
	if n := requests.Load(); n != 1 {
		t.Errorf("the upstream received %d requests, want 1", n)
	}
}

// Response headers are bounded, as net/http's Transport bounds them.
func TestPlainTransportBoundsResponseHeaders(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		nc, err := l.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		if _, err := http.ReadRequest(bufio.NewReader(nc)); err != nil {
			return
		}
		io.WriteString(nc, "HTTP/1.1 200 OK\r\n")
		line := "X-Filler: " + strings.Repeat("a", 1000) + "\r\n"
		for range 2 * maxResponseHeaderBytes / len(line) {
			if _, err := io.WriteString(nc, line); err != nil {
				return
			}
		}
	}()
	c := plainClient(t, "http://"+l.Addr().String())
	resp, err := post(t, c, "http://"+l.Addr().String()+"/", "x")
	if err == nil {
		resp.Body.Close()
		t.Fatal("endless response headers were accepted")
	}
	if !errors.Is(err, errHeaderTooLong) {
		t.Errorf("error = %v, want %v", err, errHeaderTooLong)
	}
}
