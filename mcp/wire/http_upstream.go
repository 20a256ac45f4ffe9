package wire

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/agentgov/agentgov/errcode"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// Header names and values of the MCP streamable HTTP transport.
const (
	protocolVersionHeader = "Mcp-Protocol-Version"
	methodHeader          = "Mcp-Method"
	nameHeader            = "Mcp-Name"
	metaProtocolVersion   = "io.modelcontextprotocol/protocolVersion"
	// standardHeadersSince is the first protocol version whose requests
	// carry their method and name in headers, which servers check.
	standardHeadersSince = "2026-07-28"
	MediaJSON            = "application/json"
	MediaEventStream     = "text/event-stream"
	deleteTimeout        = 5 * time.Second
	drainWait            = time.Second
)

// Header values shared by every request; net/http only reads them.
var (
	ContentTypeJSON = []string{MediaJSON}
	acceptJSONOrSSE = []string{MediaJSON + ", " + MediaEventStream}
)

// upstreamIdleConns is how many idle connections to one HTTP upstream are
// kept for reuse.
const upstreamIdleConns = 64

// URL returns a Dialer for an upstream speaking streamable HTTP at url. A
// nil client means one of the gateway's own (see upstreamClient).
func URL(url string, client *http.Client) Dialer {
	if client == nil {
		client = upstreamClient()
	}
	return func(ctx context.Context) (sdk.Connection, error) {
		return newHTTPUpstream(url, client), nil
	}
}

// upstreamClient is the gateway's own client for HTTP upstreams: net/http's
// transport (TLS, proxies from the environment, HTTP/2) with enough idle
// connections kept alive for concurrent calls (http.DefaultClient keeps
// two per host, so parallel calls would keep opening connections), and
// response headers bounded, since an upstream that sends them without end
// must not hold a call or its memory.
//
// The gateway once had its own HTTP/1.1 client for plain-HTTP upstreams,
// which saved a hand-off between goroutines per call; with the audit log
// on, as users run it, the difference disappeared in the cost of writing
// the records (bench/mcpgw/RESULTS.md), and net/http serves every
// upstream.
func upstreamClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = upstreamIdleConns
	t.MaxResponseHeaderBytes = maxResponseHeaderBytes
	return &http.Client{Transport: t}
}

// maxResponseHeaderBytes bounds an upstream's response headers.
const maxResponseHeaderBytes = 64 << 10

// httpUpstream is the gateway's connection to a streamable-HTTP upstream.
// Each message is a POST; the answer to a request comes back in the POST's
// response, as JSON or as a stream of server-sent events that may carry the
// server's own requests and notifications first. The session id from the
// initialize answer, and the negotiated protocol version, go on every later
// request; closing ends the session with DELETE. There is no standalone GET
// stream: what the upstream says outside of a request is not relayed.
type httpUpstream struct {
	url    string
	client *http.Client
	ctx    context.Context // every request's; ends with Close
	cancel context.CancelFunc

	incoming chan jsonrpc.Message
	done     chan struct{}

	failOnce sync.Once
	failed   chan struct{}
	failErr  error

	closeOnce sync.Once

	push  func(jsonrpc.Message) // see PushTo
	calls chan upstreamCall     // to an idle call worker, see startCall

	mu        sync.Mutex
	sessionID string
	version   string
	gone      bool // the server ended the session
}

var _ sdk.Connection = (*httpUpstream)(nil)

func newHTTPUpstream(url string, client *http.Client) *httpUpstream {
	ctx, cancel := context.WithCancel(context.Background())
	return &httpUpstream{
		url: url, client: client, ctx: ctx, cancel: cancel,
		incoming: make(chan jsonrpc.Message, 16),
		calls:    make(chan upstreamCall),
		done:     make(chan struct{}),
		failed:   make(chan struct{}),
	}
}

func (c *httpUpstream) SessionID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sessionID
}

