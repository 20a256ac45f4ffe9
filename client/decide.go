package client

import (
	"context"
	"errors"
	"net/http"

	"github.com/agentgov/agentgov/action"
)

// DecideOption adds a header to a Decide or Outcome call.
type DecideOption func(http.Header)

// IdempotencyKey makes a retry of the same call safe: the server answers a
// repeated key with the first answer and changes nothing, and refuses the
// key if it comes back with a different request (CodeUnprocessable). Keys
// are 1 to 128 letters, digits and . _ : -.
func IdempotencyKey(key string) DecideOption {
	return func(h http.Header) { h.Set("Idempotency-Key", key) }
}

// TraceParent passes a W3C trace context; the audit entry carries it, so a
// decision can be found from the agent's trace.
func TraceParent(traceparent string) DecideOption {
	return func(h http.Header) { h.Set("Traceparent", traceparent) }
}

// CorrelationID passes the caller's own request id; the audit entry
// carries it.
func CorrelationID(id string) DecideOption {
	return func(h http.Header) { h.Set("X-Correlation-Id", id) }
}

func headerOf(opts []DecideOption) http.Header {
	if len(opts) == 0 {
		return nil
	}
	h := http.Header{}
	for _, o := range opts {
		o(h)
	}
	return h
}

// Decide asks whether the action may run (POST /v1/decide). An agent token
// leaves a.Agent and a.Principal empty: the server fills them from the
// credential and refuses a body that claims anyone else. A deny or
// require_approval is a Decision, not an error; errors are for requests the
// server could not decide at all.
func (c *Client) Decide(ctx context.Context, a action.Action, opts ...DecideOption) (action.Decision, error) {
	var d action.Decision
	err := c.do(ctx, request{method: http.MethodPost, path: "/v1/decide", body: &a, header: headerOf(opts), out: &d})
	if err != nil {
		return action.Decision{}, err
	}
	if !d.Effect.Valid() || d.Effect == action.Audit {
		// Fail closed: an answer without a known final effect is not an allow.
		return action.Decision{}, errors.New("client: the server's decision has no known effect")
	}
	return d, nil
}

// Outcome reports what really happened after an allowed action (POST
// /v1/decisions/{id}/outcome): it settles budgets and feeds SLIs. Only the
// agent that asked (or an admin) may report it, once per decision; use
// IdempotencyKey to retry safely.
func (c *Client) Outcome(ctx context.Context, decisionID string, o action.Outcome, opts ...DecideOption) error {
	id, err := segment("decision id", decisionID)
	if err != nil {
		return err
	}
	return c.do(ctx, request{method: http.MethodPost, path: "/v1/decisions/" + id + "/outcome", body: &o, header: headerOf(opts)})
}

// Decision fetches a past decision from the audit log (GET
// /v1/decisions/{id}). An agent sees only its own; another agent's id
// answers CodeNotFound.
func (c *Client) Decision(ctx context.Context, decisionID string) (action.Decision, error) {
	id, err := segment("decision id", decisionID)
	if err != nil {
		return action.Decision{}, err
	}
	var d action.Decision
	if err := c.do(ctx, request{method: http.MethodGet, path: "/v1/decisions/" + id, out: &d}); err != nil {
		return action.Decision{}, err
	}
	return d, nil
}
