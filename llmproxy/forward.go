package llmproxy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/models"
)

// post decides, forwards and settles one model call.
func (p *proxy) post(w http.ResponseWriter, r *http.Request, d dialect, parse parser) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeError(w, d, &failure{code: codeMethod, msg: fmt.Sprintf("%s takes POST, not %s", r.URL.Path, r.Method)})
		return
	}
	agent, principal, err := p.identify(r)
	if err != nil {
		writeError(w, d, &failure{code: codeUnauthorized, msg: "use your agentgov agent token as the API key: " + err.Error()})
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, p.maxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, d, &failure{code: codeTooLarge, msg: fmt.Sprintf("request body is larger than %d bytes", p.maxBody)})
			return
		}
		writeError(w, d, badRequest("", "cannot read the request body: "+err.Error()))
		return
	}
	c, f := parse(body, p.defOut)
	if f != nil {
		writeError(w, d, f)
		return
	}
	m, err := p.cat.Resolve(c.model)
	if err != nil {
		writeError(w, d, &failure{code: codeModelDenied, param: "model", msg: fmt.Sprintf("model %q is not in the model catalogue, and unknown models are denied", c.model)})
		return
	}
	up, f := p.route(d, m)
	if f != nil {
		writeError(w, d, f)
		return
	}
	a := action.Action{
		Agent:       agent,
		Principal:   principal,
		Session:     r.Header.Get(HeaderSession),
		Point:       action.PreModelCall,
		Destination: up.host,
		Model:       c.model,
		Content:     c.content,
		Estimate: action.Estimate{
			Tokens:  c.inEst + c.outEst,
			CostUSD: usd(m.Cost(c.inEst, c.outEst)),
		},
		ApprovalID: r.Header.Get(HeaderApproval),
	}
	start := p.now()
	dec, err := p.d.Decide(r.Context(), a)
	if err != nil {
		p.log.Error("model call not decided", "model", c.model, "agent", agent.ID, "err", err)
		writeError(w, d, &failure{code: codeDecisionFailed, msg: "the call could not be decided, so it was not made: " + err.Error()})
		return
	}
	w.Header().Set(HeaderDecision, dec.ID.String())
	if dec.Effect != action.Allow {
		writeError(w, d, refusal(dec))
		return
	}
	s := &settlement{p: p, ctx: r.Context(), id: dec.ID, model: m, call: c, start: start}
	req, err := http.NewRequestWithContext(r.Context(), http.MethodPost, up.base+c.path, bytes.NewReader(c.body))
	if err != nil {
		s.settle("error", "cannot build the upstream request: "+err.Error(), nil)
		writeError(w, d, &failure{code: codeUnreachable, msg: "cannot build the upstream request"})
		return
	}
	upstreamHeaders(req.Header, r.Header, up)
	resp, err := p.client.Do(req)
	if err != nil {
		if r.Context().Err() != nil {
			s.settle("error", "caller went away before the upstream answered", nil)
			return
		}
		s.settle("error", "upstream unreachable: "+err.Error(), nil)
		writeError(w, d, &failure{code: codeUnreachable, msg: fmt.Sprintf("cannot reach the %s upstream (%s)", up.name, up.host)})
		return
	}
	defer resp.Body.Close()
	if c.stream && resp.StatusCode/100 == 2 && strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		p.relayStream(w, resp, d, s)
		return
	}
	p.relayWhole(w, resp, d, s)
}