// Read returns the next message the upstream sent on any response.
func (c *httpUpstream) Read(ctx context.Context) (jsonrpc.Message, error) {
	select {
	case m := <-c.incoming:
		return m, nil
	case <-c.failed:
		return nil, c.failErr
	case <-c.done:
		return nil, io.EOF
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// fail breaks the connection: Read returns err, and the session dials anew.
func (c *httpUpstream) fail(err error) {
	c.failOnce.Do(func() {
		c.failErr = err
		close(c.failed)
	})
}

// Write posts msg. A notification or a response is posted before Write
// returns, so that what the client sends in order arrives in order. A
// request is posted by a call worker and its answer delivered (see
// deliver), so that a slow upstream call holds up neither the caller nor
// other calls.
func (c *httpUpstream) Write(ctx context.Context, msg jsonrpc.Message) error {
	body, err := c.encode(msg)
	if err != nil {
		return err
	}
	req, ok := msg.(*jsonrpc.Request)
	if ok && req.IsCall() {
		c.startCall(upstreamCall{req, body})
		return nil
	}
	resp, err := c.post(msg, body)
	if err != nil {
		c.fail(err)
		return err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		err := fmt.Errorf("upstream answered %s to a %s", resp.Status, describe(msg))
		if c.sessionGone(resp) {
			c.fail(err)
		}
		return err
	}
	return nil
}

// WriteAndWait is Write, except that a request is posted on the caller's
// goroutine and its answer delivered before it returns.
func (c *httpUpstream) WriteAndWait(ctx context.Context, msg jsonrpc.Message) error {
	req, ok := msg.(*jsonrpc.Request)
	if !ok || !req.IsCall() {
		return c.Write(ctx, msg)
	}
	body, err := c.encode(msg)
	if err != nil {
		return err
	}
	c.call(req, body)
	return nil
}

// encode refuses a message for a connection that failed or was closed,
// and encodes it otherwise.
func (c *httpUpstream) encode(msg jsonrpc.Message) ([]byte, error) {
	select {
	case <-c.failed:
		return nil, c.failErr
	case <-c.done:
		return nil, sdk.ErrConnectionClosed
	default:
	}
	return EncodeMessage(msg)
}

func describe(msg jsonrpc.Message) string {
	if r, ok := msg.(*jsonrpc.Request); ok {
		return fmt.Sprintf("%q notification", r.Method)
	}
	return "response"
}

// post sends one message and returns the response once its headers are in,
// having taken the session id from it.
func (c *httpUpstream) post(msg jsonrpc.Message, body []byte) (*http.Response, error) {
	hreq, err := http.NewRequestWithContext(c.ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("upstream request: %w", err)
	}
	hreq.Header["Content-Type"] = ContentTypeJSON
	hreq.Header["Accept"] = acceptJSONOrSSE
	c.mu.Lock()
	sid, version := c.sessionID, c.version
	c.mu.Unlock()
	req, _ := msg.(*jsonrpc.Request)
	if req != nil {
		if v := requestProtocolVersion(req.Params); v != "" {
			version = v
		}
		if tp := requestTraceparent(req.Params); tp != "" {
			hreq.Header["Traceparent"] = []string{tp}
		}
	}
	if sid != "" {
		hreq.Header[SessionHeader] = []string{sid}
	}
	if version != "" {
		hreq.Header[protocolVersionHeader] = []string{version}
		if req != nil && version >= standardHeadersSince {
			hreq.Header[methodHeader] = []string{req.Method}
			if name, ok := requestName(req); ok {
				hreq.Header[nameHeader] = []string{name}
			}
		}
	}
	resp, err := c.client.Do(hreq)
	if err != nil {
		return nil, fmt.Errorf("post to upstream: %w", err)
	}
	if got := resp.Header.Get(SessionHeader); got != "" {
		c.mu.Lock()
		if c.sessionID == "" {
			c.sessionID = got
		}
		c.mu.Unlock()
	}
	return resp, nil
}

// sessionGone says whether resp means the server no longer knows the
// session (404 to a request that carried its id).
func (c *httpUpstream) sessionGone(resp *http.Response) bool {
	if resp.StatusCode != http.StatusNotFound || resp.Request.Header.Get(SessionHeader) == "" {
		return false
	}
	c.mu.Lock()
	c.gone = true
	c.mu.Unlock()
	return true
}

type upstreamCall struct {
	req  *jsonrpc.Request
	body []byte
}

// startCall hands a request to an idle call worker, or starts one. Workers
// stay for the life of the connection, as many as calls have been in
// flight at once: a fresh goroutine per call had to grow its stack through
// the HTTP client and the post-call checks on every call, which showed in
// profiles.
func (c *httpUpstream) startCall(uc upstreamCall) {
	select {
	case c.calls <- uc:
	default:
		go c.callWorker(uc)
	}
}

func (c *httpUpstream) callWorker(uc upstreamCall) {
	for {
		c.call(uc.req, uc.body)
		select {
		case uc = <-c.calls:
		case <-c.done:
			return
		}
	}
}

// call posts a request and delivers what comes back, ending with the
// request's answer. Whatever goes wrong short of a broken connection is
// delivered as an error answer, so the caller is never left waiting.
func (c *httpUpstream) call(req *jsonrpc.Request, body []byte) {
	resp, err := c.post(req, body)
	if err != nil {
		if c.ctx.Err() == nil {
			c.fail(err)
		}
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		c.refused(req, resp)
		return
	}
	switch MediaType(resp.Header.Get("Content-Type")) {
	case MediaJSON:
		data, err := readLimited(resp.Body, MaxUpstreamMessageBytes)
		if err != nil {
			c.answer(req, fmt.Errorf("reading the upstream's answer: %w", err))
			return
		}
		m, err := DecodeMessage(data)
		if err != nil {
			c.answer(req, fmt.Errorf("the upstream's answer is not a JSON-RPC message: %w", err))
			return
		}
		c.deliver(req, m)
		if r, ok := m.(*jsonrpc.Response); !ok || r.ID != req.ID {
			c.answer(req, errors.New("the upstream's JSON answer was not the response to the request"))
		}
	case MediaEventStream:
		answered := false
		br := eventReaders.Get().(*bufio.Reader)
		br.Reset(resp.Body)
		defer func() {
			br.Reset(nil)
			eventReaders.Put(br)
		}()
		err := ReadEvents(br, MaxUpstreamMessageBytes, func(data []byte) bool {
			m, err := DecodeMessage(data)
			if err != nil {
				return true // an event that is not a message is not ours to relay
			}
			c.deliver(req, m)
			if r, ok := m.(*jsonrpc.Response); ok && r.ID == req.ID {
				answered = true
				return false
			}
			return true
		})
		if answered {
			// Read the stream to its end, so that its connection can carry
			// the next call: a body closed early costs a new connection.
			// The answer is already delivered; a server that keeps the
			// stream open after answering is given drainWait.
			t := time.AfterFunc(drainWait, func() { resp.Body.Close() })
			io.Copy(io.Discard, io.LimitReader(br, 64<<10))
			t.Stop()
		}
		if !answered && c.ctx.Err() == nil {
			if err == nil {
				err = errors.New("the upstream ended the event stream before answering")
			}
			c.answer(req, err)
		}
	default:
		c.answer(req, fmt.Errorf("the upstream answered with content type %q", resp.Header.Get("Content-Type")))
	}
}

// refused handles a request the upstream answered with an HTTP error: a
// JSON-RPC error in the body answers the request; a lost session breaks the
// connection, so that the session dials and initialises anew.
func (c *httpUpstream) refused(req *jsonrpc.Request, resp *http.Response) {
	data, _ := readLimited(resp.Body, 64<<10)
	if m, err := DecodeMessage(data); err == nil {
		if r, ok := m.(*jsonrpc.Response); ok && r.Error != nil {
			c.deliver(req, &jsonrpc.Response{ID: req.ID, Error: r.Error})
			return
		}
	}
	err := fmt.Errorf("upstream answered %s to %q", resp.Status, req.Method)
	if c.sessionGone(resp) {
		c.fail(err)
		return
	}
	c.answer(req, err)
}

// answer delivers an error as the answer to req.
func (c *httpUpstream) answer(req *jsonrpc.Request, err error) {
	c.deliver(req, &jsonrpc.Response{ID: req.ID, Error: &jsonrpc.Error{Code: errcode.RPCInternal, Message: err.Error()}})
}

// PushTo makes every message go to push, on the goroutine that received
// it, instead of to Read. It must be called before the first Write.
func (c *httpUpstream) PushTo(push func(jsonrpc.Message)) { c.push = push }

// deliver hands a message to the session (see PushTo), or else to Read.
// The answer to initialize also tells the protocol version to send from
// then on.
func (c *httpUpstream) deliver(req *jsonrpc.Request, m jsonrpc.Message) {
	if r, ok := m.(*jsonrpc.Response); ok && req.Method == MethodInitialize && r.ID == req.ID && r.Error == nil {
		var res struct {
			ProtocolVersion string `json:"protocolVersion"`
		}
		if json.Unmarshal(r.Result, &res) == nil && res.ProtocolVersion != "" {
			c.mu.Lock()
			c.version = res.ProtocolVersion
			c.mu.Unlock()
		}
	}
	if c.push != nil {
		select {
		case <-c.done:
		default:
			c.push(m)
		}
		return
	}
	select {
	case c.incoming <- m:
	case <-c.done:
	}
}

// Close ends the session on the server with DELETE, unless there is none,
// then stops every request in flight.
func (c *httpUpstream) Close() error {
	var err error
	c.closeOnce.Do(func() {
		c.mu.Lock()
		sid, version, gone := c.sessionID, c.version, c.gone
		c.mu.Unlock()
		if sid != "" && !gone {
			ctx, cancel := context.WithTimeout(c.ctx, deleteTimeout)
			defer cancel()
			req, rerr := http.NewRequestWithContext(ctx, http.MethodDelete, c.url, nil)
			if rerr != nil {
				err = rerr
			} else {
				req.Header[SessionHeader] = []string{sid}
				if version != "" {
					req.Header[protocolVersionHeader] = []string{version}
				}
				if resp, derr := c.client.Do(req); derr != nil {
					err = fmt.Errorf("end upstream session: %w", derr)
				} else {
					resp.Body.Close()
				}
			}
		}
		c.cancel()
		close(c.done)
	})
	return err
}

// requestProtocolVersion is the protocol version a request names in its
// _meta, as clients of protocol 2026-07-28 do on every request.
func requestProtocolVersion(params json.RawMessage) string {
	if !bytes.Contains(params, []byte(metaProtocolVersion)) {
		return ""
	}
	var p struct {
		Meta map[string]any `json:"_meta"`
	}
	if json.Unmarshal(params, &p) != nil {
		return ""
	}
	v, _ := p.Meta[metaProtocolVersion].(string)
	return v
}

// requestTraceparent is the W3C traceparent in a request's _meta (the MCP
// convention), which an HTTP server's instrumentation reads from the
// header: both carry it. Anything but a traceparent's characters is left
// out.
func requestTraceparent(params json.RawMessage) string {
	if !bytes.Contains(params, []byte(`"traceparent"`)) {
		return ""
	}
	var p struct {
		Meta struct {
			TraceParent any `json:"traceparent"`
		} `json:"_meta"`
	}
	if json.Unmarshal(params, &p) != nil {
		return ""
	}
	tp, _ := p.Meta.TraceParent.(string)
	if len(tp) > 128 {
		return ""
	}
	for i := range len(tp) {
		if c := tp[i]; c != '-' && (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return ""
		}
	}
	return tp
}

// requestName is what the Mcp-Name header carries for methods that name
// something: the tool, the prompt, the resource.
func requestName(req *jsonrpc.Request) (string, bool) {
	var p struct {
		Name string `json:"name"`
		URI  string `json:"uri"`
	}
	switch req.Method {
	case MethodToolsCall, "prompts/get":
		if json.Unmarshal(req.Params, &p) == nil {
			return p.Name, true
		}
	case "resources/read":
		if json.Unmarshal(req.Params, &p) == nil {
			return p.URI, true
		}
	}
	return "", false
}

// MediaType is a Content-Type without its parameters.
func MediaType(ct string) string {
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	return strings.ToLower(strings.TrimSpace(ct))
}

// readLimited reads r whole, refusing more than max bytes.
func readLimited(r io.Reader, max int) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, int64(max)+1))
	if err != nil {
		return nil, err
	}
	if len(data) > max {
		return nil, fmt.Errorf("the message is longer than the limit of %d bytes", max)
	}
	return data, nil
}

