package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/approval"
	"github.com/agentgov/agentgov/client"
)

// These tests pin the client's own encoding, decoding and error handling
// against canned answers; server_test.go runs it against the real server.

type seen struct {
	method, path, query string
	header              http.Header
	body                string
}

// canned serves one fixed answer and records each request.
func canned(t *testing.T, status int, body string) (*httptest.Server, func() []seen) {
	t.Helper()
	var mu sync.Mutex
	var reqs []seen
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		reqs = append(reqs, seen{r.Method, r.URL.EscapedPath(), r.URL.RawQuery, r.Header.Clone(), string(b)})
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv, func() []seen {
		mu.Lock()
		defer mu.Unlock()
		return append([]seen(nil), reqs...)
	}
}

func newClient(t *testing.T, url, token string) *client.Client {
	t.Helper()
	c, err := client.New(url, token)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestDecideSendsTheActionAndHeaders(t *testing.T) {
	srv, reqs := canned(t, 200, `{"id":"dec_01JBZ3Q8Y9M7X6W5V4T3S2R1QP","effect":"require_approval","reasons":["rule pay: big"],"rules":["pay"],"severity":"high","approval":{"id":"apr_1","status":"pending","expires_at":"2026-03-01T12:30:00Z"},"audit_index":7,"added_later":true}`)
	c := newClient(t, srv.URL+"/", "tok-1")
	a := action.Action{Session: "s-1", Tool: action.Tool{Name: "pay"}, Args: map[string]any{"amount": 5000}}
	d, err := c.Decide(context.Background(), a,
		client.IdempotencyKey("k-1"),
		client.TraceParent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
		client.CorrelationID("req-9"))
	if err != nil {
		t.Fatal(err)
	}
	if d.ID.String() != "dec_01JBZ3Q8Y9M7X6W5V4T3S2R1QP" || d.Effect != action.RequireApproval || d.Approval == nil || d.Approval.ID != "apr_1" ||
		d.AuditIndex == nil || *d.AuditIndex != 7 || d.Severity != action.SeverityHigh {
		t.Fatalf("decoded decision: %+v", d)
	}
	r := reqs()[0]
	if r.method != "POST" || r.path != "/v1/decide" {
		t.Fatalf("sent %s %s", r.method, r.path)
	}
	for k, want := range map[string]string{
		"Authorization":    "Bearer tok-1",
		"Content-Type":     "application/json",
		"Accept":           "application/json",
		"Idempotency-Key":  "k-1",
		"Traceparent":      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"X-Correlation-Id": "req-9",
	} {
		if got := r.header.Get(k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	got, err := action.Decode([]byte(r.body))
	if err != nil {
		t.Fatalf("the body is not an Action the server accepts: %v: %s", err, r.body)
	}
	if got.Session != "s-1" || got.Tool.Name != "pay" || got.Args["amount"] != int64(5000) || got.Agent.ID != "" {
		t.Fatalf("sent action %+v", got)
	}
}

func TestDecideWithoutOptionsSendsNoExtraHeaders(t *testing.T) {
	srv, reqs := canned(t, 200, `{"id":"dec_01JBZ3Q8Y9M7X6W5V4T3S2R1QP","effect":"allow"}`)
	if _, err := newClient(t, srv.URL, "").Decide(context.Background(), action.Action{}); err != nil {
		t.Fatal(err)
	}
	h := reqs()[0].header
	for _, k := range []string{"Authorization", "Idempotency-Key", "Traceparent", "X-Correlation-Id"} {
		if v := h.Get(k); v != "" {
			t.Errorf("%s sent without being asked: %q", k, v)
		}
	}
}

// An answer that does not say allow, deny or require_approval must never
// read as an allow.
func TestDecideRefusesAnAnswerWithoutAKnownEffect(t *testing.T) {
	for _, body := range []string{
		`{"id":"dec_01JBZ3Q8Y9M7X6W5V4T3S2R1QP"}`,
		`{"id":"dec_01JBZ3Q8Y9M7X6W5V4T3S2R1QP","effect":"maybe"}`,
		`{"id":"dec_01JBZ3Q8Y9M7X6W5V4T3S2R1QP","effect":"audit"}`,
		`{"id":"not-an-id","effect":"allow"}`,
		`<html>ok</html>`,
	} {
		srv, _ := canned(t, 200, body)
		d, err := newClient(t, srv.URL, "t").Decide(context.Background(), action.Action{})
		if err == nil || d.Effect == action.Allow {
			t.Errorf("answer %s: decision %+v, err %v", body, d, err)
		}
	}
}

func TestServerErrorsAreTyped(t *testing.T) {
	srv, _ := canned(t, 403, `{"error":{"code":"forbidden","message":"agent.id: this token acts as \"a1\" and cannot claim \"a2\""}}`)
	_, err := newClient(t, srv.URL, "t").Decide(context.Background(), action.Action{Agent: action.Agent{ID: "a2"}})
	var e *client.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %T %v is not a *client.Error", err, err)
	}
	if e.Status != 403 || e.Code != client.CodeForbidden || !strings.Contains(e.Message, "cannot claim") || err.Error() != e.Message {
		t.Fatalf("error %+v, text %q", e, err.Error())
	}
	if !client.IsCode(err, client.CodeForbidden) || client.IsCode(err, client.CodeNotFound) {
		t.Fatal("IsCode")
	}
}

func TestNonAPIErrorBodiesBecomeMessages(t *testing.T) {
	// Without a code in the body, the status says which class of error it
	// is, so that a caller's branch on the code still works behind a proxy.
	for _, c := range []struct {
		status int
		body   string
		want   string
		code   string
	}{
		{502, `<html><body>Bad Gateway</body></html>`, "server answered 502: <html><body>Bad Gateway</body></html>", "upstream_unreachable"},
		{503, ``, "server answered 503: Service Unavailable", client.CodeUnavailable},
		{500, strings.Repeat("x", 1000), "server answered 500: " + strings.Repeat("x", 197) + "...", client.CodeInternal},
		{404, `{"detail":"nope"}`, `server answered 404: {"detail":"nope"}`, client.CodeNotFound},
		{405, ``, "server answered 405: Method Not Allowed", client.CodeMethodNotAllowed},
	} {
		srv, _ := canned(t, c.status, c.body)
		_, err := newClient(t, srv.URL, "t").Kills(context.Background())
		var e *client.Error
		if !errors.As(err, &e) || e.Status != c.status || e.Code != c.code || err.Error() != c.want {
			t.Errorf("%d %.20q: %v (code %q)", c.status, c.body, err, e.Code)
		}
		if e.Retryable() != (c.status >= 500) {
			t.Errorf("%d: retryable %v", c.status, e.Retryable())
		}
	}
}

func TestTheErrorCodeHeaderNamesTheCodeOfAnyBody(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Agentgov-Error-Code", "budget_exceeded")
		w.WriteHeader(429)
		io.WriteString(w, `{"type":"error","error":{"type":"rate_limit_error","message":"budget b: cost 2/1 USD"}}`)
	}))
	t.Cleanup(srv.Close)
	_, err := newClient(t, srv.URL, "t").Kills(context.Background())
	if !client.IsCode(err, "budget_exceeded") {
		t.Fatalf("%v", err)
	}
}

