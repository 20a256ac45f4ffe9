package a2agateway

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"mime"
	"net/http"
	"net/url"
	"strings"

	"github.com/a2aproject/a2a-go/a2a"
)

// upstream speaks A2A's JSON-RPC binding to the agent behind the gateway.
// It is the gateway's own rather than a2aclient's so that every answer is
// bounded in size (a whole answer, and each event of a stream), an
// upstream's JSON-RPC error keeps its code, and nothing is sent anywhere
// but the configured URL.
type upstream struct {
	url      string
	base     *url.URL
	client   *http.Client
	token    string
	maxReply int64
}

// rpcError is a JSON-RPC error object, the upstream's or the gateway's.
type rpcError struct {
	Code    int64          `json:"code"`
	Message string         `json:"message"`
	Data    map[string]any `json:"data,omitempty"`
}

func (e *rpcError) Error() string { return fmt.Sprintf("JSON-RPC error %d: %s", e.Code, e.Message) }

// errTooLarge is an upstream answer, or one event of a stream, past the
// gateway's bound.
var errTooLarge = errors.New("too large")

type rpcResponse struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      any             `json:"id"`
	Result  json.RawMessage `json:"result,omitempty"`
	Error   *rpcError       `json:"error,omitempty"`
}

func (u *upstream) request(ctx context.Context, method string, params any, stream bool) (*http.Response, string, error) {
	id := "agentgov-" + rand.Text()
	body, err := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": id, "method": method, "params": params})
	if err != nil {
		return nil, "", fmt.Errorf("encode request: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.url, bytes.NewReader(body))
	if err != nil {
		return nil, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	if stream {
		req.Header.Set("Accept", "text/event-stream")
	} else {
		req.Header.Set("Accept", "application/json")
	}
	if u.token != "" {
		req.Header.Set("Authorization", "Bearer "+u.token)
	}
	if tp, ok := ctx.Value(upstreamTraceKey{}).(string); ok {
		req.Header.Set("Traceparent", tp)
	}
	resp, err := u.client.Do(req)
	if err != nil {
		return nil, "", err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, "", fmt.Errorf("the upstream answered HTTP %d", resp.StatusCode)
	}
	return resp, id, nil
}

// call sends one request and returns its result, or the upstream's
// JSON-RPC error as a *rpcError.
func (u *upstream) call(ctx context.Context, method string, params any) (json.RawMessage, error) {
	resp, _, err := u.request(ctx, method, params, false)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, u.maxReply+1))
	if err != nil {
		return nil, fmt.Errorf("read the answer: %w", err)
	}
	if int64(len(raw)) > u.maxReply {
		return nil, fmt.Errorf("the upstream's answer is over %d bytes: %w", u.maxReply, errTooLarge)
	}
	return decodeResponse(raw)
}

func decodeResponse(raw []byte) (json.RawMessage, error) {
	var r rpcResponse
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("the upstream's answer is not JSON-RPC: %w", err)
	}
	if r.Error != nil {
		return nil, r.Error
	}
	if len(r.Result) == 0 {
		return nil, errors.New("the upstream's answer has neither a result nor an error")
	}
	return r.Result, nil
}

// stream sends a streaming request and yields the result of each event.
// The sequence ends with an error when the stream breaks or an event is
// malformed or too large; it simply ends when the upstream closes it.
func (u *upstream) stream(ctx context.Context, method string, params any) iter.Seq2[json.RawMessage, error] {
	return func(yield func(json.RawMessage, error) bool) {
		resp, _, err := u.request(ctx, method, params, true)
		if err != nil {
			yield(nil, err)
			return
		}
		defer resp.Body.Close()
		mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
		if mt != "text/event-stream" {
			// An upstream may answer a stream request with one JSON-RPC
			// answer (an error, most often).
			raw, err := io.ReadAll(io.LimitReader(resp.Body, u.maxReply+1))
			if err == nil && int64(len(raw)) > u.maxReply {
				err = fmt.Errorf("the upstream's answer is over %d bytes: %w", u.maxReply, errTooLarge)
			}
			if err != nil {
				yield(nil, err)
				return
			}
			res, err := decodeResponse(raw)
			yield(res, err)
			return
		}
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 0, 64<<10), int(u.maxReply)+16)
		var data bytes.Buffer
		flush := func() bool {
			if data.Len() == 0 {
				return true
			}
			raw := bytes.Clone(data.Bytes())
			data.Reset()
			res, err := decodeResponse(raw)
			if !yield(res, err) || err != nil {
				return false
			}
			return true
		}
		for sc.Scan() {
			line := sc.Bytes()
			if len(line) == 0 {
				if !flush() {
					return
				}
				continue
			}
			if v, ok := bytes.CutPrefix(line, []byte("data:")); ok {
				v = bytes.TrimPrefix(v, []byte(" "))
				if int64(data.Len()+len(v)) > u.maxReply {
					yield(nil, fmt.Errorf("an event of the upstream's stream is over %d bytes: %w", u.maxReply, errTooLarge))
					return
				}
				if data.Len() > 0 {
					data.WriteByte('\n')
				}
				data.Write(v)
			}
		}
		if err := sc.Err(); err != nil {
			if errors.Is(err, bufio.ErrTooLong) {
				err = fmt.Errorf("an event of the upstream's stream is over %d bytes: %w", u.maxReply, errTooLarge)
			}
			yield(nil, err)
			return
		}
		flush()
	}
}

// card fetches the upstream's agent card.
func (u *upstream) card(ctx context.Context) (*a2a.AgentCard, error) {
	cardURL := strings.TrimSuffix(u.url, "/") + "/.well-known/agent-card.json"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, cardURL, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	if u.token != "" {
		req.Header.Set("Authorization", "Bearer "+u.token)
	}
	resp, err := u.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("the upstream answered HTTP %d for its card", resp.StatusCode)
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxCardBytes+1))
	if err != nil {
		return nil, err
	}
	if len(raw) > maxCardBytes {
		return nil, fmt.Errorf("the upstream's card is over %d bytes: %w", maxCardBytes, errTooLarge)
	}
	var c a2a.AgentCard
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, fmt.Errorf("the upstream's card is malformed: %w", err)
	}
	return &c, nil
}
