package mcp

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/calltrace"
	"github.com/agentgov/agentgov/detect"
)

// MetaApprovalID is the _meta key of a tools/call that retries a call under
// an approved ticket. A retry of the very same call in the same session
// needs no key: the gateway remembers the ticket it handed out (see
// Config.Tickets).
const MetaApprovalID = "agentgov/approval_id"

// toolResult is the CallToolResult the gateway writes itself.
type toolResult struct {
	Content []textContent  `json:"content"`
	IsError bool           `json:"isError,omitempty"`
	Meta    map[string]any `json:"_meta,omitempty"`
}

type textContent struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

func errorResult(text string, meta map[string]any) toolResult {
	return toolResult{Content: []textContent{{Type: "text", Text: text}}, IsError: true, Meta: meta}
}

// inlineLimit is the size of params or result up to which a call is
// decided, or its result checked, on the goroutine that read it. Handing
// each call to a goroutine of its own cost a scheduler hand-off on every
// call (tens of µs on a busy machine), more than the work itself; large
// messages, whose scanning takes longer, still get their own goroutine so
// they do not hold up the messages behind them.
const inlineLimit = 64 << 10

// handleCall decides one governed request (a tools/call, a resource read
// or subscription, a prompt) and forwards it, or answers it with the
// reason it was not. inline says it runs on the session's read loop (see
// fromClient), which must not wait on the client: asking the user for an
// approval, and the audit append (which group-commits concurrent appends),
// then continue on a goroutine of their own.
func (s *session) handleCall(req *jsonrpc.Request, inline bool) {
	p, err := parseGoverned(req)
	if err != nil {
		s.takeInflight(req.ID)
		s.replyError(req.ID, jsonrpc.CodeInvalidParams, err.Error())
		return
	}
	a := action.Action{
		Agent: s.who.Agent, Principal: s.who.Principal, Session: s.id,
		Point: action.PreToolCall,
		Tool:  action.Tool{Server: s.g.cfg.Server, Name: p.tool},
		Args:  p.args,
	}
	// Arguments that cannot be canonicalised leave the digest empty; the
	// audit append of the same arguments then fails and the call is denied.
	digest, _, _ := action.ArgsDigest(p.args)
	tk := ticketUse{key: p.tool + " " + digest}
	if p.hasApprovalID {
		a.ApprovalID = p.approvalID
	} else {
		a.ApprovalID = s.ticketFor(tk.key)
		tk.remembered = a.ApprovalID != ""
	}
	rec := callRecord{
		Server: s.g.cfg.Server, Tool: p.tool, Session: s.id,
		Agent: s.who.Agent, Principal: s.who.Principal, ArgsSHA256: digest,
	}

	ctx := s.ctx
	if s.g.cfg.Tracer != nil {
		ctx = s.governedSpan(req, p)
	}
	var d action.Decision
	decide := true
	refused := "" // why the gateway refused the call itself, for metrics
	if reason, stopped := s.g.stopped(s.who, s.id); stopped {
		d, decide, refused = denial(reason), false, "kill_switch"
	} else if p.method == methodToolsCall {
		st, err := s.tool(s.ctx, p.tool)
		switch {
		case err != nil:
			d, decide, refused = denial(fmt.Sprintf("gateway: %v", err)), false, "tools_unavailable"
		case st == nil:
			d, decide, refused = denial(fmt.Sprintf("gateway: server %q offers no tool %q", s.g.cfg.Server, p.tool)), false, "unknown_tool"
		case st.quarantine != "":
			d, decide, refused = denial(fmt.Sprintf("gateway: tool %s/%s is quarantined: %s", s.g.cfg.Server, p.tool, st.quarantine)), false, "quarantined"
		default:
			a.Tool.Annotations = st.annotations
		}
	}
	if decide {
		d, err = s.g.cfg.Decider.Decide(ctx, a)
		if err != nil {
			d, refused = denial(fmt.Sprintf("gateway: the decision failed, so the call is denied: %v", err)), "decision_failed"
		}
		if d.Effect == action.RequireApproval && s.mayElicit(d) {
			// The person at the client is asked; if they do not approve,
			// the next try asks them again, rather than wait on a ticket
			// nobody else can approve here.
			tk.asked = true
			if inline {
				s.goHeld(func() { s.completeCall(req, p, a, s.approveByElicitation(a, d), rec, tk, digest, true) })
				return
			}
			d = s.approveByElicitation(a, d)
		}
	}
	if refused != "" {
		s.g.refused(refused)
	}
	// A quarantined tool's caller is reported once the refusal is
	// recorded: what moves a trust score follows the entry that shows why.
	after := func() {}
	if refused == "quarantined" {
		after = func() { s.quarantinedCall(p.tool) }
	}
	if inline && s.g.cfg.Recorder != nil {
		s.goHeld(func() { s.completeCall(req, p, a, d, rec, tk, digest, true); after() })
		return
	}
	s.completeCall(req, p, a, d, rec, tk, digest, !inline)
	after()
}

