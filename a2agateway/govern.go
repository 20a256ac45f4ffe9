package a2agateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/a2aproject/a2a-go/a2a"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/errcode"
)

// decodeSend reads the params of message/send and message/stream and
// takes the approval ticket out of their metadata: the ticket is for
// agentgov, not for the upstream.
func decodeSend(raw json.RawMessage) (*a2a.MessageSendParams, string, *rpcError) {
	var p a2a.MessageSendParams
	if len(raw) == 0 {
		return nil, "", &rpcError{Code: rpcInvalidParams, Message: "params: required, with a message"}
	}
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, "", &rpcError{Code: rpcInvalidParams, Message: "params: " + errcode.DescribeJSON(err)}
	}
	m := p.Message
	switch {
	case m == nil:
		return nil, "", &rpcError{Code: rpcInvalidParams, Message: "params.message: required"}
	case m.Role != a2a.MessageRoleUser:
		// A message in the agent's name would sit in the task's history
		// as the upstream's own words.
		return nil, "", &rpcError{Code: rpcInvalidParams, Message: fmt.Sprintf("params.message.role: a caller's message has role \"user\", not %q", m.Role)}
	case len(m.Parts) == 0:
		return nil, "", &rpcError{Code: rpcInvalidParams, Message: "params.message.parts: at least one part is required"}
	case p.Config != nil && p.Config.PushConfig != nil:
		return nil, "", &rpcError{Code: rpcPushUnsupported, Message: pushRefusal}
	}
	ticket := takeString(m.Metadata, MetaApprovalID)
	if t := takeString(p.Metadata, MetaApprovalID); ticket == "" {
		ticket = t
	}
	if len(m.Metadata) == 0 {
		m.Metadata = nil
	}
	if len(p.Metadata) == 0 {
		p.Metadata = nil
	}
	return &p, ticket, nil
}

func takeString(m map[string]any, key string) string {
	v, ok := m[key]
	if !ok {
		return ""
	}
	delete(m, key)
	s, _ := v.(string)
	return s
}

// sessionOf is the session a message is decided in: the caller's header,
// else the conversation (contextId) it continues, else none.
func sessionOf(c *call, m *a2a.Message) string {
	if c.session != "" {
		return c.session
	}
	if m.ContextID != "" {
		return "a2a-" + m.ContextID
	}
	return ""
}

// decideMessage decides a caller's message at pre_agent_message. It
// returns the decision when the message may go on, else the error to
// answer with; either way the message is in the audit log.
func (g *Gateway) decideMessage(ctx context.Context, c *call, p *a2a.MessageSendParams, ticket string) (action.Decision, *rpcError) {
	m := p.Message
	c.session = sessionOf(c, m)
	rec := messageRecord{Agent: c.agent.ID, Target: g.cfg.Name, Principal: c.principal, Session: c.session, Method: c.method, Task: string(m.TaskID)}
	refuse := func(reason string, e *errcode.Error) (action.Decision, *rpcError) {
		g.refused(reason)
		rec.Effect, rec.Reasons = action.Deny, []string{"gateway: " + e.Message}
		g.record(ctx, "a2a.message", rec)
		return action.Decision{}, codeError(e)
	}
	notFound := func(what, id string) (action.Decision, *rpcError) {
		g.refused("unknown_task")
		rec.Effect, rec.Reasons = action.Deny, []string{"gateway: " + what + " not known as the caller's"}
		g.record(ctx, "a2a.message", rec)
		return action.Decision{}, &rpcError{Code: rpcTaskNotFound, Message: fmt.Sprintf("%s %q not found", what, truncate(id, 100))}
	}
	// A message may continue, or bring in for context, the caller's own
	// tasks only.
	for _, id := range append([]a2a.TaskID{m.TaskID}, m.ReferenceTasks...) {
		if id == "" {
			continue
		}
		if o, ok := g.taskOf(string(id)); !ok || o.agent != c.agent.ID {
			return notFound("task", string(id))
		}
	}
	// A conversation is the caller's it was opened for; one the gateway
	// has not seen is the caller's from this message on.
	if m.ContextID != "" {
		if o, ok := g.contextOf(m.ContextID); ok && o.agent != c.agent.ID {
			return notFound("context", m.ContextID)
		}
	}
	in, e := messageInput(m, p.Metadata, g.cfg.MaxFileBytes)
	if e != nil {
		return refuse(string(e.Code), e)
	}
	if reason, stop := g.stopped(c); stop {
		return refuse("kill_switch", errcode.New(errcode.PolicyDenied, fmt.Sprintf("agentgov denied the message to %s: %s", g.cfg.Name, reason)))
	}
	a := action.Action{
		Agent: c.agent, Principal: c.principal, Session: c.session,
		Point: action.PreAgentMessage, Target: g.target,
		Content: in.content(), Args: in.arguments(), ApprovalID: ticket,
	}
	d, err := g.cfg.Decider.Decide(ctx, a)
	if err != nil {
		return refuse("decision_failed", errcode.Wrap(errcode.DecisionFailed, fmt.Sprintf("the message to %s could not be decided, so it was not sent: %v", g.cfg.Name, err), err))
	}
	if d.AuditIndex == nil {
		// A decision the engine logged holds the message already.
		rec.Effect, rec.Reasons = d.Effect, d.Reasons
		if !d.ID.IsZero() {
			rec.Decision = d.ID.String()
		}
		if d.Approval != nil {
			rec.Approval = d.Approval.ID
		}
		if err := g.record(ctx, "a2a.message", rec); err != nil && d.Effect != action.Deny {
			return action.Decision{}, codeError(errcode.Wrap(errcode.Unavailable, "the message could not be written to the audit log, so it was not sent", err))
		}
	}
	switch d.Effect {
	case action.Allow, action.Audit:
		g.rememberContext(m.ContextID, taskOwner{agent: c.agent.ID, session: c.session})
		return d, nil
	case action.RequireApproval:
		return d, approvalError(g.cfg.Name, d)
	default:
		return d, denyError(fmt.Sprintf("agentgov denied the message to %s", g.cfg.Name), d)
	}
}

