// Package client is the Go client of agentgov's HTTP API (DESIGN §5). Agents
// written in Go ask it for decisions and report outcomes; operators' tools
// (the agentgov CLI among them) use it for approvals, kill switches, budgets,
// sessions, the audit log and policies. It speaks only HTTP and JSON, so what
// it does any other language can do with the same requests.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/agentgov/agentgov/errcode"
)

// DefaultMaxResponseBytes bounds how much of an answer is read unless
// WithMaxResponseBytes says otherwise. The largest legitimate answers are
// pages of audit entries; anything bigger is a misbehaving server, not data.
const DefaultMaxResponseBytes = 64 << 20

// sharedHTTP is used by every Client that is not given its own. One pool of
// keep-alive connections serves all of a process's clients, and it holds
// enough idle connections per host that 50 agents deciding at once reuse
// their connections instead of opening new ones per request.
var sharedHTTP = &http.Client{Transport: NewTransport(128)}

// NewTransport returns a transport with the settings the client relies on:
// keep-alive, bounded dial and handshake times, and up to idlePerHost idle
// connections kept per server. Callers that want their own connection pool
// (one connection per simulated agent, say) pass an http.Client built on it
// to WithHTTPClient.
func NewTransport(idlePerHost int) *http.Transport {
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          2 * idlePerHost,
		MaxIdleConnsPerHost:   idlePerHost,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

// Client talks to one agentgov server with one token. It is safe for
// concurrent use. Timeouts come from the context of each call.
type Client struct {
	base      string // scheme://host[/prefix], without a trailing slash
	token     string
	hc        *http.Client
	userAgent string
	maxBody   int64
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient makes the Client send its requests through hc instead of
// the shared pool.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) {
		if hc != nil {
			c.hc = hc
		}
	}
}

// WithMaxResponseBytes bounds the size of an answer the client reads.
func WithMaxResponseBytes(n int64) Option {
	return func(c *Client) {
		if n > 0 {
			c.maxBody = n
		}
	}
}

// WithUserAgent sets the User-Agent of every request, so that the server's
// logs can tell callers apart.
func WithUserAgent(ua string) Option { return func(c *Client) { c.userAgent = ua } }

// New returns a Client of the server at baseURL (such as
// "http://127.0.0.1:8420") that authenticates with token. An empty token
// sends no Authorization header; the server then answers 401 on every
// endpoint but the health checks.
func New(baseURL, token string, opts ...Option) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("client: %q is not an http(s) URL", baseURL)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("client: %q: the server URL takes no query or fragment", baseURL)
	}
	if strings.ContainsAny(token, "\r\n") {
		return nil, errors.New("client: the token contains a line break")
	}
	c := &Client{base: u.String(), token: strings.TrimSpace(token), hc: sharedHTTP, userAgent: "agentgov-client", maxBody: DefaultMaxResponseBytes}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// BaseURL is the server the client talks to, as given to New without a
// trailing slash.
func (c *Client) BaseURL() string { return c.base }

// Error is an error answer of the server: its HTTP status and the stable
// code and message of the body {"error": {"code": ..., "message": ...}}.
// Callers branch on Code (or Status) with errors.As.
type Error struct {
	Status  int
	Code    string
	Message string
}

// Error is the server's message, which names what was wrong.
func (e *Error) Error() string {
	if e.Message != "" {
		return e.Message
	}
	return fmt.Sprintf("server answered %d %s", e.Status, http.StatusText(e.Status))
}

// Error codes the server answers with; package errcode is the table of
// every code and the status each is answered with (docs/api.md lists them).
const (
	CodeBadRequest       = string(errcode.BadRequest)
	CodeUnauthorized     = string(errcode.Unauthorized)
	CodeForbidden        = string(errcode.Forbidden)
	CodeNotFound         = string(errcode.NotFound)
	CodeMethodNotAllowed = string(errcode.MethodNotAllowed)
	CodeTimeout          = string(errcode.Timeout)
	CodeConflict         = string(errcode.Conflict)
	CodeTooLarge         = string(errcode.TooLarge)
	CodeUnprocessable    = string(errcode.Unprocessable)
	CodeUnavailable      = string(errcode.Unavailable)
	CodeInternal         = string(errcode.Internal)
)

// Retryable says whether the request may succeed if sent again unchanged:
// the server, not the request, failed (a store or the audit log could not
// be written). A refusal will be the same a second later.
func (e *Error) Retryable() bool { return errcode.Code(e.Code).Retryable() }