// quarantinedCall tells a Decider that wants to know (QuarantineObserver)
// that the session's agent called a quarantined tool.
func (s *session) quarantinedCall(tool string) {
	if q, ok := s.g.cfg.Decider.(QuarantineObserver); ok {
		q.QuarantinedCall(s.who.Agent.ID, s.g.cfg.Server, tool)
	}
}

// ticketUse is how a call stands with the tickets the gateway remembers:
// its key (tool and argument digest), whether it was decided under the
// ticket remembered for it, and whether the person at the client was
// asked to approve it.
type ticketUse struct {
	key               string
	remembered, asked bool
}

// completeCall audits a decided call and forwards it or answers it. own is
// as for fromClientMessage.
func (s *session) completeCall(req *jsonrpc.Request, p governedRequest, a action.Action, d action.Decision, rec callRecord, tk ticketUse, digest string, own bool) {
	rec.Effect, rec.Reasons = d.Effect, d.Reasons
	if !d.ID.IsZero() {
		rec.Decision = d.ID.String()
	}
	if d.Approval != nil {
		rec.Approval = d.Approval.ID
	}
	// A decision the Decider wrote to the audit log already holds the call
	// (tool, masked arguments, their digest, session, agent); a second,
	// durable record of it would cost the call another disk sync. The
	// gateway writes its own only for calls nothing else recorded: those
	// it refused itself, or decided with a Decider that keeps no log.
	if d.AuditIndex == nil {
		if err := s.g.record(s.ctx, "mcp.call", rec); err != nil && d.Effect != action.Deny {
			d = denial(fmt.Sprintf("gateway: the call could not be written to the audit log, so it is denied: %v", err))
		}
	}

	inf := func() *inflight {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.inflight[req.ID]
	}()
	if inf == nil || inf.cancelled {
		if inf = s.takeInflight(req.ID); inf != nil { // the client gave up while we decided
			endSpan(inf.span, calltrace.Result{ErrorType: "cancelled", Effect: string(d.Effect)})
		}
		return
	}
	span := inf.span
	// A tool's refusal is a tool result with isError, which the model
	// reads; other methods have no such result and get a JSON-RPC error.
	answer := func(text string, meta map[string]any) {
		if p.method == methodToolsCall {
			s.reply(req.ID, errorResult(text, meta))
		} else {
			s.replyRefused(req.ID, text, meta)
		}
	}
	switch d.Effect {
	case action.Allow, action.Audit:
		if a.ApprovalID != "" {
			s.forgetTicket(tk.key)
		}
		s.mu.Lock()
		c := &callState{req: req, method: p.method, action: a, decision: d, digest: digest, start: s.g.now().UnixNano(), span: span, spanCtx: inf.spanCtx}
		inf.call = c
		s.mu.Unlock()
		s.forwardCall(req, c, own)
	case action.RequireApproval:
		s.takeInflight(req.ID)
		ticket := ""
		if d.Approval != nil {
			ticket = d.Approval.ID
			if !tk.asked {
				s.rememberTicket(tk.key, ticket)
			}
		}
		endSpan(span, refusedResult(d, "approval required"))
		answer(approvalText(s.g.cfg.Server, p.tool, d, ticket, s.g.cfg.ApprovalHint), map[string]any{
			"agentgov/decision": d.ID.String(), "agentgov/approval_id": ticket, "agentgov/effect": string(d.Effect),
			"agentgov/code": d.RefusalCode(),
		})
	default:
		if tk.remembered && !stillPending(d) {
			// The ticket will not let this call through any more (denied,
			// expired, used): the next try asks for approval afresh.
			s.forgetTicket(tk.key)
		}
		s.takeInflight(req.ID)
		meta := map[string]any{"agentgov/effect": string(action.Deny), "agentgov/code": d.RefusalCode()}
		if !d.ID.IsZero() {
			meta["agentgov/decision"] = d.ID.String()
		}
		if a.ApprovalID != "" && stillPending(d) {
			// Said so that a stateless client is told to retry later
			// with the same ticket (see statelessAnswer).
			meta[MetaApprovalID], meta[metaPending] = a.ApprovalID, true
		}
		endSpan(span, refusedResult(d, strings.Join(d.Reasons, "; ")))
		text := denyText(s.g.cfg.Server, p.tool, d)
		if a.ApprovalID != "" && stillPending(d) {
			text = pendingText(s.g.cfg.Server, p.tool, a.ApprovalID, s.g.cfg.ApprovalHint)
		}
		answer(text, meta)
	}
}