// denyError tells the caller why: the reasons, the decision, and that the
// same message will be denied again.
func denyError(what string, d action.Decision) *rpcError {
	var b strings.Builder
	b.WriteString(what)
	if len(d.Reasons) > 0 {
		b.WriteString(": " + strings.Join(d.Reasons, "; "))
	}
	data := map[string]any{"agentgov.code": string(d.RefusalCode()), "agentgov.reasons": nonNil(d.Reasons)}
	if !d.ID.IsZero() {
		fmt.Fprintf(&b, " (decision %s)", d.ID)
		data["agentgov.decision"] = d.ID.String()
	}
	code := d.RefusalCode()
	if code == "" {
		code = errcode.PolicyDenied
		data["agentgov.code"] = string(code)
	}
	return &rpcError{Code: code.A2ARPC(), Message: b.String(), Data: data}
}

func approvalError(name string, d action.Decision) *rpcError {
	var b strings.Builder
	fmt.Fprintf(&b, "agentgov: the message to %s needs a person's approval", name)
	if len(d.Reasons) > 0 {
		b.WriteString(" (" + strings.Join(d.Reasons, "; ") + ")")
	}
	data := map[string]any{"agentgov.code": string(errcode.ApprovalRequired), "agentgov.reasons": nonNil(d.Reasons), "agentgov.decision": d.ID.String()}
	if d.Approval != nil && d.Approval.ID != "" {
		t := d.Approval.ID
		data[MetaApprovalID] = t
		fmt.Fprintf(&b, ". Approval ticket %s is pending; an approver runs `agentgov approvals approve %s`. Once it is approved, send the same message again (same text and data, same context) with metadata {\"%s\": \"%s\"}", t, t, MetaApprovalID, t)
	} else {
		b.WriteString(". No ticket was opened, so it cannot be approved; ask an operator")
	}
	return &rpcError{Code: errcode.ApprovalRequired.A2ARPC(), Message: b.String(), Data: data}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// release decides a reply at post_agent_message before it reaches the
// caller. It returns the id of that decision ("" when the reply carried
// nothing to decide), or the error to answer with instead of the reply.
//
// A reply let through is content from another agent, which the engine
// records in the caller's session as untrusted (DESIGN §8) when it allows
// the post_agent_message decision. A caller that named no session, in a
// message without a contextId, gets the conversation the upstream opens
// for it: the reply's contextId, which its next message carries.
func (g *Gateway) release(ctx context.Context, c *call, ev a2a.Event) (string, *rpcError) {
	if tp, ok := ev.(a2a.TaskInfoProvider); ok {
		info := tp.TaskInfo()
		if c.session == "" && info.ContextID != "" {
			c.session = "a2a-" + info.ContextID
		}
		who := taskOwner{agent: c.agent.ID, session: c.session}
		g.rememberTask(string(info.TaskID), who)
		g.rememberContext(info.ContextID, who)
	}
	in, e := replyInput(ev, g.cfg.MaxFileBytes, g.cfg.MaxArtifactBytes)
	if e != nil {
		g.refused(string(e.Code))
		e.Message = fmt.Sprintf("agentgov withheld the reply of %s: %s", g.cfg.Name, e.Message)
		return "", codeError(e)
	}
	if in.empty() {
		return "", nil
	}
	if reason, stop := g.stopped(c); stop {
		g.refused("kill_switch")
		return "", codeError(errcode.New(errcode.PolicyDenied, fmt.Sprintf("agentgov withheld the reply of %s: %s", g.cfg.Name, reason)))
	}
	content := in.content()
	a := action.Action{
		Agent: c.agent, Principal: c.principal, Session: c.session,
		Point: action.PostAgentMessage, Target: g.target,
		Content: content, Args: in.arguments(),
	}
	d, err := g.cfg.Decider.Decide(ctx, a)
	if err != nil {
		g.refused("decision_failed")
		return "", codeError(errcode.Wrap(errcode.DecisionFailed, fmt.Sprintf("agentgov withheld the reply of %s: it could not be decided: %v", g.cfg.Name, err), err))
	}
	id := ""
	if !d.ID.IsZero() {
		id = d.ID.String()
	}
	if d.Effect != action.Allow && d.Effect != action.Audit {
		// A reply cannot wait for an approver: what needs one is withheld.
		d.Effect = action.Deny
		return id, denyError(fmt.Sprintf("agentgov withheld the reply of %s", g.cfg.Name), d)
	}
	return id, nil
}

// exchange is what the gateway keeps of one forwarded request until it is
// settled.
type exchange struct {
	c        *call
	pre      action.Decision
	start    time.Time
	task     string
	posts    []string
	events   int
	withheld bool
}

// settle records how a forwarded request ended: the outcome of its
// decision, the upstream's latency in metrics, and a record of the reply.
func (g *Gateway) settle(ctx context.Context, x *exchange, status, errText string) {
	latency := max(g.now().Sub(x.start), 0)
	errText = maskText(errText)
	if o := g.cfg.Observer; o != nil {
		failure := ""
		if status != "ok" {
			failure = "error"
		}
		o.UpstreamCall("a2a", g.cfg.Name, latency, failure)
	}
	ms := float64(latency) / float64(time.Millisecond)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), auditTimeout)
	defer cancel()
	if !x.pre.ID.IsZero() {
		if err := g.cfg.Decider.Outcome(ctx, x.pre.ID, action.Outcome{Status: status, LatencyMS: ms, Error: errText}); err != nil {
			g.log.Warn("outcome not recorded", "decision", x.pre.ID.String(), "err", err)
		}
	}
	rec := replyRecord{Agent: x.c.agent.ID, Target: g.cfg.Name, Session: x.c.session, Method: x.c.method, Task: x.task,
		PostDecisions: x.posts, Events: x.events, Status: status, LatencyMS: ms, Error: errText, Withheld: x.withheld}
	if !x.pre.ID.IsZero() {
		rec.Decision = x.pre.ID.String()
	}
	g.record(ctx, "a2a.reply", rec)
}

