package console

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/approval"
)

// fakeAPI answers the calls the console makes, as the server would for an
// approver ("approver") or an admin ("admin"), with the tickets given as
// raw JSON and an audit log of the one record given.
type fakeAPI struct {
	tickets []string
	record  string
}

func (f fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	role := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	if role != "approver" && role != "admin" {
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"error":{"code":"unauthorized","message":"unknown token"}}`)
		return
	}
	switch {
	case r.URL.Path == "/v1/approvals":
		io.WriteString(w, `{"approvals":[`+strings.Join(f.tickets, ",")+`]}`)
	case role == "admin" && r.URL.Path == "/v1/kill":
		io.WriteString(w, `{"switches":[]}`)
	case role == "admin" && r.URL.Path == "/v1/audit":
		io.WriteString(w, `{"size":1,"entries":[{"index":0,"kind":"decision","time":"2026-01-02T03:04:05Z","record":`+f.record+`}]}`)
	default:
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, `{"error":{"code":"forbidden","message":"this token may not call this"}}`)
	}
}

// consoleOver serves a console over api; its clock is the real one moved
// by *skew.
func consoleOver(t *testing.T, api http.Handler) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	c, err := New(Options{API: api, Poll: 20 * time.Millisecond, SessionTTL: time.Hour, SessionIdle: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	skew := new(atomic.Int64)
	c.sessions.now = func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	srv := httptest.NewServer(c.Handler())
	t.Cleanup(srv.Close)
	return srv, skew
}

func signedInClient(t *testing.T, base string, token ...string) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	tok := "approver"
	if len(token) > 0 {
		tok = token[0]
	}
	res, err := hc.PostForm(base+"/ui/login", url.Values{"token": {tok}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign in: %d", res.StatusCode)
	}
	return hc
}

func getPage(t *testing.T, hc *http.Client, u string) string {
	t.Helper()
	res, err := hc.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 {
		t.Fatalf("%s: %d\n%s", u, res.StatusCode, b)
	}
	return string(b)
}

func ticketJSON(t *testing.T, tk approval.Ticket) string {
	t.Helper()
	b, err := json.Marshal(tk)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A stream outlives no session: once the session expires, idle or past its
// lifetime, the live queue stops speaking for the token.
func TestExpiredSessionEndsItsStream(t *testing.T) {
	for name, skip := range map[string]time.Duration{"idle": 11 * time.Minute, "lifetime": 61 * time.Minute} {
		t.Run(name, func(t *testing.T) {
			srv, skew := consoleOver(t, fakeAPI{})
			hc := signedInClient(t, srv.URL)
			cx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(cx, "GET", srv.URL+"/ui/events/approvals", nil)
			res, err := hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			br := bufio.NewReader(res.Body)
			if line, _ := br.ReadString('\n'); line != "event: queue\n" {
				t.Fatalf("first line %q", line)
			}
			skew.Store(int64(skip))
			done := make(chan error, 1)
			go func() { _, err := io.Copy(io.Discard, br); done <- err }()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("the stream did not end cleanly: %v", err)
				}
			case <-time.After(3 * time.Second):
				t.Fatalf("the stream is still open after the session expired (%s)", name)
			}
		})
	}
}

// Numbers reach the approver as the API wrote them: decoded as float64, an
// account number past 2^53 is shown as its neighbour.
func TestTicketShowsNumbersAsTheAPIWroteThem(t *testing.T) {
	tk := approval.Ticket{ID: "apr_1", Status: approval.Pending, AgentID: "a1", Point: action.PreToolCall,
		Tool: action.Tool{Name: "send_money"}, ExpiresAt: time.Now().Add(time.Hour), CreatedAt: time.Now(),
		Action: action.Action{Tool: action.Tool{Name: "send_money"}, Args: map[string]any{
			"account": int64(12345678901234567),
			"payment": map[string]any{"ref": int64(-9007199254740993)},
		}}}
	srv, _ := consoleOver(t, fakeAPI{tickets: []string{ticketJSON(t, tk)}})
	page := getPage(t, signedInClient(t, srv.URL), srv.URL+"/ui/approvals")
	for _, want := range []string{"<pre>12345678901234567</pre>", `&#34;ref&#34;: -9007199254740993`} {
		if !strings.Contains(page, want) {
			t.Errorf("the ticket does not show %s", want)
		}
	}
	for _, rounded := range []string{"12345678901234568", "9007199254740992"} {
		if strings.Contains(page, rounded) {
			t.Errorf("the ticket shows the rounded %s", rounded)
		}
	}
}

// The audit entry page shows the record as logged, numbers included.
func TestAuditEntryShowsNumbersAsLogged(t *testing.T) {
	srv, _ := consoleOver(t, fakeAPI{record: `{"action":{"args":{"account":12345678901234567,"big":123456789012345678901234567890}}}`})
	page := getPage(t, signedInClient(t, srv.URL, "admin"), srv.URL+"/ui/audit/0")
	for _, want := range []string{"&#34;account&#34;: 12345678901234567,", "&#34;big&#34;: 123456789012345678901234567890"} {
		if !strings.Contains(page, want) {
			t.Errorf("the entry does not show %s", want)
		}
	}
}

// hiddenRunes are characters a person cannot see, or that reorder what
// they see: an agent uses them to make one recipient read as another.
const hiddenRunes = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200b\u200c\u200d\u200e\u200f\u061c\ufeff\u2028\u2029\x00\r"

// A ticket shows what an agent's strings really hold: invisible and
// reordering characters are named, not applied.
func TestTicketShowsHiddenCharacters(t *testing.T) {
	tk := approval.Ticket{ID: "apr_1", Status: approval.Pending, AgentID: "a1", Point: action.PreToolCall,
		Session:   "s\u200b1",
		Tool:      action.Tool{Server: "pay\u2066", Name: "send_money\u202e"},
		Reasons:   []string{"rule x: recipient \u202eLTD EMCA\u202c needs approval"},
		ExpiresAt: time.Now().Add(time.Hour), CreatedAt: time.Now(),
		Provenance: map[string][]string{"args.recipient": {"tool:read\u202efile"}},
		Action: action.Action{Tool: action.Tool{Name: "send_money"}, Content: "pay \u2067now\u2069\r\x00", Args: map[string]any{
			"recipient":       "evil-corp\u202e0042 LTD EMCA",
			"amount\u200b":    int64(5000),
			"memo":            "ok\u2028\u2029\ufeff\u061c\u200e\u200f\u200c\u200d\u202a\u202b\u202d",
			"nested\u2068key": map[string]any{"to": "x\u202ey"},
		}}}
	srv, _ := consoleOver(t, fakeAPI{tickets: []string{ticketJSON(t, tk)}})
	hc := signedInClient(t, srv.URL)
	for _, path := range []string{"/ui/approvals", "/ui/approvals/list"} {
		page := getPage(t, hc, srv.URL+path)
		if i := strings.IndexAny(page, hiddenRunes); i >= 0 {
			t.Errorf("%s holds %q unmarked: …%s…", path, []rune(page[i:])[0], page[max(i-60, 0):min(i+20, len(page))])
		}
		for _, want := range []string{"evil-corp[U&#43;202E]0042 LTD EMCA", "send_money[U&#43;202E]", "s[U&#43;200B]1", "amount[U&#43;200B]"} {
			if !strings.Contains(page, want) {
				t.Errorf("%s does not show %s", path, want)
			}
		}
	}
}