// refusal turns a decision other than allow into the provider error the SDK
// should raise: 429 when a budget or rate limit refused (the caller may wait),
// 403 otherwise.
func refusal(dec action.Decision) *failure {
	reasons := strings.Join(dec.Reasons, "; ")
	if dec.Effect == action.RequireApproval {
		id := ""
		if dec.Approval != nil {
			id = dec.Approval.ID
		}
		msg := fmt.Sprintf("this call needs a human's approval (ticket %s); once it is approved, retry the same request with header %s: %s", id, HeaderApproval, id)
		if reasons != "" {
			msg += " (" + reasons + ")"
		}
		return &failure{code: codeApproval, msg: msg}
	}
	code := codePolicyDenied
	for _, s := range append(append([]string(nil), dec.Rules...), dec.Reasons...) {
		switch {
		case strings.HasPrefix(s, "budget "):
			code = codeBudget
		case strings.HasPrefix(s, "rate limit ") && code != codeBudget:
			code = codeRateLimited
		}
	}
	if reasons == "" {
		reasons = "no policy allows this call"
	}
	return &failure{code: code, msg: "denied by agentgov: " + reasons}
}

// route picks the upstream that serves m in dialect d.
func (p *proxy) route(d dialect, m models.Model) (*upstream, *failure) {
	name := "openai"
	switch {
	case d == anthropic && (m.Unknown || m.Provider == "anthropic"):
		name = "anthropic"
	case d == anthropic:
		return nil, badRequest("model", fmt.Sprintf("model %q is a %s model: call it through /llm/v1/chat/completions", m.Name, m.Provider))
	case m.Provider == "anthropic":
		return nil, badRequest("model", fmt.Sprintf("model %q is an Anthropic model: call it through /llm/anthropic/v1/messages", m.Name))
	case m.Provider == "google":
		name = "google"
	case m.Provider != "openai" && !m.Unknown:
		return nil, badRequest("model", fmt.Sprintf("model %q is served by %s, which this proxy has no upstream for", m.Name, m.Provider))
	}
	up := p.upstreams[name]
	if up.missing != "" {
		return nil, &failure{code: codeNoUpstream, msg: up.missing}
	}
	return up, nil
}

// forwarded lists the caller's headers that reach the upstream. Anything
// else, above all Authorization and x-api-key, stays behind.
var forwarded = []string{"Content-Type", "Accept", "Anthropic-Version", "Anthropic-Beta", "Openai-Beta", "Idempotency-Key"}

func upstreamHeaders(dst, src http.Header, up *upstream) {
	for _, k := range forwarded {
		if v := src.Values(k); len(v) > 0 {
			dst[k] = v
		}
	}
	if dst.Get("Content-Type") == "" {
		dst.Set("Content-Type", "application/json")
	}
	if up.name == "anthropic" {
		dst.Set("X-Api-Key", up.key)
		if dst.Get("Anthropic-Version") == "" {
			dst.Set("Anthropic-Version", "2023-06-01")
		}
		return
	}
	dst.Set("Authorization", "Bearer "+up.key)
}

// dropped are upstream response headers the caller must not get: hop-by-hop
// headers, lengths the proxy recomputes, and the upstream's cookies.
var dropped = map[string]bool{
	"Connection": true, "Keep-Alive": true, "Proxy-Authenticate": true, "Proxy-Connection": true,
	"Te": true, "Trailer": true, "Transfer-Encoding": true, "Upgrade": true,
	"Content-Length": true, "Content-Encoding": true, "Set-Cookie": true,
}

func copyResponseHeaders(dst, src http.Header) {
	for k, v := range src {
		if !dropped[k] {
			dst[k] = v
		}
	}
}

// relayWhole answers a non-streaming call. The outcome is recorded before the
// answer is written, so a caller that has its answer also sees its budget
// charged on the next call.
func (p *proxy) relayWhole(w http.ResponseWriter, resp *http.Response, d dialect, s *settlement) {
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		s.settle("error", "upstream answer cut short: "+err.Error(), nil)
		writeError(w, d, &failure{code: codeUnreachable, msg: "the upstream answer was cut short"})
		return
	}
	if resp.StatusCode/100 == 2 {
		var doc struct {
			Usage *usageFields `json:"usage"`
		}
		if json.Unmarshal(body, &doc) == nil && doc.Usage != nil {
			u := doc.Usage.tokens()
			s.settle("ok", "", &u)
		} else {
			s.settle("ok", "", nil)
		}
	} else {
		s.settleUpstreamError(resp.StatusCode)
	}
	copyResponseHeaders(w.Header(), resp.Header)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(resp.StatusCode)
	w.Write(body)
}