// upstreamError is what the caller is told of an upstream that failed:
// its own JSON-RPC error, masked, or that it could not be reached.
func (g *Gateway) upstreamError(err error) *rpcError {
	var re *rpcError
	if errors.As(err, &re) {
		// The upstream's code stands; its words are another agent's free
		// text, and go out masked, without their data.
		return &rpcError{Code: re.Code, Message: fmt.Sprintf("upstream %s: %s", g.cfg.Name, maskText(re.Message))}
	}
	return codeError(errcode.Wrap(errcode.UpstreamUnreachable, fmt.Sprintf("upstream %s failed: %s", g.cfg.Name, maskText(err.Error())), err))
}

// upstreamFailure is upstreamError for a request that reached the
// upstream: the text of its own JSON-RPC error is its words to the caller,
// decided at post_agent_message like any reply, and withheld when that
// decision does not allow it.
func (g *Gateway) upstreamFailure(ctx context.Context, c *call, x *exchange, err error) *rpcError {
	var re *rpcError
	if errors.As(err, &re) && re.Message != "" {
		m := &a2a.Message{Role: a2a.MessageRoleAgent, Parts: a2a.ContentParts{a2a.TextPart{Text: re.Message}}}
		post, e := g.release(ctx, c, m)
		if post != "" {
			x.posts = append(x.posts, post)
		}
		if e != nil {
			x.withheld = true
			e.Message = fmt.Sprintf("%s (the text of its JSON-RPC error %d)", e.Message, re.Code)
			return e
		}
	}
	return g.upstreamError(err)
}

