package a2agateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/errcode"
)

// JSON-RPC error codes the A2A protocol fixes (A2A 0.3, §8).
const (
	rpcParseError      int64 = -32700
	rpcInvalidRequest  int64 = -32600
	rpcMethodNotFound  int64 = -32601
	rpcInvalidParams   int64 = -32602
	rpcTaskNotFound    int64 = -32001
	rpcPushUnsupported int64 = -32003
	rpcUnsupported     int64 = -32004
	rpcNoExtendedCard  int64 = -32007
)

// CardPath is where, under the gateway's path, the rewritten agent card is
// served.
const CardPath = "/.well-known/agent-card.json"

// legacyCardPath is where A2A before 0.3 kept the card.
const legacyCardPath = "/.well-known/agent.json"

// call is one JSON-RPC request of an authenticated caller.
type call struct {
	agent     action.Agent
	principal action.Principal
	session   string
	method    string
	id        any
	base      string // the gateway's URL for this agent, as the caller reached it
}

// Handler serves the gateway at prefix (/a2a/{name}): the agent card at
// prefix+CardPath, and JSON-RPC by POST to prefix itself.
func (g *Gateway) Handler(prefix string) http.Handler {
	prefix = strings.TrimSuffix(prefix, "/")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rest := strings.TrimPrefix(r.URL.Path, prefix)
		agent, principal, err := g.cfg.Identify(r)
		if err != nil {
			e, ok := errcode.As(err)
			if !ok {
				e = errcode.Wrap(errcode.Unauthorized, err.Error(), err)
			}
			writeHTTPError(w, e)
			return
		}
		c := &call{agent: agent, principal: principal, base: gatewayURL(r, prefix)}
		switch {
		case rest == CardPath || rest == legacyCardPath:
			if r.Method != http.MethodGet && r.Method != http.MethodHead {
				w.Header().Set("Allow", "GET, HEAD")
				writeHTTPError(w, errcode.Errorf(errcode.MethodNotAllowed, "%s takes GET, not %s", r.URL.Path, r.Method))
				return
			}
			g.serveCard(w, r, c)
		case rest == "" || rest == "/":
			if r.Method != http.MethodPost {
				w.Header().Set("Allow", "POST")
				writeHTTPError(w, errcode.Errorf(errcode.MethodNotAllowed, "%s takes JSON-RPC by POST, not %s (the agent card is at %s)", r.URL.Path, r.Method, prefix+CardPath))
				return
			}
			g.serveRPC(w, r, c)
		default:
			writeHTTPError(w, errcode.Errorf(errcode.NotFound, "no route for %s %s", r.Method, r.URL.Path))
		}
	})
}

// gatewayURL is the address at which the caller reached this agent's
// gateway: what the card tells it to use.
func gatewayURL(r *http.Request, prefix string) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + prefix
}

type rpcRequest struct {
	JSONRPC string          `json:"jsonrpc"`
	Method  string          `json:"method"`
	Params  json.RawMessage `json:"params"`
	ID      any             `json:"id"`
}