func TestIDsAreEscapedIntoOnePathSegment(t *testing.T) {
	srv, reqs := canned(t, 200, `{"id":"x/../y?z","status":"approved"}`)
	c := newClient(t, srv.URL, "t")
	if _, err := c.Approve(context.Background(), "x/../y?z", "looks fine"); err != nil {
		t.Fatal(err)
	}
	r := reqs()[0]
	if r.method != "POST" || r.path != "/v1/approvals/x%2F..%2Fy%3Fz/approve" || r.query != "" {
		t.Fatalf("sent %s %s ?%s", r.method, r.path, r.query)
	}
	var body map[string]string
	if json.Unmarshal([]byte(r.body), &body) != nil || body["note"] != "looks fine" || len(body) != 1 {
		t.Fatalf("body %s", r.body)
	}
}

func TestEmptyIDsAreRefusedWithoutARequest(t *testing.T) {
	srv, reqs := canned(t, 200, `{}`)
	c := newClient(t, srv.URL, "t")
	ctx := context.Background()
	for name, call := range map[string]func() error{
		"outcome":  func() error { return c.Outcome(ctx, "", action.Outcome{Status: "ok"}) },
		"decision": func() error { _, err := c.Decision(ctx, ""); return err },
		"approve":  func() error { _, err := c.Approve(ctx, "", ""); return err },
		"release":  func() error { return c.ReleaseKill(ctx, "") },
		"pause":    func() error { _, err := c.PauseSession(ctx, ""); return err },
		"budget":   func() error { return c.DeleteBudget(ctx, "") },
		"status":   func() error { _, err := c.Approvals(ctx, "waiting"); return err },
		"limit":    func() error { _, err := c.AuditEntries(ctx, -1, 0); return err },
		"after":    func() error { _, err := c.AuditEntries(ctx, -2, 10); return err },
	} {
		if err := call(); err == nil || !strings.HasPrefix(err.Error(), "client: ") {
			t.Errorf("%s: %v", name, err)
		}
	}
	if n := len(reqs()); n != 0 {
		t.Fatalf("%d requests sent for refused calls", n)
	}
}