// pendingText answers a retry whose ticket still waits for an approver:
// the retry is right, only early, so it is not told never to retry.
func pendingText(server, tool, ticket, hint string) string {
	if hint == "" {
		hint = fmt.Sprintf("an approver runs `agentgov approvals approve %s`", ticket)
	}
	return fmt.Sprintf("agentgov: the call to %s/%s still waits for approval ticket %s; %s. Once it is approved, retry exactly the same call.", server, tool, ticket, hint)
}

// ticketFor is the ticket the call key waits on in this session.
func (s *session) ticketFor(key string) string {
	if t := s.g.cfg.Tickets; t != nil {
		return t.Ticket(s.id, key)
	}
	return s.approvals.get(key)
}

func (s *session) rememberTicket(key, ticket string) {
	if t := s.g.cfg.Tickets; t != nil {
		if err := t.Remember(s.id, key, ticket); err != nil {
			s.g.log.Warn("approval ticket not remembered: the call will need a new one after a restart", "ticket", ticket, "err", err)
		}
		return
	}
	s.approvals.set(key, ticket)
}

func (s *session) forgetTicket(key string) {
	if t := s.g.cfg.Tickets; t != nil {
		if err := t.Forget(s.id, key); err != nil {
			s.g.log.Warn("approval ticket not forgotten", "err", err)
		}
		return
	}
	s.approvals.forget(key)
}

// stillPending says a deny is the engine's answer to a ticket that still
// waits for an approver, which a later retry may yet redeem.
func stillPending(d action.Decision) bool {
	for _, r := range d.Reasons {
		if strings.Contains(r, "refused (pending)") {
			return true
		}
	}
	return false
}

func denial(reason string) action.Decision {
	return action.Decision{Effect: action.Deny, Reasons: []string{reason}}
}

func denyText(server, tool string, d action.Decision) string {
	var b strings.Builder
	fmt.Fprintf(&b, "agentgov denied the call to %s/%s", server, tool)
	if len(d.Reasons) > 0 {
		b.WriteString(": " + strings.Join(d.Reasons, "; "))
	}
	if !d.ID.IsZero() {
		fmt.Fprintf(&b, " (decision %s)", d.ID)
	}
	b.WriteString(". Do not retry this call unchanged.")
	return b.String()
}