func (g *Gateway) serveRPC(w http.ResponseWriter, r *http.Request, c *call) {
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		writeHTTPError(w, errcode.New(errcode.UnsupportedMediaType, "POST a JSON-RPC request as application/json"))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, g.cfg.MaxMessageBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			g.refused("too_large")
			writeRPC(w, nil, nil, codeError(errcode.Errorf(errcode.TooLarge, "the request is over the limit of %d bytes (a2a.max_message_bytes)", g.cfg.MaxMessageBytes)))
			return
		}
		writeHTTPError(w, errcode.Wrap(errcode.Timeout, "the request body could not be read", err))
		return
	}
	if bytes.HasPrefix(bytes.TrimSpace(body), []byte("[")) {
		writeRPC(w, nil, nil, &rpcError{Code: rpcInvalidRequest, Message: "A2A takes one JSON-RPC request per POST, not a batch"})
		return
	}
	var req rpcRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&req); err != nil {
		writeRPC(w, nil, nil, &rpcError{Code: rpcParseError, Message: "the request is not JSON: " + errcode.DescribeJSON(err)})
		return
	}
	if req.JSONRPC != "2.0" || req.Method == "" {
		writeRPC(w, req.ID, nil, &rpcError{Code: rpcInvalidRequest, Message: `want a JSON-RPC 2.0 request: "jsonrpc": "2.0" and a method`})
		return
	}
	c.method, c.id = req.Method, req.ID
	c.session = r.Header.Get(HeaderSession)
	ctx := action.WithEnforcer(r.Context(), "a2a_gateway")
	switch req.Method {
	case "message/send":
		ctx, span := g.startSpan(ctx, r, c)
		res, e := g.send(ctx, c, req.Params)
		endSpan(span, e)
		writeRPC(w, req.ID, res, e)
	case "message/stream":
		ctx, span := g.startSpan(ctx, r, c)
		endSpan(span, g.stream(ctx, w, c, req.Params))
	case "tasks/get":
		res, e := g.taskCall(ctx, c, req.Params)
		writeRPC(w, req.ID, res, e)
	case "tasks/cancel":
		res, e := g.taskCall(ctx, c, req.Params)
		writeRPC(w, req.ID, res, e)
	case "tasks/resubscribe":
		g.refuseMethod(ctx, c, "unsupported")
		writeRPC(w, req.ID, nil, &rpcError{Code: rpcUnsupported, Message: "agentgov's A2A gateway does not offer tasks/resubscribe: poll the task with tasks/get, whose answer is decided like any reply"})
	case "tasks/pushNotificationConfig/set", "tasks/pushNotificationConfig/get", "tasks/pushNotificationConfig/list", "tasks/pushNotificationConfig/delete":
		g.refuseMethod(ctx, c, "push_notifications")
		writeRPC(w, req.ID, nil, &rpcError{Code: rpcPushUnsupported, Message: pushRefusal})
	case "agent/getAuthenticatedExtendedCard":
		writeRPC(w, req.ID, nil, &rpcError{Code: rpcNoExtendedCard, Message: "agentgov's A2A gateway serves the agent's public card only, at " + c.base + CardPath})
	default:
		writeRPC(w, req.ID, nil, &rpcError{Code: rpcMethodNotFound, Message: fmt.Sprintf("no method %q: the gateway relays message/send, message/stream, tasks/get and tasks/cancel", truncate(req.Method, 100))})
	}
}

// pushRefusal says why push notifications are not relayed.
const pushRefusal = "agentgov's A2A gateway does not relay push notifications: the upstream would post task updates straight to a URL of the caller's choosing, past the post_agent_message decision every reply must pass. Stream the reply (message/stream) or poll it (tasks/get) instead"

// refuseMethod audits a request refused for its method.
func (g *Gateway) refuseMethod(ctx context.Context, c *call, reason string) {
	g.refused(reason)
	g.record(ctx, "a2a.message", messageRecord{Agent: c.agent.ID, Target: g.cfg.Name, Principal: c.principal, Session: c.session,
		Method: truncate(c.method, 100), Effect: action.Deny, Reasons: []string{"gateway: method not relayed (" + reason + ")"}})
}

// codeError is the JSON-RPC error of an agentgov refusal.
func codeError(e *errcode.Error) *rpcError {
	return &rpcError{Code: e.Code.A2ARPC(), Message: e.Message, Data: map[string]any{"agentgov.code": string(e.Code)}}
}

// withErrorText copies an error's message into data.error, where a2a-go's
// client reads the detail of an error it maps to one of its own.
func withErrorText(e *rpcError) *rpcError {
	if e == nil {
		return nil
	}
	if e.Data == nil {
		e.Data = map[string]any{}
	}
	e.Data["error"] = e.Message
	return e
}

// writeRPC answers a JSON-RPC request: HTTP 200 whatever the outcome, as
// A2A clients expect, with the code in errcode.Header too.
func writeRPC(w http.ResponseWriter, id any, result any, e *rpcError) {
	resp := map[string]any{"jsonrpc": "2.0", "id": id}
	if e != nil {
		resp["error"] = withErrorText(e)
		if c, ok := e.Data["agentgov.code"].(string); ok {
			w.Header().Set(errcode.Header, c)
		}
	} else {
		resp["result"] = result
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	json.NewEncoder(w).Encode(resp)
}

// writeHTTPError answers a request refused before any JSON-RPC was read:
// the code's status, with a JSON-RPC error body.
func writeHTTPError(w http.ResponseWriter, e *errcode.Error) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set(errcode.Header, string(e.Code))
	w.WriteHeader(e.Code.Status())
	json.NewEncoder(w).Encode(map[string]any{"jsonrpc": "2.0", "id": nil, "error": withErrorText(codeError(e))})
}