// send governs message/send: the message decided, forwarded, its reply
// decided.
func (g *Gateway) send(ctx context.Context, c *call, raw json.RawMessage) (any, *rpcError) {
	p, ticket, e := decodeSend(raw)
	if e != nil {
		g.refuseMethod(ctx, c, "bad_request")
		return nil, e
	}
	d, e := g.decideMessage(ctx, c, p, ticket)
	if e != nil {
		return nil, e
	}
	x := &exchange{c: c, pre: d, start: g.now(), task: string(p.Message.TaskID)}
	cctx, cancel := context.WithTimeout(ctx, g.cfg.Timeout)
	res, err := g.up.call(cctx, "message/send", p)
	cancel()
	if err != nil {
		e := g.upstreamFailure(ctx, c, x, err)
		g.settle(ctx, x, "error", err.Error())
		return nil, e
	}
	ev, err := a2a.UnmarshalEventJSON(res)
	if err == nil {
		switch ev.(type) {
		case *a2a.Message, *a2a.Task:
		default:
			err = fmt.Errorf("message/send answered with a %T, not a message or a task", ev)
		}
	}
	if err != nil {
		g.settle(ctx, x, "error", err.Error())
		return nil, codeError(errcode.Wrap(errcode.UpstreamUnreachable, fmt.Sprintf("upstream %s gave an invalid answer: %v", g.cfg.Name, maskText(err.Error())), err))
	}
	x.events = 1
	if t, ok := ev.(*a2a.Task); ok {
		x.task = string(t.ID)
	}
	post, e := g.release(ctx, c, ev)
	if post != "" {
		x.posts = append(x.posts, post)
	}
	if e != nil {
		x.withheld = true
		g.settle(ctx, x, "ok", "")
		return nil, e
	}
	g.settle(ctx, x, "ok", "")
	return ev, nil
}

// taskCall governs tasks/get and tasks/cancel: for the caller's own tasks
// only; the task that comes back is a reply like any other.
func (g *Gateway) taskCall(ctx context.Context, c *call, raw json.RawMessage) (any, *rpcError) {
	var p struct {
		ID            a2a.TaskID `json:"id"`
		HistoryLength *int       `json:"historyLength,omitempty"`
	}
	if err := json.Unmarshal(raw, &p); err != nil || p.ID == "" {
		g.refuseMethod(ctx, c, "bad_request")
		return nil, &rpcError{Code: rpcInvalidParams, Message: "params.id: the task's id is required"}
	}
	rec := messageRecord{Agent: c.agent.ID, Target: g.cfg.Name, Principal: c.principal, Method: c.method, Task: truncate(string(p.ID), 200)}
	o, ok := g.taskOf(string(p.ID))
	if !ok || o.agent != c.agent.ID {
		// Another agent's task is as good as absent: its existence is
		// not the caller's business.
		g.refused("unknown_task")
		rec.Effect, rec.Reasons = action.Deny, []string{"gateway: task not known as the caller's"}
		g.record(ctx, "a2a.message", rec)
		return nil, &rpcError{Code: rpcTaskNotFound, Message: fmt.Sprintf("task %q not found", truncate(string(p.ID), 100))}
	}
	if c.session == "" {
		c.session = o.session
	}
	rec.Session = c.session
	if reason, stop := g.stopped(c); stop {
		g.refused("kill_switch")
		rec.Effect, rec.Reasons = action.Deny, []string{reason}
		g.record(ctx, "a2a.message", rec)
		return nil, codeError(errcode.New(errcode.PolicyDenied, fmt.Sprintf("agentgov denied %s on %s: %s", c.method, g.cfg.Name, reason)))
	}
	rec.Effect = action.Allow
	if err := g.record(ctx, "a2a.message", rec); err != nil {
		return nil, codeError(errcode.Wrap(errcode.Unavailable, "the request could not be written to the audit log, so it was not sent", err))
	}
	x := &exchange{c: c, start: g.now(), task: string(p.ID)}
	cctx, cancel := context.WithTimeout(ctx, g.cfg.Timeout)
	// Only the task's id (and for tasks/get how much history) goes on:
	// nothing here is decided at pre_agent_message, so nothing else of the
	// caller's may reach the upstream this way (metadata least of all).
	var fwd any = &a2a.TaskIDParams{ID: p.ID}
	if c.method == "tasks/get" {
		fwd = &a2a.TaskQueryParams{ID: p.ID, HistoryLength: p.HistoryLength}
	}
	res, err := g.up.call(cctx, c.method, fwd)
	cancel()
	if err != nil {
		e := g.upstreamFailure(ctx, c, x, err)
		g.settle(ctx, x, "error", err.Error())
		return nil, e
	}
	var t a2a.Task
	if err := json.Unmarshal(res, &t); err != nil {
		g.settle(ctx, x, "error", err.Error())
		return nil, codeError(errcode.Wrap(errcode.UpstreamUnreachable, fmt.Sprintf("upstream %s gave an invalid task: %v", g.cfg.Name, maskText(err.Error())), err))
	}
	x.events = 1
	post, e := g.release(ctx, c, &t)
	if post != "" {
		x.posts = append(x.posts, post)
	}
	x.withheld = e != nil
	g.settle(ctx, x, "ok", "")
	if e != nil {
		return nil, e
	}
	return &t, nil
}