func approvalText(server, tool string, d action.Decision, ticket, hint string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "agentgov: the call to %s/%s needs a person's approval", server, tool)
	if len(d.Reasons) > 0 {
		b.WriteString(" (" + strings.Join(d.Reasons, "; ") + ")")
	}
	if ticket != "" {
		if hint == "" {
			hint = fmt.Sprintf("an approver runs `agentgov approvals approve %s`", ticket)
		}
		fmt.Fprintf(&b, ". Approval ticket %s is pending; %s. Once it is approved, retry exactly the same call (same tool, same arguments) and it will go through.", ticket, hint)
	} else {
		b.WriteString(". No ticket was opened, so it cannot be approved; ask an operator.")
	}
	return b.String()
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// finishCall decides again on the result of an allowed call, redacts or
// withholds it as that decision says, and records the outcome.
func (s *session) finishCall(c *callState, resp *jsonrpc.Response, inline bool) {
	// On the upstream's read loop (inline), the audit append of the
	// outcome goes to a goroutine of its own, after the client has its
	// answer.
	settle := func(status, errText string, rr *resultRecord) {
		if inline && s.g.cfg.Recorder != nil {
			s.goHeld(func() { s.settle(c, status, errText, rr) })
			return
		}
		s.settle(c, status, errText, rr)
	}
	if resp.Error != nil {
		c.endSpanWithError(resp.Error)
		s.finishError(c, resp, settle)
		return
	}
	switch c.method {
	case methodToolsCall:
	case methodResourcesRead, methodPromptsGet:
		s.finishContent(c, resp, settle)
		return
	default:
		// A subscription's answer carries no content.
		s.toClient(resp)
		settle("ok", "", nil)
		return
	}
	res, err := parseCallResult(resp.Result)
	if err != nil {
		msg := fmt.Sprintf("upstream %q sent a malformed tools/call result: %v", s.g.cfg.Server, err)
		s.replyError(resp.ID, codeUpstreamFailure, msg)
		settle("error", msg, nil)
		return
	}
	text := res.text()
	isError := res.IsError

	post := c.action
	post.Point = action.PostToolCall
	post.Content = text
	// The ticket approved the call, not its result, and has been used.
	post.ApprovalID = ""
	pd, err := s.g.cfg.Decider.Decide(c.traced(s.ctx), post)
	if err != nil {
		pd = denial(fmt.Sprintf("gateway: the decision on the result failed, so it is withheld: %v", err))
	}
	rr := &resultRecord{PostEffect: pd.Effect}
	if !pd.ID.IsZero() {
		rr.PostDecision = pd.ID.String()
	}
	switch {
	case pd.Effect == action.Deny || pd.Effect == action.RequireApproval:
		rr.Withheld = true
		s.reply(resp.ID, errorResult(fmt.Sprintf("agentgov withheld the result of %s/%s: %s", s.g.cfg.Server, c.action.Tool.Name, strings.Join(pd.Reasons, "; ")),
			map[string]any{"agentgov/effect": string(pd.Effect), "agentgov/decision": rr.PostDecision}))
	case (hasRedact(pd) || s.g.cfg.RedactResults) && s.g.cfg.Detector != nil && text != "":
		n, out := s.redact(resp.Result, res)
		rr.Redacted = n
		if n == 0 {
			s.toClient(resp)
		} else {
			s.toClient(&jsonrpc.Response{ID: resp.ID, Result: out})
		}
	default:
		s.toClient(resp)
	}
	if isError {
		settle("error", text, rr)
	} else {
		settle("ok", "", rr)
	}
}

// finishError is finishCall for a JSON-RPC error answering the call: its
// message and data are free text of the upstream's, which reaches the
// client as a result does, so they are decided on and masked alike.
func (s *session) finishError(c *callState, resp *jsonrpc.Response, settle func(status, errText string, rr *resultRecord)) {
	we, ok := resp.Error.(*jsonrpc.Error)
	if !ok {
		we = &jsonrpc.Error{Code: codeUpstreamFailure, Message: resp.Error.Error()}
	}
	texts := []string{we.Message}
	collectStrings(we.Data, &texts)
	post := c.action
	post.Point = action.PostToolCall
	post.Content = strings.Join(texts, "\n")
	post.ApprovalID = ""
	pd, err := s.g.cfg.Decider.Decide(c.traced(s.ctx), post)
	if err != nil {
		pd = denial(fmt.Sprintf("gateway: the decision on the result failed, so it is withheld: %v", err))
	}
	rr := &resultRecord{PostEffect: pd.Effect, rpcError: true}
	if !pd.ID.IsZero() {
		rr.PostDecision = pd.ID.String()
	}
	switch {
	case pd.Effect == action.Deny || pd.Effect == action.RequireApproval:
		rr.Withheld = true
		text := fmt.Sprintf("agentgov withheld the error of %s/%s: %s", s.g.cfg.Server, c.action.Tool.Name, strings.Join(pd.Reasons, "; "))
		meta := map[string]any{"agentgov/effect": string(pd.Effect), "agentgov/decision": rr.PostDecision}
		if c.method == methodToolsCall {
			s.reply(resp.ID, errorResult(text, meta))
		} else {
			s.replyRefused(resp.ID, text, meta)
		}
	case (hasRedact(pd) || s.g.cfg.RedactResults) && s.g.cfg.Detector != nil:
		det := s.g.cfg.Detector
		mask := func(t string) string {
			f := det.Sensitive(t)
			if len(f) == 0 {
				return t
			}
			rr.Redacted += len(f)
			return det.Redact(t, f)
		}
		out := &jsonrpc.Error{Code: we.Code, Message: mask(we.Message)}
		if len(we.Data) > 0 {
			if tree, err := decodeTree(we.Data); err == nil {
				out.Data, _ = encodeTree(maskAll(tree, mask))
			}
			// Data that cannot be read is dropped, never passed on
			// unmasked.
		}
		s.toClient(&jsonrpc.Response{ID: resp.ID, Error: out})
	default:
		s.toClient(resp)
	}
	settle("error", we.Message, rr)
}

