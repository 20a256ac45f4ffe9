package wire

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
)

// An upstream that sends response headers without end gets an error, not
// the gateway's memory.
func TestUpstreamClientBoundsResponseHeaders(t *testing.T) {
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
		for range 4 * maxResponseHeaderBytes / len(line) {
			if _, err := io.WriteString(nc, line); err != nil {
				return
			}
		}
	}()
	resp, err := upstreamClient().Post("http://"+l.Addr().String()+"/", "application/json", strings.NewReader("{}"))
	if err == nil {
		resp.Body.Close()
		t.Fatal("endless response headers were accepted")
	}
	if !strings.Contains(err.Error(), "header") {
		t.Errorf("error = %v, want one about the headers", err)
	}
}

// Calls one after another reuse one kept-alive connection.
func TestUpstreamClientKeepsConnectionsAlive(t *testing.T) {
	ts, conns := countingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Write([]byte(`{}`))
	}))
	c := upstreamClient()
	for range 10 {
		resp, err := c.Post(ts.URL, "application/json", strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("10 calls in a row opened %d connections, want 1", n)
	}
}