// eventReaders are the buffers event streams are read through, reused
// because every call over HTTP may be answered with one.
var eventReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4096) }}

// ReadEvents reads server-sent events and calls fn with the data of each
// "message" event until fn returns false or the stream ends. Lines of one
// event's data are joined with newlines; an event over max bytes is an
// error.
func ReadEvents(r *bufio.Reader, max int, fn func(data []byte) bool) error {
	var (
		data    []byte
		hasData bool
		name    string
	)
	for {
		line, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// A long line: gather it whole.
			full := append([]byte(nil), line...)
			for errors.Is(err, bufio.ErrBufferFull) {
				if len(full) > max {
					return fmt.Errorf("an event is longer than the limit of %d bytes", max)
				}
				line, err = r.ReadSlice('\n')
				full = append(full, line...)
			}
			line = full
		}
		if err != nil && !(errors.Is(err, io.EOF) && len(line) > 0) {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("reading the upstream's event stream: %w", err)
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			if hasData && (name == "" || name == "message") && len(data) > 0 {
				if !fn(data) {
					return nil
				}
			}
			// Not data[:0]: what fn decoded keeps pointing into data.
			data, hasData, name = nil, false, ""
			continue
		}
		if line[0] == ':' {
			continue // a comment
		}
		field, value, _ := bytes.Cut(line, []byte{':'})
		value = bytes.TrimPrefix(value, []byte{' '})
		switch string(field) {
		case "data":
			if hasData {
				data = append(data, '\n')
			}
			data = append(data, value...)
			hasData = true
			if len(data) > max {
				return fmt.Errorf("an event is longer than the limit of %d bytes", max)
			}
		case "event":
			name = string(value)
		}
	}
}