// finishContent is finishCall for a resource's contents or a prompt: the
// same post-call decision on its text, the same withholding or
// redaction.
func (s *session) finishContent(c *callState, resp *jsonrpc.Response, settle func(status, errText string, rr *resultRecord)) {
	res, err := parseContentResult(resp.Result)
	if err != nil {
		msg := fmt.Sprintf("upstream %q sent a malformed %s result: %v", s.g.cfg.Server, c.method, err)
		s.replyError(resp.ID, codeUpstreamFailure, msg)
		settle("error", msg, nil)
		return
	}
	text := res.text()
	post := c.action
	post.Point = action.PostToolCall
	post.Content = text
	// The ticket approved the call, not its result, and has been used.
	post.ApprovalID = ""
	pd, err := s.g.cfg.Decider.Decide(c.traced(s.ctx), post)
	if err != nil {
		pd = denial(fmt.Sprintf("gateway: the decision on the result failed, so it is withheld: %v", err))
	}
	rr := &resultRecord{PostEffect: pd.Effect}
	if !pd.ID.IsZero() {
		rr.PostDecision = pd.ID.String()
	}
	switch {
	case pd.Effect == action.Deny || pd.Effect == action.RequireApproval:
		rr.Withheld = true
		s.replyRefused(resp.ID, fmt.Sprintf("agentgov withheld the result of %s/%s: %s", s.g.cfg.Server, c.action.Tool.Name, strings.Join(pd.Reasons, "; ")),
			map[string]any{"agentgov/effect": string(pd.Effect), "agentgov/decision": rr.PostDecision})
	case (hasRedact(pd) || s.g.cfg.RedactResults) && s.g.cfg.Detector != nil && text != "":
		n, out := res.redact(s.g.cfg.Detector)
		rr.Redacted = n
		if n == 0 {
			s.toClient(resp)
		} else {
			s.toClient(&jsonrpc.Response{ID: resp.ID, Result: out})
		}
	default:
		s.toClient(resp)
	}
	settle("ok", "", rr)
}

func hasRedact(d action.Decision) bool {
	for _, o := range d.Obligations {
		if o.Type == "redact" {
			return true
		}
	}
	return false
}

// redact masks sensitive findings in every string of a result that
// parseCallResult reads. It returns how many findings it masked and the
// rewritten result. Most results have nothing to mask, so the strings are
// checked first and the result is only taken apart and rebuilt when
// something is found.
func (s *session) redact(raw json.RawMessage, res callResult) (int, json.RawMessage) {
	det := s.g.cfg.Detector
	found := false
	for _, t := range slices.Concat(res.Texts, res.Other) {
		if len(det.Sensitive(t)) > 0 {
			found = true
			break
		}
	}
	if !found && res.hasStructured() && len(det.Sensitive(string(res.StructuredContent))) > 0 {
		found = true
	}
	if !found {
		return 0, nil
	}
	var result map[string]json.RawMessage
	if err := json.Unmarshal(raw, &result); err != nil {
		return 0, nil
	}
	n := 0
	maskResult(result, func(t string) string {
		f := det.Sensitive(t)
		if len(f) == 0 {
			return t
		}
		n += len(f)
		return det.Redact(t, f)
	})
	if n == 0 {
		return 0, nil
	}
	out, err := json.Marshal(result)
	if err != nil {
		return 0, nil
	}
	return n, bytes.TrimSpace(out)
}

