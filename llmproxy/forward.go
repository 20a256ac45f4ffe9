package llmproxy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/calltrace"
	"github.com/agentgov/agentgov/errcode"
	"github.com/agentgov/agentgov/models"
	"github.com/agentgov/agentgov/provenance"
)

// post decides, forwards and settles one model call.
func (p *proxy) post(w http.ResponseWriter, r *http.Request, d dialect, parse parser) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeError(w, d, fail(errcode.MethodNotAllowed, fmt.Sprintf("%s takes POST, not %s", r.URL.Path, r.Method)))
		return
	}
	agent, principal, err := p.identify(r)
	if err != nil {
		writeError(w, d, identifyFailure(err))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, p.maxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		var netErr net.Error
		switch {
		case errors.As(err, &tooBig):
			writeError(w, d, fail(errcode.TooLarge, fmt.Sprintf("request body is larger than %d bytes", p.maxBody)))
		case errors.As(err, &netErr) && netErr.Timeout():
			writeError(w, d, fail(errcode.Timeout, "the request body did not arrive in time"))
		default:
			writeError(w, d, badRequest("", "cannot read the request body: "+err.Error()))
		}
		return
	}
	c, f := parse(body)
	if f != nil {
		writeError(w, d, f)
		return
	}
	m, err := p.cat.Resolve(c.model)
	if err != nil {
		p.refuseUndecided(w, r, d, agent, principal, c.model, &failure{Code: errcode.ModelNotAllowed, Param: "model", Message: fmt.Sprintf("model %q is not in the model catalogue, and unknown models are denied", c.model)})
		return
	}
	up, f := p.route(d, m)
	if f != nil {
		p.refuseUndecided(w, r, d, agent, principal, c.model, f)
		return
	}
	c.capOutput(m, p.defOut)
	conv := readConversation(c.obj)
	sessionID := r.Header.Get(HeaderSession)
	if sessionID == "" {
		sessionID = conv.session()
	}
	a := action.Action{
		Agent:       agent,
		Principal:   principal,
		Session:     sessionID,
		Point:       action.PreModelCall,
		Destination: up.host,
		Model:       c.model,
		Content:     c.content,
		Estimate: action.Estimate{
			Tokens:  satAdd(c.inEst, c.outEst()),
			CostUSD: usd(m.Cost(c.inEst, c.outEst())),
		},
		ApprovalID: r.Header.Get(HeaderApproval),
	}
	start := p.now()
	ctx := provenance.WithSegments(action.WithEnforcer(r.Context(), "model_proxy"), conv.segments)
	var span calltrace.Span
	if p.tracer != nil {
		ctx, span = p.startSpan(ctx, r, c, up)
	}
	dec, err := p.d.Decide(ctx, a)
	if err != nil {
		endRefused(span, errcode.DecisionFailed, err.Error(), dec)
		p.log.Error("model call not decided", "model", c.model, "agent", agent.ID, "err", err)
		writeError(w, d, fail(errcode.DecisionFailed, "the call could not be decided, so it was not made: "+err.Error()))
		return
	}
	w.Header().Set(HeaderDecision, dec.ID.String())
	if dec.Effect != action.Allow {
		f := refusal(dec, c, m)
		endRefused(span, f.Code, f.Message, dec)
		writeError(w, d, f)
		return
	}
	s := &settlement{p: p, ctx: r.Context(), id: dec.ID, model: m, call: c, start: start, agent: agent.ID, provider: up.name, span: span}
	if p.chaos != nil && p.injectFault(w, r, d, up, s, &a, dec) {
		return
	}
	req, err := http.NewRequestWithContext(r.Context(), http.MethodPost, up.base+c.path, bytes.NewReader(c.body()))
	if err != nil {
		s.settle("error", "cannot build the upstream request: "+err.Error(), nil, "error")
		writeError(w, d, fail(errcode.UpstreamUnreachable, "cannot build the upstream request"))
		return
	}
	upstreamHeaders(req.Header, r.Header, up)
	if span != nil {
		req.Header.Set("Traceparent", span.TraceParent())
	}
	resp, err := p.client.Do(req)
	if err != nil {
		if r.Context().Err() != nil {
			s.settle("error", "caller went away before the upstream answered", nil, "cancelled")
			return
		}
		s.settle("error", "upstream unreachable: "+err.Error(), nil, "unreachable")
		writeError(w, d, fail(errcode.UpstreamUnreachable, fmt.Sprintf("cannot reach the %s upstream (%s)", up.name, up.host)))
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
// 403 otherwise. A budget refusal says what the call would have reserved and
// why, so that the caller can ask for less.
func refusal(dec action.Decision, c *call, m models.Model) *failure {
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
		return fail(errcode.ApprovalRequired, msg)
	}
	code := dec.RefusalCode()
	if reasons == "" {
		reasons = "no policy allows this call"
	}
	msg := "denied by agentgov: " + reasons
	if code == errcode.BudgetExceeded {
		msg += "; " + c.reservation(m)
	}
	return fail(code, msg)
}

