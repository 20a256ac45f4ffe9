package mcp

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"

	"github.com/agentgov/agentgov/action"
)

// MetaApprovalID is the _meta key of a tools/call that retries a call under
// an approved ticket. A retry of the very same call in the same session
// needs no key: the gateway remembers the ticket it handed out.
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

// handleCall decides one tools/call and forwards it, or answers it with the
// reason it was not. inline says it runs on the session's read loop (see
// fromClient), which must not wait on the client: asking the user for an
// approval, and the audit append (which group-commits concurrent appends),
// then continue on a goroutine of their own.
func (s *session) handleCall(req *jsonrpc.Request, inline bool) {
	p, err := parseCallParams(req.Params)
	if err != nil || p.Name == "" {
		s.takeInflight(req.ID)
		msg := "tools/call needs params with a tool name"
		if err != nil {
			msg = fmt.Sprintf("tools/call params: %v", err)
		}
		s.replyError(req.ID, jsonrpc.CodeInvalidParams, msg)
		return
	}
	args, err := decodeArgs(p.Arguments)
	if err != nil {
		s.takeInflight(req.ID)
		s.replyError(req.ID, jsonrpc.CodeInvalidParams, fmt.Sprintf("tools/call %s: %v", p.Name, err))
		return
	}
	a := action.Action{
		Agent: s.who.Agent, Principal: s.who.Principal, Session: s.id,
		Point: action.PreToolCall,
		Tool:  action.Tool{Server: s.g.cfg.Server, Name: p.Name},
		Args:  args,
	}
	// Arguments that cannot be canonicalised leave the digest empty; the
	// audit append of the same arguments then fails and the call is denied.
	digest, _, _ := action.ArgsDigest(args)
	key := p.Name + " " + digest
	if p.HasApprovalID {
		a.ApprovalID = p.ApprovalID
	} else {
		s.mu.Lock()
		a.ApprovalID = s.approvals[key]
		s.mu.Unlock()
	}
	rec := callRecord{
		Server: s.g.cfg.Server, Tool: p.Name, Session: s.id,
		Agent: s.who.Agent, Principal: s.who.Principal, ArgsSHA256: digest,
	}

	st, err := s.tool(s.ctx, p.Name)
	var d action.Decision
	switch {
	case err != nil:
		d = denial(fmt.Sprintf("gateway: %v", err))
	case st == nil:
		d = denial(fmt.Sprintf("gateway: server %q offers no tool %q", s.g.cfg.Server, p.Name))
	case st.quarantine != "":
		d = denial(fmt.Sprintf("gateway: tool %s/%s is quarantined: %s", s.g.cfg.Server, p.Name, st.quarantine))
	default:
		a.Tool.Annotations = st.annotations
		d, err = s.g.cfg.Decider.Decide(s.ctx, a)
		if err != nil {
			d = denial(fmt.Sprintf("gateway: the decision failed, so the call is denied: %v", err))
		}
		if d.Effect == action.RequireApproval && s.mayElicit(d) {
			if inline {
				go func() { s.completeCall(req, p.Name, a, s.approveByElicitation(a, d), rec, key, digest, true) }()
				return
			}
			d = s.approveByElicitation(a, d)
		}
	}
	if inline && s.g.cfg.Recorder != nil {
		go s.completeCall(req, p.Name, a, d, rec, key, digest, true)
		return
	}
	s.completeCall(req, p.Name, a, d, rec, key, digest, !inline)
}

// completeCall audits a decided call and forwards it or answers it. own is
// as for fromClientMessage.
func (s *session) completeCall(req *jsonrpc.Request, name string, a action.Action, d action.Decision, rec callRecord, key, digest string, own bool) {
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
		s.takeInflight(req.ID) // the client gave up while we decided
		return
	}
	switch d.Effect {
	case action.Allow, action.Audit:
		s.mu.Lock()
		delete(s.approvals, key)
		inf.call = &callState{req: req, action: a, decision: d, digest: digest, start: s.g.now().UnixNano()}
		s.mu.Unlock()
		s.forward(req, own)
	case action.RequireApproval:
		s.takeInflight(req.ID)
		ticket := ""
		if d.Approval != nil {
			ticket = d.Approval.ID
			s.mu.Lock()
			s.approvals[key] = ticket
			s.mu.Unlock()
		}
		s.reply(req.ID, errorResult(approvalText(s.g.cfg.Server, name, d, ticket), map[string]any{
			"agentgov/decision": d.ID.String(), "agentgov/approval_id": ticket, "agentgov/effect": string(d.Effect),
		}))
	default:
		s.takeInflight(req.ID)
		meta := map[string]any{"agentgov/effect": string(action.Deny)}
		if !d.ID.IsZero() {
			meta["agentgov/decision"] = d.ID.String()
		}
		s.reply(req.ID, errorResult(denyText(s.g.cfg.Server, name, d), meta))
	}
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