func TestQueriesAndListShapes(t *testing.T) {
	srv, reqs := canned(t, 200, `{"approvals":[{"id":"apr_1","status":"pending","agent_id":"a1","point":"pre_tool_call","args_digest":"d","args":{"amount":5000},"policy_digest":"p","on_timeout":"deny","created_at":"2026-03-01T12:00:00Z","expires_at":"2026-03-01T12:30:00Z"}]}`)
	c := newClient(t, srv.URL, "t")
	ts, err := c.Approvals(context.Background(), approval.Pending)
	if err != nil || len(ts) != 1 || ts[0].ID != "apr_1" || string(ts[0].Args) != `{"amount":5000}` || ts[0].ExpiresAt.Minute() != 30 {
		t.Fatalf("approvals: %+v %v", ts, err)
	}
	if _, err := c.Approvals(context.Background(), ""); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AuditEntries(context.Background(), 41, 10); err != nil {
		t.Fatal(err)
	}
	r := reqs()
	if r[0].query != "status=pending" || r[1].query != "" || r[2].path != "/v1/audit" || r[2].query != "after=41&limit=10" {
		t.Fatalf("queries: %q %q %q", r[0].query, r[1].query, r[2].query)
	}
}

func TestNoContentAnswers(t *testing.T) {
	srv, reqs := canned(t, 204, ``)
	if err := newClient(t, srv.URL, "t").DeleteBudget(context.Background(), "b 1"); err != nil {
		t.Fatal(err)
	}
	if r := reqs()[0]; r.method != "DELETE" || r.path != "/v1/budgets/b%201" {
		t.Fatalf("sent %s %s", r.method, r.path)
	}
}

func TestNewRefusesBadURLsAndTokens(t *testing.T) {
	for _, u := range []string{"", "127.0.0.1:8420", "ftp://x", "http://", "http://h/?a=b", "http://h/#f", "://x"} {
		if _, err := client.New(u, "t"); err == nil {
			t.Errorf("New(%q) accepted", u)
		}
	}
	if _, err := client.New("http://h", "a\nb"); err == nil {
		t.Error("a token with a line break was accepted")
	}
	c, err := client.New("https://gov.example/prefix/", "t")
	if err != nil || c.BaseURL() != "https://gov.example/prefix" {
		t.Fatalf("%v %v", c, err)
	}
}

func TestUnreachableServerIsNamed(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := "http://" + ln.Addr().String()
	ln.Close()
	_, err = newClient(t, addr, "t").Kills(context.Background())
	var e *client.Error
	if err == nil || errors.As(err, &e) || !strings.Contains(err.Error(), "cannot reach the server at "+addr) {
		t.Fatalf("error %v", err)
	}
}

func TestCancelledContextStopsTheCall(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	defer close(release)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := newClient(t, srv.URL, "t").Decide(ctx, action.Action{})
		errc <- err
	}()
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
}

func TestOversizedAnswersAreRefused(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"entries":[],"size":0,"pad":"`+strings.Repeat("x", 4000)+`"}`)
	}))
	defer srv.Close()
	small, err := client.New(srv.URL, "t", client.WithMaxResponseBytes(4000))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := small.AuditEntries(context.Background(), -1, 10); err == nil || !strings.Contains(err.Error(), "larger than 4000 bytes") {
		t.Fatalf("error %v", err)
	}
	if _, err := newClient(t, srv.URL, "t").AuditEntries(context.Background(), -1, 10); err != nil {
		t.Fatalf("within the default bound: %v", err)
	}
}

// Fifty agents deciding at once keep their connections: the shared pool
// holds enough idle connections per host that they are reused rather than
// closed and redialled after every request.
func TestConcurrentCallersReuseConnections(t *testing.T) {
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"id":"dec_01JBZ3Q8Y9M7X6W5V4T3S2R1QP","effect":"allow"}`)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	const agents, each = 50, 40
	var wg sync.WaitGroup
	var failed atomic.Int64
	for range agents {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, _ := client.New(srv.URL, "t")
			for range each {
				if _, err := c.Decide(context.Background(), action.Action{Tool: action.Tool{Name: "read_file"}}); err != nil {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	// With Go's default of 2 idle connections per host nearly every request
	// would dial anew (about agents*each connections); reuse keeps it near
	// one connection per agent.
	if n := conns.Load(); failed.Load() != 0 || n > 4*agents {
		t.Fatalf("%d connections for %d requests (%d failed)", n, agents*each, failed.Load())
	}
}
