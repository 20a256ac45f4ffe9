// Package stacktest serves a whole stack over HTTP for the tests of the
// packages in front of it (the API client, the server, the console).
package stacktest

import (
	"context"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/agentgov/agentgov/config"
	"github.com/agentgov/agentgov/stack"
)

// Serve fills and validates cfg, opens its stack with opt, serves it on a
// free local port until the test ends (a stack that stops with an error
// fails the test), and returns its base URL once /readyz answers 200.
func Serve(t testing.TB, cfg *config.Config, opt stack.Options) string {
	t.Helper()
	cfg.Fill()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	st, err := stack.Open(context.Background(), cfg, opt)
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	front, err := st.HTTP(ln, stack.HTTPOptions{})
	if err != nil {
		st.Close()
		ln.Close()
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- st.Run(ctx, front) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("the stack stopped with %v", err)
		}
	})
	url := "http://" + ln.Addr().String()
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if res, err := http.Get(url + "/readyz"); err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return url
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the stack never became ready")
		}
	}
}
