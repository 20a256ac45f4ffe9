package console_test

import (
	"bufio"
	"context"
	"html"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// sseEvent is one event as a browser's EventSource dispatches it.
type sseEvent struct{ Type, Data string }

// readEvents parses a text/event-stream as the HTML standard does: a line
// ends at CRLF, LF or a lone CR, and a blank line dispatches the event.
func readEvents(r io.Reader, out chan<- sseEvent) {
	defer close(out)
	br := bufio.NewReader(r)
	var line strings.Builder
	var typ string
	var data []string
	endLine := func() {
		l := line.String()
		line.Reset()
		if l == "" {
			if data != nil {
				if typ == "" {
					typ = "message"
				}
				out <- sseEvent{Type: typ, Data: strings.Join(data, "\n")}
			}
			typ, data = "", nil
			return
		}
		if strings.HasPrefix(l, ":") {
			return
		}
		field, value, _ := strings.Cut(l, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "event":
			typ = value
		case "data":
			data = append(data, value)
		}
	}
	for {
		b, err := br.ReadByte()
		if err != nil {
			return
		}
		switch b {
		case '\n':
			endLine()
		case '\r':
			endLine()
			if next, err := br.Peek(1); err == nil && next[0] == '\n' {
				br.ReadByte()
			}
		default:
			line.WriteByte(b)
		}
	}
}

// stream opens a server-sent event stream with the browser's cookie.
func (b *browser) stream(t *testing.T, path string) (<-chan sseEvent, *http.Response) {
	t.Helper()
	cx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(cx, "GET", b.base+path, nil)
	res, err := b.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 200 {
		t.Fatalf("%s: %d", path, res.StatusCode)
	}
	ch := make(chan sseEvent, 64)
	go readEvents(res.Body, ch)
	t.Cleanup(func() { res.Body.Close() })
	return ch, res
}

// logSize is the audit log's size as the admin API reports it.
func logSize(t *testing.T, base string) int {
	t.Helper()
	return int(api(t, base, "GET", "/v1/audit?after=-1&limit=1", adminTok, "")["size"].(float64))
}

// A live page signed out (or whose session ended) gets nothing more: the
// stream ends with the session, it does not keep speaking for the token.
func TestSignOutEndsTheLiveStreams(t *testing.T) {
	base := serve(t)
	b := newBrowser(t, base)
	b.signIn(adminTok)
	token := b.csrf("/ui/approvals")
	feed, _ := b.stream(t, "/ui/events/decisions?after="+itoa(logSize(t, base)-1))
	queue, _ := b.stream(t, "/ui/events/approvals")
	if ev := <-queue; ev.Type != "queue" {
		t.Fatalf("the queue stream's first event: %+v", ev)
	}
	if res, _ := b.do("POST", "/ui/logout", url.Values{"csrf": {token}}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign out: %d", res.StatusCode)
	}
	api(t, base, "POST", "/v1/decide", agentTok, `{"tool":{"name":"after_sign_out"},"args":{}}`)
	api(t, base, "POST", "/v1/decide", agentTok, `{"tool":{"name":"send_money"},"args":{"amount":5000}}`)
	for name, ch := range map[string]<-chan sseEvent{"decision feed": feed, "approvals queue": queue} {
		select {
		case ev, open := <-ch:
			if open {
				t.Errorf("the %s still streams after sign-out: %+v", name, ev)
			}
		case <-time.After(8 * time.Second):
			t.Errorf("the %s is still open 8s after sign-out", name)
		}
	}
}

// An agent names its tool (or model) with carriage returns: each is a line
// end to an EventSource, so unescaped they would end the row's event early
// and start events of the agent's making.
func TestAgentStringsCannotFrameServerSentEvents(t *testing.T) {
	base := serve(t)
	b := newBrowser(t, base)
	b.signIn(adminTok)
	feed, _ := b.stream(t, "/ui/events/decisions?after="+itoa(logSize(t, base)-1))
	const forged = `x\r\r: forged\revent: queue\rdata: <b>forged</b>\r\r`
	api(t, base, "POST", "/v1/decide", agentTok, `{"tool":{"name":"`+forged+`"},"args":{}}`)
	api(t, base, "POST", "/v1/decide", agentTok, `{"point":"pre_model_call","model":"`+forged+`"}`)
	rows := 0
	deadline := time.After(8 * time.Second)
	for rows < 2 {
		select {
		case ev, open := <-feed:
			if !open {
				t.Fatal("the feed ended")
			}
			if ev.Type != "rows" || !strings.HasPrefix(ev.Data, "<tr>") || !strings.HasSuffix(ev.Data, "</tr>") {
				t.Fatalf("an event the agent made: %+v", ev)
			}
			rows += strings.Count(ev.Data, "<tr>")
		case <-deadline:
			t.Fatalf("%d rows of 2 arrived", rows)
		}
	}
}

// The decision feed names the hidden characters of an agent's tool name,
// on the page and in the rows that arrive live.
func TestDecisionFeedShowsHiddenCharacters(t *testing.T) {
	base := serve(t)
	b := newBrowser(t, base)
	b.signIn(adminTok)
	feed, _ := b.stream(t, "/ui/events/decisions?after="+itoa(logSize(t, base)-1))
	api(t, base, "POST", "/v1/decide", agentTok, `{"tool":{"name":"read\u202eelif_\u200b"},"session":"s\u2066x","args":{}}`)
	select {
	case ev := <-feed:
		if strings.ContainsAny(ev.Data, "\u202e\u200b") || !strings.Contains(ev.Data, "read[U&#43;202E]elif_[U&#43;200B]") {
			t.Errorf("a live row: %s", ev.Data)
		}
	case <-time.After(8 * time.Second):
		t.Fatal("no live row")
	}
	for _, p := range []string{"/ui/decisions", "/ui/agents", "/ui/audit"} {
		_, page := b.do("GET", p, nil)
		if i := strings.IndexAny(page, "\u202e\u200b\u2066"); i >= 0 {
			t.Errorf("%s holds a hidden character unmarked: …%s…", p, page[max(i-80, 0):min(i+20, len(page))])
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// The audit explorer says "Verified" only for the entry it shows: a proof
// of another entry, however true, verifies nothing about this one.
func TestVerifyInclusionRefusesTheProofOfAnotherEntry(t *testing.T) {
	if _, err := os.Stat("/usr/bin/chromium"); err != nil {
		t.Skip("chromium is not installed (apt-get install chromium)")
	}
	if _, err := os.Stat("testdata/node/node_modules/playwright-core"); err != nil {
		t.Skip("npm packages not installed; run: npm ci --prefix console/testdata/node")
	}
	base := serve(t)
	// Each entry holds an integer a double cannot: the browser must hash
	// the digits the server logged, not the neighbour JSON.parse reads.
	for range 4 {
		api(t, base, "POST", "/v1/decide", agentTok, `{"tool":{"name":"read_file"},"args":{"path":"/tmp/x","account":12345678901234567}}`)
	}
	// Wait for a checkpoint that covers them all.
	deadline := time.Now().Add(5 * time.Second)
	for {
		cp := api(t, base, "GET", "/v1/audit/checkpoint", adminTok, "")
		if size, _ := cp["size"].(float64); size >= 4 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	cmd := exec.Command("node", "verify.mjs")
	cmd.Dir = "testdata/node"
	cmd.Env = append(os.Environ(), "URL="+base, "ADMIN="+adminTok, "ENTRY=2", "OTHERS=1,3")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	t.Logf("%s", out)
}

// A filter holding "&" or "=" stays one filter in the live feed's address:
// it cannot add parameters of its own (another start, another filter).
func TestDecisionFeedFiltersStayInTheirParameter(t *testing.T) {
	base := serve(t)
	b := newBrowser(t, base)
	b.signIn(adminTok)
	for _, agent := range []string{"a1&effect=allow&after=-1", "a1#x"} {
		_, page := b.do("GET", "/ui/decisions?"+url.Values{"agent": {agent}}.Encode(), nil)
		m := regexp.MustCompile(`data-live="([^"]*)"`).FindStringSubmatch(page)
		if m == nil {
			t.Fatal("no live feed on the page")
		}
		u, err := url.Parse(html.UnescapeString(m[1]))
		if err != nil {
			t.Fatal(err)
		}
		q := u.Query()
		if q.Get("agent") != agent || len(q["after"]) != 1 || len(q["effect"]) != 1 || q.Get("effect") != "" {
			t.Errorf("filter %q: the live feed asks for %s", agent, u)
		}
	}
}
