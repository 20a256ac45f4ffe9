package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// trickle opens a connection to the server, sends headers announcing a
// body of 1000 bytes and then the body one byte every 50 ms, until the
// server answers or closes. It returns what the server said and how many
// body bytes it had been sent by then (1000 means the server waited for
// all of it, 50 seconds).
func trickle(t *testing.T, in *instance, headers string) (string, int) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(in.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /v1/decide HTTP/1.1\r\nHost: agentgov\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n%s\r\n", headers)
	answered := make(chan string, 1)
	go func() {
		// Everything the server sends until it closes the connection.
		b, _ := io.ReadAll(bufio.NewReader(conn))
		answered <- string(b)
	}()
	sent := 0
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for sent < 1000 {
		select {
		case got := <-answered:
			return got, sent
		case <-tick.C:
			if _, err := conn.Write([]byte(" ")); err != nil {
				return <-answered, sent
			}
			sent++
		}
	}
	conn.(*net.TCPConn).CloseWrite()
	return <-answered, sent
}

// A client trickles its body, one byte at a time, to hold a request (and a
// connection) open: the server used to wait as long as it took. Bodies now
// have body_read_timeout to arrive; past it the request is answered 408 and
// the connection closed. The variant: a client that is not even
// authenticated is answered 401 at once, and its incomplete body is not
// waited for beyond the same bound either.
func TestServeCutsABodyThatTrickles(t *testing.T) {
	in := startWithConfig(t, "body_read_timeout: 1s\n")
	got, sent := trickle(t, in, "Authorization: Bearer a1-tok\r\n")
	if !strings.HasPrefix(got, "HTTP/1.1 408") || !strings.Contains(got, "did not arrive within 1s") || sent >= 1000 {
		t.Errorf("trickled body: the server answered %q after %d of 1000 bytes", firstLine(got), sent)
	}
	got, sent = trickle(t, in, "")
	if !strings.HasPrefix(got, "HTTP/1.1 401") || sent >= 1000 {
		t.Errorf("unauthenticated trickled body: the server answered %q and held the connection for %d of 1000 bytes", firstLine(got), sent)
	}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\r\n")
	return line
}

// The body bound must not cut what comes after the body: a streamed model
// answer that lasts several times body_read_timeout reaches its end.
func TestServeBodyDeadlineDoesNotCutAStreamedAnswer(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range 6 {
			fmt.Fprintf(w, "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"part%d \"}}]}\n\n", i)
			w.(http.Flusher).Flush()
			time.Sleep(400 * time.Millisecond)
		}
		fmt.Fprint(w, "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":6}}\n\ndata: [DONE]\n\n")
	}))
	defer up.Close()
	in := startWithConfig(t, fmt.Sprintf("body_read_timeout: 1s\nllm:\n  openai: {base_url: %q, api_key_env: TEST_UPSTREAM_KEY}\n", up.URL), "TEST_UPSTREAM_KEY=k")
	os.WriteFile(filepath.Join(in.dir, "policies", "test.yaml"), []byte("version: agentgov/v1\nname: test\ndefault: allow\n"), 0o644)
	if code, m := in.call("POST", "/v1/policies/reload", "admin-tok", ""); code != 200 {
		t.Fatalf("reload: %d %v", code, m)
	}
	req, _ := http.NewRequest("POST", in.url+"/llm/v1/chat/completions", strings.NewReader(`{"model":"gpt-4o-mini","stream":true,"max_tokens":50,"messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set("Authorization", "Bearer a1-tok")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || !strings.Contains(string(b), "part5") || !strings.HasSuffix(string(b), "data: [DONE]\n\n") {
		t.Fatalf("streamed answer: %v %q", err, b)
	}
}