// maskResult replaces every string of a tools/call result that
// parseCallResult reads with what mask makes of it, rewriting the members
// it changed. The structured content is masked as its JSON text, so that
// numbers are masked too; a member that cannot be rewritten is dropped,
// never passed on unmasked.
func maskResult(result map[string]json.RawMessage, mask func(string) string) {
	for key, val := range result {
		changed := false
		m := func(t string) string {
			out := mask(t)
			changed = changed || out != t
			return out
		}
		switch key {
		case "isError":
			continue
		case "resultType":
			if len(val) > 0 && val[0] == '"' {
				continue
			}
		case "structuredContent":
			if len(val) == 0 || string(val) == "null" {
				continue
			}
			if masked := m(string(val)); changed {
				if json.Valid([]byte(masked)) {
					result[key] = json.RawMessage(masked)
				} else {
					delete(result, key)
				}
			}
			continue
		}
		tree, err := decodeTree(val)
		if err != nil {
			delete(result, key)
			continue
		}
		if blocks, ok := tree.([]any); ok && key == "content" {
			for i, b := range blocks {
				if bm, ok := b.(map[string]any); ok {
					maskBlock(bm, m)
				} else {
					blocks[i] = maskAll(b, m)
				}
			}
		} else {
			tree = maskAll(tree, m)
		}
		if changed {
			out, err := encodeTree(tree)
			if err != nil {
				delete(result, key)
				continue
			}
			result[key] = out
		}
	}
}

// maskBlock masks a content block's strings as parseCallResult reads them:
// all but its kind, its media type and an image's or audio's data.
func maskBlock(m map[string]any, mask func(string) string) {
	kind, _ := m["type"].(string)
	for k, v := range m {
		_, isString := v.(string)
		switch {
		case isString && (k == "type" || k == "mimeType"):
		case isString && k == "data" && base64Block(kind):
		case k == "resource":
			if r, ok := v.(map[string]any); ok {
				for rk, rv := range r {
					if _, isString := rv.(string); isString && (rk == "mimeType" || rk == "blob") {
						continue
					}
					r[rk] = maskAll(rv, mask)
				}
				continue
			}
			m[k] = maskAll(v, mask)
		default:
			m[k] = maskAll(v, mask)
		}
	}
}

// maskAll masks every string of v.
func maskAll(v any, mask func(string) string) any {
	switch x := v.(type) {
	case string:
		return mask(x)
	case []any:
		for i := range x {
			x[i] = maskAll(x[i], mask)
		}
	case map[string]any:
		for k := range x {
			x[k] = maskAll(x[k], mask)
		}
	}
	return v
}

func decodeTree(raw json.RawMessage) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	err := dec.Decode(&v)
	return v, err
}

func encodeTree(v any) (json.RawMessage, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSpace(buf.Bytes()), nil
}

// settle records what happened to an allowed call: the engine's Outcome
// and the audit record of the result.
func (s *session) settle(c *callState, status, errText string, rr *resultRecord) {
	// A tool's error text, or the upstream's error message, goes into the
	// audit log through both records: masked before it is cut, so that no
	// secret is cut where the detectors would no longer know it.
	errText = truncate(maskText(errText), 500)
	latency := time.Duration(s.g.now().UnixNano() - c.start)
	if o := s.g.cfg.Observer; o != nil {
		failure := ""
		switch {
		case status == "ok":
		case rr != nil && !rr.rpcError:
			failure = "tool_error" // the upstream answered, with a tool's error
		default:
			failure = "error" // a JSON-RPC error, a malformed answer, an upstream that died
		}
		o.UpstreamCall("mcp", s.g.cfg.Server, max(latency, 0), failure)
	}
	if c.span != nil {
		c.span.End(settledResult(c, status, errText, rr))
	}
	ms := float64(latency) / float64(time.Millisecond)
	if ms < 0 {
		ms = 0
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), auditTimeout)
	defer cancel()
	// One after the other, not side by side: two appends at once make a
	// batch of two, after which an audit writer with a CommitDelay holds
	// the next lone append (the next call's decision) a while for company.
	if !c.decision.ID.IsZero() {
		if err := s.g.cfg.Decider.Outcome(ctx, c.decision.ID, action.Outcome{Status: status, LatencyMS: ms, Error: errText}); err != nil {
			s.g.log.Warn("outcome not recorded", "decision", c.decision.ID.String(), "err", err)
		}
	}
	if rr == nil {
		rr = &resultRecord{}
	}
	rr.Server, rr.Tool, rr.Session = s.g.cfg.Server, c.action.Tool.Name, s.id
	rr.Decision = c.decision.ID.String()
	// The error is the upstream's free text: the audit log keeps it masked.
	rr.Status, rr.LatencyMS, rr.Error = status, ms, detect.Mask(errText)
	s.g.record(ctx, "mcp.result", rr)
}