// relayStream passes an SSE stream through event by event, flushing each,
// reading usage on the way. The outcome is recorded before the stream's last
// event ([DONE], message_stop) is passed on.
func (p *proxy) relayStream(w http.ResponseWriter, resp *http.Response, d dialect, s *settlement) {
	copyResponseHeaders(w.Header(), resp.Header)
	w.WriteHeader(resp.StatusCode)
	rc := http.NewResponseController(w)
	rc.Flush()
	var (
		br       = bufio.NewReaderSize(resp.Body, 16<<10)
		ev       []byte
		u        tokens
		seen     bool
		upErr    string
		clientOK = true
	)
	emit := func(ev []byte) {
		if !clientOK {
			return
		}
		if _, err := w.Write(ev); err != nil {
			clientOK = false
			return
		}
		if err := rc.Flush(); err != nil {
			clientOK = false
		}
	}
	finish := func() {
		switch {
		case upErr != "":
			s.settle("error", upErr, usageIf(seen, u))
		case !clientOK:
			s.settle("error", "caller went away mid-stream", usageIf(seen, u))
		default:
			s.settle("ok", "", usageIf(seen, u))
		}
	}
	handle := func(ev []byte) {
		name, data := sseFields(ev)
		last := false
		switch d {
		case openAI:
			if bytes.Equal(data, []byte("[DONE]")) {
				last = true
				break
			}
			if hasObject(data, "usage") {
				var chunk struct {
					Choices []json.RawMessage `json:"choices"`
					Usage   *usageFields      `json:"usage"`
				}
				if json.Unmarshal(data, &chunk) == nil && chunk.Usage != nil {
					u, seen = chunk.Usage.tokens(), true
					if !s.call.clientUsage && len(chunk.Choices) == 0 {
						return // the usage chunk the proxy asked for, not the caller
					}
				}
			}
		case anthropic:
			switch name {
			case "message_start":
				var e struct {
					Message struct {
						Usage *usageFields `json:"usage"`
					} `json:"message"`
				}
				if json.Unmarshal(data, &e) == nil && e.Message.Usage != nil {
					u.merge(e.Message.Usage.tokens())
					seen = true
				}
			case "message_delta":
				var e struct {
					Usage *usageFields `json:"usage"`
				}
				if json.Unmarshal(data, &e) == nil && e.Usage != nil {
					u.merge(e.Usage.tokens())
					seen = true
				}
			case "message_stop":
				last = true
			case "error":
				upErr = "upstream error event: " + string(data)
			}
		}
		if last && !s.done {
			finish()
		}
		emit(ev)
	}
	for clientOK {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			ev = append(ev, line...)
			continue
		}
		ev = append(ev, line...)
		if len(line) > 0 && isBlankLine(line) {
			handle(ev)
			ev = ev[:0]
		}
		if err != nil {
			if len(bytes.TrimSpace(ev)) > 0 {
				handle(ev)
			}
			switch {
			case s.ctx.Err() != nil:
				clientOK = false // the caller went away, which cancelled the upstream read
			case !errors.Is(err, io.EOF) && upErr == "":
				upErr = "upstream stream broke: " + err.Error()
			}
			break
		}
	}
	if !s.done {
		finish()
	}
}

func usageIf(seen bool, u tokens) *tokens {
	if !seen {
		return nil
	}
	return &u
}

func isBlankLine(line []byte) bool {
	return len(line) == 1 || (len(line) == 2 && line[0] == '\r')
}