// IsCode reports whether err is a server answer with the given code.
func IsCode(err error, code string) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}

// request is one call: what to send and where to decode the answer.
type request struct {
	method string
	path   string // already escaped, starting with "/"
	query  url.Values
	body   any // marshalled to JSON when not nil
	header http.Header
	out    any // decoded from a 2xx answer when not nil
}

// do sends r and decodes a 2xx answer into r.out. Any other answer becomes
// an *Error; a failure to reach the server says so and wraps the cause.
func (c *Client) do(ctx context.Context, r request) error {
	target := c.base + r.path
	if len(r.query) > 0 {
		target += "?" + r.query.Encode()
	}
	var body io.Reader
	if r.body != nil {
		b, err := json.Marshal(r.body)
		if err != nil {
			return fmt.Errorf("encode %s %s: %w", r.method, r.path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, target, body)
	if err != nil {
		return fmt.Errorf("build %s %s: %w", r.method, r.path, err)
	}
	for k, vs := range r.header {
		req.Header[k] = vs
	}
	if r.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.userAgent != "" {
		req.Header.Set("User-Agent", c.userAgent)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return fmt.Errorf("%s %s: %w", r.method, r.path, ctxErr)
		}
		return fmt.Errorf("cannot reach the server at %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, c.maxBody+1))
	if err != nil {
		return fmt.Errorf("read answer to %s %s: %w", r.method, r.path, err)
	}
	if int64(len(raw)) > c.maxBody {
		return fmt.Errorf("answer to %s %s is larger than %d bytes", r.method, r.path, c.maxBody)
	}
	if resp.StatusCode/100 != 2 {
		return errorOf(resp.StatusCode, resp.Header, raw)
	}
	if r.out == nil || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	if err := json.Unmarshal(raw, r.out); err != nil {
		return fmt.Errorf("decode answer to %s %s: %w", r.method, r.path, err)
	}
	return nil
}

// errorOf reads an error answer. Its code is the body's, else the one the
// error-code header carries, else the most general code of its status; a
// body that is not the API's error shape (a proxy's HTML page, say) is
// kept, shortened, as the message.
func errorOf(status int, h http.Header, raw []byte) *Error {
	var b struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	code := h.Get(errcode.Header)
	if code == "" {
		code = string(errcode.FromStatus(status))
	}
	if json.Unmarshal(raw, &b) == nil && (b.Error.Message != "" || b.Error.Code != "") {
		if b.Error.Code != "" {
			code = b.Error.Code
		}
		return &Error{Status: status, Code: code, Message: b.Error.Message}
	}
	text := strings.TrimSpace(string(raw))
	if text == "" {
		text = http.StatusText(status)
	}
	if len(text) > 200 {
		text = text[:197] + "..."
	}
	return &Error{Status: status, Code: code, Message: fmt.Sprintf("server answered %d: %s", status, text)}
}

// segment escapes one path segment, refusing an empty one: an empty id
// would address another endpoint ("/v1/kill/" is not a switch).
func segment(what, id string) (string, error) {
	if id == "" {
		return "", fmt.Errorf("client: empty %s", what)
	}
	return url.PathEscape(id), nil
}

// Health asks GET /healthz whether the server is up. It needs no token.
func (c *Client) Health(ctx context.Context) error {
	return c.do(ctx, request{method: http.MethodGet, path: "/healthz"})
}

// Ready asks GET /readyz whether the server can decide (its audit log
// answers), and returns the digest of the policy set in force.
func (c *Client) Ready(ctx context.Context) (policyDigest string, err error) {
	var out struct {
		Policy string `json:"policy"`
	}
	err = c.do(ctx, request{method: http.MethodGet, path: "/readyz", out: &out})
	return out.Policy, err
}

// GetJSON reads any GET endpoint of the API into out, for endpoints this
// package has no method for (newer or optional ones). A 404 is an *Error
// with Code "not_found", so callers can tell an endpoint this server lacks.
func (c *Client) GetJSON(ctx context.Context, path string, q url.Values, out any) error {
	if !strings.HasPrefix(path, "/v1/") || strings.Contains(path, "..") {
		return fmt.Errorf("client: %q is not an API path", path)
	}
	return c.do(ctx, request{method: http.MethodGet, path: path, query: q, out: out})
}