// reservation explains what a call reserves: its estimated input and the
// output it may be billed for.
func (c *call) reservation(m models.Model) string {
	cost := strconv.FormatFloat(usd(m.Cost(c.inEst, c.outEst())), 'f', -1, 64)
	if c.embedding {
		return fmt.Sprintf("the call reserved $%s for %d input tokens (estimated from the request's size)", cost, c.inEst)
	}
	out := fmt.Sprintf("%d output tokens", c.outEst())
	if c.answers > 1 {
		out = fmt.Sprintf("%d output tokens (n=%d answers of %d)", c.outEst(), c.answers, c.outCap)
	}
	msg := fmt.Sprintf("the call reserved $%s for %s (%s) and %d input tokens (estimated from the request's size)", cost, out, c.capBy, c.inEst)
	if c.callerCap {
		return msg + "; lower " + strings.SplitN(c.capBy, " ", 2)[0] + " to reserve less"
	}
	return msg + "; set max_tokens to reserve less"
}

// route picks the upstream that serves m in dialect d.
func (p *proxy) route(d dialect, m models.Model) (*upstream, *failure) {
	name := "openai"
	switch {
	case d == anthropic && (m.Unknown || m.Provider == "anthropic"):
		name = "anthropic"
	case d == anthropic:
		return nil, badRequest("model", fmt.Sprintf("model %q is served by %s: call it through /llm/v1/chat/completions", m.Name, m.Provider))
	case m.Provider == "anthropic":
		return nil, badRequest("model", fmt.Sprintf("model %q is an Anthropic model: call it through /llm/anthropic/v1/messages", m.Name))
	case m.Provider == "google":
		name = "google"
	case m.Provider != "openai" && !m.Unknown:
		return nil, badRequest("model", fmt.Sprintf("model %q is served by %s, which this proxy has no upstream for", m.Name, m.Provider))
	}
	up := p.upstreams[name]
	if up.missing != "" {
		return nil, fail(errcode.UpstreamUnconfigured, up.missing)
	}
	return up, nil
}

// forwarded lists the caller's headers that reach the upstream. Anything
// else, above all Authorization and x-api-key, stays behind.
// Content-Type is not among them: the body is the proxy's JSON, and a
// caller's type could have the provider read it as something else.
var forwarded = []string{"Accept", "Anthropic-Version", "Anthropic-Beta", "Openai-Beta", "Idempotency-Key", "Traceparent", "Tracestate"}