// sseFields returns an event's name and its data lines joined by newlines.
func sseFields(ev []byte) (name string, data []byte) {
	for len(ev) > 0 {
		var line []byte
		line, ev, _ = bytes.Cut(ev, []byte("\n"))
		line = bytes.TrimSuffix(line, []byte("\r"))
		if v, ok := bytes.CutPrefix(line, []byte("data:")); ok {
			v = bytes.TrimPrefix(v, []byte(" "))
			if data != nil {
				data = append(append(data, '\n'), v...)
			} else {
				data = v
			}
		} else if v, ok := bytes.CutPrefix(line, []byte("event:")); ok {
			name = string(bytes.TrimSpace(v))
		}
	}
	return name, data
}

// hasObject reports whether data holds the key "key" with an object value,
// without decoding it: most stream chunks carry no usage, and this keeps them
// from being parsed at all.
func hasObject(data []byte, key string) bool {
	k := `"` + key + `"`
	for {
		i := bytes.Index(data, []byte(k))
		if i < 0 {
			return false
		}
		data = bytes.TrimLeft(data[i+len(k):], " \t\r\n")
		if len(data) > 0 && data[0] == ':' {
			rest := bytes.TrimLeft(data[1:], " \t\r\n")
			if len(rest) > 0 && rest[0] == '{' {
				return true
			}
		}
	}
}

// usageFields is a provider's usage report; OpenAI and Anthropic name the
// counts differently and one struct reads both.
type usageFields struct {
	PromptTokens     int64 `json:"prompt_tokens"`
	CompletionTokens int64 `json:"completion_tokens"`
	InputTokens      int64 `json:"input_tokens"`
	OutputTokens     int64 `json:"output_tokens"`
	// Anthropic reports prompt caching apart from input_tokens.
	CacheCreation int64 `json:"cache_creation_input_tokens"`
	CacheRead     int64 `json:"cache_read_input_tokens"`
}

type tokens struct{ in, out int64 }

func (u *usageFields) tokens() tokens {
	return tokens{
		in:  max(0, u.PromptTokens) + max(0, u.InputTokens) + max(0, u.CacheCreation) + max(0, u.CacheRead),
		out: max(0, u.CompletionTokens) + max(0, u.OutputTokens),
	}
}

// merge folds in a later Anthropic stream report: counts there are
// cumulative, so the larger one is the latest.
func (t *tokens) merge(o tokens) {
	t.in = max(t.in, o.in)
	t.out = max(t.out, o.out)
}

// settlement records the outcome of one allowed call, exactly once.
type settlement struct {
	p     *proxy
	ctx   context.Context
	id    action.ID
	model models.Model
	call  *call
	start time.Time
	done  bool
}

// settle records the outcome. Without a usage report from the upstream the
// call is charged its estimate: a budget may be overcharged by a call whose
// upstream kept quiet, never undercharged.
func (s *settlement) settle(status, errText string, u *tokens) {
	t := tokens{s.call.inEst, s.call.outEst}
	if u != nil {
		t = *u
	} else if status == "ok" {
		errText = "the upstream reported no usage; charged the estimate"
	}
	s.record(action.Outcome{
		Status:       status,
		Tokens:       t.in + t.out,
		InputTokens:  t.in,
		OutputTokens: t.out,
		CostUSD:      usd(s.model.Cost(t.in, t.out)),
		Error:        errText,
	})
}

// settleUpstreamError records a call the upstream refused; providers do not
// bill refused calls, so neither does the budget.
func (s *settlement) settleUpstreamError(status int) {
	s.record(action.Outcome{Status: "error", Error: fmt.Sprintf("upstream answered %d", status)})
}

func (s *settlement) record(o action.Outcome) {
	if s.done {
		return
	}
	s.done = true
	o.LatencyMS = float64(s.p.now().Sub(s.start).Microseconds()) / 1000
	// The outcome is owed even when the caller has gone away.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), 10*time.Second)
	defer cancel()
	if err := s.p.d.Outcome(ctx, s.id, o); err != nil {
		s.p.log.Error("model call outcome not recorded", "decision", s.id.String(), "model", s.model.Name, "err", err)
	}
}

func usd(micro int64) float64 { return float64(micro) / 1e6 }