func approvalText(server, tool string, d action.Decision, ticket string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "agentgov: the call to %s/%s needs a person's approval", server, tool)
	if len(d.Reasons) > 0 {
		b.WriteString(" (" + strings.Join(d.Reasons, "; ") + ")")
	}
	if ticket != "" {
		fmt.Fprintf(&b, ". Approval ticket %s is pending; an approver runs `agentgov approvals approve %s`. Once it is approved, retry exactly the same call (same tool, same arguments) and it will go through.", ticket, ticket)
	} else {
		b.WriteString(". No ticket was opened, so it cannot be approved; ask an operator.")
	}
	return b.String()
}

// mayElicit says whether the user can be asked to approve d: the client
// supports elicitation, the gateway is configured to ask, and there is a
// ticket to approve.
func (s *session) mayElicit(d action.Decision) bool {
	s.mu.Lock()
	elicit := s.elicit
	s.mu.Unlock()
	_, ok := s.g.cfg.Decider.(Approver)
	return elicit && ok && s.g.cfg.ElicitApprovals && d.Approval != nil && d.Approval.ID != ""
}

// approveByElicitation asks the user, through the client, whether to
// approve a call that needs approval; on yes it approves the ticket and
// decides again under it.
func (s *session) approveByElicitation(a action.Action, d action.Decision) action.Decision {
	if !s.mayElicit(d) {
		return d
	}
	ap := s.g.cfg.Decider.(Approver)
	args, _ := json.Marshal(a.Args)
	msg := fmt.Sprintf("agentgov: approve the call to %s/%s with arguments %s? %s", a.Tool.Server, a.Tool.Name, truncate(string(args), 2000), strings.Join(d.Reasons, "; "))
	resp, err := s.callOn(s.client, methodElicit, map[string]any{
		"message": msg,
		"requestedSchema": map[string]any{
			"type":       "object",
			"properties": map[string]any{"approve": map[string]any{"type": "boolean", "title": "Approve this call"}},
			"required":   []string{"approve"},
		},
	})
	if err != nil || resp.Error != nil {
		return d
	}
	var r struct {
		Action  string `json:"action"`
		Content struct {
			Approve bool `json:"approve"`
		} `json:"content"`
	}
	if json.Unmarshal(resp.Result, &r) != nil || r.Action != "accept" || !r.Content.Approve {
		return d
	}
	if err := ap.Approve(s.ctx, d.Approval.ID, "user:"+s.who.Principal.User, "approved through MCP elicitation in session "+s.id); err != nil {
		s.g.log.Warn("approval through elicitation failed", "ticket", d.Approval.ID, "err", err)
		return d
	}
	a.ApprovalID = d.Approval.ID
	d2, err := s.g.cfg.Decider.Decide(s.ctx, a)
	if err != nil {
		return denial(fmt.Sprintf("gateway: the decision failed, so the call is denied: %v", err))
	}
	return d2
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
			go s.settle(c, status, errText, rr)
			return
		}
		s.settle(c, status, errText, rr)
	}
	if resp.Error != nil {
		s.toClient(resp)
		settle("error", resp.Error.Error(), nil)
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
	pd, err := s.g.cfg.Decider.Decide(s.ctx, post)
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
		settle("error", truncate(text, 500), rr)
	} else {
		settle("ok", "", rr)
	}
}

func hasRedact(d action.Decision) bool {
	for _, o := range d.Obligations {
		if o.Type == "redact" {
			return true
		}
	}
	return false
}

// redact masks sensitive findings in every text of a result. It returns how
// many findings it masked and the rewritten result. Most results have
// nothing to mask, so the texts are checked first and the result is only
// taken apart and rebuilt when something is found.
func (s *session) redact(raw json.RawMessage, res callResult) (int, json.RawMessage) {
	det := s.g.cfg.Detector
	found := false
	for _, t := range res.Texts {
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
	var content []map[string]any
	_ = json.Unmarshal(result["content"], &content)
	n := 0
	mask := func(t string) string {
		f := det.Sensitive(t)
		if len(f) == 0 {
			return t
		}
		n += len(f)
		return det.Redact(t, f)
	}
	for _, c := range content {
		if t, ok := c["text"].(string); ok {
			c["text"] = mask(t)
		}
		if r, ok := c["resource"].(map[string]any); ok {
			if t, ok := r["text"].(string); ok {
				r["text"] = mask(t)
			}
		}
	}
	if sc := result["structuredContent"]; len(sc) > 0 && string(sc) != "null" {
		before := n
		masked := mask(string(sc))
		if n > before {
			if json.Valid([]byte(masked)) {
				result["structuredContent"] = json.RawMessage(masked)
			} else {
				delete(result, "structuredContent") // never pass on what could not be masked
			}
		}
	}
	if n == 0 {
		return 0, nil
	}
	b, _ := json.Marshal(content)
	result["content"] = b
	out, err := json.Marshal(result)
	if err != nil {
		return 0, nil
	}
	return n, bytes.TrimSpace(out)
}

// settle records what happened to an allowed call: the engine's Outcome
// and the audit record of the result.
func (s *session) settle(c *callState, status, errText string, rr *resultRecord) {
	latency := time.Duration(s.g.now().UnixNano() - c.start)
	ms := float64(latency) / float64(time.Millisecond)
	if ms < 0 {
		ms = 0
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), 10*time.Second)
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
	rr.Status, rr.LatencyMS, rr.Error = status, ms, errText
	s.g.record(ctx, "mcp.result", rr)
}