func upstreamHeaders(dst, src http.Header, up *upstream) {
	for _, k := range forwarded {
		if v := src.Values(k); len(v) > 0 {
			dst[k] = v
		}
	}
	dst.Set("Content-Type", "application/json")
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

// copyResponseHeaders passes on the upstream's headers, except the dropped
// ones and agentgov's own (X-Agentgov-*), which only the proxy sets: an
// upstream must not name another decision or pose as a refusal.
func copyResponseHeaders(dst, src http.Header) {
	for k, v := range src {
		if !dropped[k] && !strings.HasPrefix(http.CanonicalHeaderKey(k), "X-Agentgov-") {
			dst[k] = v
		}
	}
}

// relayWhole answers a non-streaming call. The outcome is recorded before the
// answer is written, so a caller that has its answer also sees its budget
// charged on the next call.
func (p *proxy) relayWhole(w http.ResponseWriter, resp *http.Response, d dialect, s *settlement) {
	body, err := io.ReadAll(io.LimitReader(resp.Body, int64(p.maxAnswer)+1))
	if err != nil {
		s.settle("error", "upstream answer cut short: "+err.Error(), nil, "cut_short")
		writeError(w, d, fail(errcode.UpstreamUnreachable, "the upstream answer was cut short"))
		return
	}
	if len(body) > p.maxAnswer {
		// Charged the estimate: the provider may well bill what it wrote.
		s.settle("error", fmt.Sprintf("upstream answer larger than %d bytes, not relayed", p.maxAnswer), nil, "too_large")
		writeError(w, d, fail(errcode.UpstreamUnreachable, fmt.Sprintf("the upstream answer is larger than %d bytes, the most the proxy relays", p.maxAnswer)))
		return
	}
	if resp.StatusCode/100 == 2 {
		var doc struct {
			Usage *usageFields `json:"usage"`
		}
		if s.span != nil {
			s.respModel = responseModel(body, false)
		}
		if json.Unmarshal(body, &doc) == nil && doc.Usage != nil {
			u := doc.Usage.tokens()
			s.settle("ok", "", &u, "")
		} else {
			s.settle("ok", "", nil, "")
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
		// final is whether the report read is the stream's last word on
		// usage (OpenAI's usage chunk, Anthropic's message_delta), ended
		// whether the stream's last event arrived.
		final, ended bool
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
		if !ended && !final && upErr == "" && clientOK {
			upErr = "upstream stream ended before its last event"
		}
		charged := usageIf(seen, u)
		if seen && !ended && !final {
			// A report from the middle of a stream (message_start's one
			// output token, a running count) is not what the provider
			// bills for what it went on writing: charge at least the
			// reservation, as a stream without any report is.
			charged = &tokens{max(u.in, s.call.inEst), max(u.out, s.call.outEst())}
		}
		switch {
		case upErr != "":
			s.settle("error", upErr, charged, "stream_error")
		case !clientOK:
			s.settle("error", "caller went away mid-stream", charged, "cancelled")
		default:
			s.settle("ok", "", charged, "")
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
					final = len(chunk.Choices) == 0
					if s.span != nil {
						s.respModel = responseModel(data, false)
					}
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
				if s.span != nil {
					s.respModel = responseModel(data, true)
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
					seen, final = true, true
				}
			case "message_stop":
				last = true
			case "error":
				upErr = "upstream error event: " + string(data)
			}
		}
		if last && !s.done {
			ended = upErr == ""
			finish()
		}
		emit(ev)
	}
	for clientOK {
		line, err := br.ReadSlice('\n')
		if len(ev)+len(line) > p.maxEvent {
			// An event this large is no model's: stop reading rather than
			// hold it all in memory.
			if upErr == "" {
				upErr = fmt.Sprintf("upstream stream event larger than %d bytes, stream cut", p.maxEvent)
			}
			break
		}
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

// Bounds on what an upstream may send: a whole answer (the largest real
// ones are embeddings of many inputs, a few tens of MiB) and one event of a
// stream (a chunk of a few tokens, or a whole tool call).
const (
	maxAnswerBytes = 64 << 20
	maxEventBytes  = 16 << 20
)

// usageFields is a provider's usage report; OpenAI and Anthropic name the
// counts differently and one struct reads both.
type usageFields struct {
	PromptTokens     int64 `json:"prompt_tokens"`
	CompletionTokens int64 `json:"completion_tokens"`
	// TotalTokens is OpenAI's sum. Some OpenAI-compatible providers
	// (Gemini's) leave hidden reasoning out of completion_tokens but count
	// it here, and bill it as output.
	TotalTokens  int64 `json:"total_tokens"`
	InputTokens  int64 `json:"input_tokens"`
	OutputTokens int64 `json:"output_tokens"`
	// Anthropic reports prompt caching apart from input_tokens.
	CacheCreation int64 `json:"cache_creation_input_tokens"`
	CacheRead     int64 `json:"cache_read_input_tokens"`
}

type tokens struct{ in, out int64 }

// tokens sums a report. The sums saturate: a hostile upstream's huge counts
// must charge the most, never wrap around to an invalid negative outcome
// that is not recorded at all.
func (u *usageFields) tokens() tokens {
	t := tokens{
		in:  satAdd(satAdd(max(0, u.PromptTokens), max(0, u.InputTokens)), satAdd(max(0, u.CacheCreation), max(0, u.CacheRead))),
		out: satAdd(max(0, u.CompletionTokens), max(0, u.OutputTokens)),
	}
	// Whatever the total holds beyond the prompt was written, so billed.
	if u.TotalTokens > t.in {
		t.out = max(t.out, u.TotalTokens-t.in)
	}
	return t
}

// merge folds in a later Anthropic stream report: counts there are
// cumulative, so the larger one is the latest.
func (t *tokens) merge(o tokens) {
	t.in = max(t.in, o.in)
	t.out = max(t.out, o.out)
}

// settlement records the outcome of one allowed call, exactly once.
type settlement struct {
	p        *proxy
	ctx      context.Context
	id       action.ID
	model    models.Model
	call     *call
	start    time.Time
	agent    string
	provider string
	done     bool
	// span is the call's span, when traced; respModel and reported are
	// what it is ended with.
	span      calltrace.Span
	respModel string
	reported  bool
}

// settle records the outcome. Without a usage report from the upstream the
// call is charged its estimate: a budget may be overcharged by a call whose
// upstream kept quiet, never undercharged. failure classifies what went
// wrong upstream, for metrics ("" when nothing did).
func (s *settlement) settle(status, errText string, u *tokens, failure string) {
	t := tokens{s.call.inEst, s.call.outEst()}
	if u != nil {
		t, s.reported = *u, true
	} else if status == "ok" {
		errText = "the upstream reported no usage; charged the estimate"
	}
	s.record(action.Outcome{
		Status:       status,
		Tokens:       satAdd(t.in, t.out),
		InputTokens:  t.in,
		OutputTokens: t.out,
		CostUSD:      usd(s.model.Cost(t.in, t.out)),
		Error:        errText,
	}, failure)
}

// settleUpstreamError records a call the upstream refused; providers do not
// bill refused calls, so neither does the budget.
func (s *settlement) settleUpstreamError(status int) {
	s.record(action.Outcome{Status: "error", Error: fmt.Sprintf("upstream answered %d", status)}, fmt.Sprintf("http_%dxx", status/100))
}

func (s *settlement) record(o action.Outcome, failure string) {
	if s.done {
		return
	}
	s.done = true
	took := s.p.now().Sub(s.start)
	o.LatencyMS = float64(took.Microseconds()) / 1000
	if obs := s.p.obs; obs != nil {
		obs.UpstreamCall("model", s.provider, max(took, 0), failure)
		obs.ModelUsage(s.model.Name, s.agent, o.InputTokens, o.OutputTokens, o.CostUSD)
	}
	if s.span != nil {
		s.endSpan(o, failure)
	}
	// The outcome is owed even when the caller has gone away.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), 10*time.Second)
	defer cancel()
	if err := s.p.d.Outcome(ctx, s.id, o); err != nil {
		s.p.log.Error("model call outcome not recorded", "decision", s.id.String(), "model", s.model.Name, "err", err)
	}
}

func usd(micro int64) float64 { return float64(micro) / 1e6 }
