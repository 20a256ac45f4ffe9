package mcp

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/chaos"
)

// FaultInjector decides which forwarded tools/calls get a chaos fault;
// *chaos.Injector is one. Inject has written the fault to the audit log
// when it returns one.
type FaultInjector interface {
	Inject(ctx context.Context, c chaos.Call) (chaos.Fault, bool)
}

var _ FaultInjector = (*chaos.Injector)(nil)

// forwardCall forwards an allowed call, unless a chaos experiment gives it
// a fault, which is then acted out as the upstream failing would. own is
// as for fromClientMessage.
func (s *session) forwardCall(req *jsonrpc.Request, c *callState, own bool) {
	inj := s.g.cfg.Chaos
	if inj == nil || c.method != methodToolsCall {
		s.forward(req, own)
		return
	}
	if !own {
		// The fault's audit append and its wait must not hold up the
		// session's read loop.
		s.goHeld(func() { s.forwardCall(req, c, true) })
		return
	}
	f, ok := inj.Inject(s.ctx, chaos.Call{
		Server: s.g.cfg.Server, Tool: c.action.Tool.Name, Agent: c.action.Agent.ID, Session: s.id,
		Decision: c.decision.ID.String(),
	})
	if !ok {
		s.forward(req, true)
		return
	}
	if f.Wait > 0 {
		abandon := make(chan struct{})
		s.mu.Lock()
		if inf := s.inflight[req.ID]; inf != nil && !inf.cancelled {
			inf.abandon = abandon
		} else {
			close(abandon)
		}
		s.mu.Unlock()
		t := time.NewTimer(f.Wait)
		select {
		case <-t.C:
		case <-abandon:
			// The client cancelled the request: it is never sent.
			t.Stop()
			s.takeInflight(req.ID)
			return
		case <-s.ctx.Done():
			t.Stop()
			s.takeInflight(req.ID)
			return
		case <-s.quit:
			// The client went away, or the gateway stops: the call was
			// not sent, as for any request read while it stops.
			t.Stop()
			if s.takeInflight(req.ID) != nil {
				s.replyRefused(req.ID, "agentgov: the gateway is shutting down; the request was not sent", map[string]any{"agentgov/effect": string(action.Deny)})
			}
			return
		}
	}
	if f.Kind == chaos.Latency {
		s.mu.Lock()
		inf := s.inflight[req.ID]
		s.mu.Unlock()
		if inf == nil || inf.cancelled {
			s.takeInflight(req.ID) // the client gave up while it waited
			return
		}
		s.forward(req, true)
		return
	}
	if s.takeInflight(req.ID) == nil {
		return
	}
	note := fmt.Sprintf("a fault injected by agentgov chaos experiment %s", f.Experiment)
	switch f.Kind {
	case chaos.Error:
		// What a failing tool answers: a result with isError, which the
		// model reads, settled as a tool's error.
		text := fmt.Sprintf("upstream MCP server %q failed (error %d): %s", s.g.cfg.Server, f.Code, f.Message)
		if !strings.Contains(f.Message, "chaos experiment "+f.Experiment) {
			text += " (" + note + ")"
		}
		s.reply(req.ID, errorResult(text, map[string]any{"agentgov/chaos": f.Experiment, "agentgov/decision": c.decision.ID.String()}))
		s.settle(c, "error", text, &resultRecord{})
	default:
		// What an upstream that went away leaves: no result, the error
		// the gateway answers for a dead upstream.
		msg := fmt.Sprintf("upstream MCP server %q closed the connection: %s", s.g.cfg.Server, note)
		s.replyError(req.ID, codeUpstreamFailure, msg)
		s.settle(c, "error", msg, nil)
	}
}
