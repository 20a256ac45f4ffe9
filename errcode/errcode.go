// Package errcode is the one table of agentgov's stable error codes and of
// what each becomes on every surface: the HTTP status (the /v1 API, the MCP
// gateway's HTTP answers, the model proxy), the JSON-RPC error code (the MCP
// gateway), and the error types of the OpenAI and Anthropic APIs (the model
// proxy). Each surface keeps its own body shape; the code and the status of
// one refusal are the same on all of them.
package errcode

import (
	"errors"
	"fmt"
	"net/http"
)

// Code is a stable error code: clients branch on it, and it never changes
// meaning.
type Code string

// The codes. The table below is the only place that says what each becomes.
const (
	BadRequest           Code = "bad_request"
	Unauthorized         Code = "unauthorized"
	Forbidden            Code = "forbidden"
	NotFound             Code = "not_found"
	MethodNotAllowed     Code = "method_not_allowed"
	Timeout              Code = "request_timeout"
	Conflict             Code = "conflict"
	TooLarge             Code = "too_large"
	UnsupportedMediaType Code = "unsupported_media_type"
	Unprocessable        Code = "unprocessable"
	PolicyDenied         Code = "policy_denied"
	ApprovalRequired     Code = "approval_required"
	ModelNotAllowed      Code = "model_not_allowed"
	BudgetExceeded       Code = "budget_exceeded"
	RateLimited          Code = "rate_limited"
	SessionLimit         Code = "session_limit"
	Internal             Code = "internal"
	DecisionFailed       Code = "decision_failed"
	Unavailable          Code = "unavailable"
	UpstreamUnreachable  Code = "upstream_unreachable"
	UpstreamUnconfigured Code = "upstream_not_configured"
	CircuitOpen          Code = "circuit_open"
)

// Header carries the code of every error answer on every surface, beside
// the body each surface shapes its own way (the Anthropic API's, for one,
// has no room for it).
const Header = "X-Agentgov-Error-Code"

// JSON-RPC error codes. The first are JSON-RPC 2.0's own; Refused is the
// MCP gateway's for a request agentgov refused (its data carries the code).
const (
	RPCParseError     int64 = -32700
	RPCInvalidRequest int64 = -32600
	RPCInvalidParams  int64 = -32602
	RPCInternal       int64 = -32603
	RPCRefused        int64 = -32001
	// RPCA2ARefused is Refused on the A2A gateway, where the protocol
	// itself gives -32001 to -32009 their own meanings (-32001 is "task
	// not found").
	RPCA2ARefused int64 = -32050
)

// entry is what one code becomes on each surface.
type entry struct {
	status    int
	rpc       int64
	openAI    string // error.type of the OpenAI API
	anthropic string // error.type of the Anthropic API
	retry     bool   // whether an SDK should retry by itself (x-should-retry)
	meaning   string
}

var table = map[Code]entry{
	BadRequest:           {http.StatusBadRequest, RPCInvalidRequest, "invalid_request_error", "invalid_request_error", false, "the request is malformed or names something invalid; the message names the field"},
	Unauthorized:         {http.StatusUnauthorized, RPCRefused, "invalid_request_error", "authentication_error", false, "no credential, or one the server does not know or refuses (the body's `reason` says why)"},
	Forbidden:            {http.StatusForbidden, RPCRefused, "permission_error", "permission_error", false, "a known token whose role may not do this, or a request that claims another identity"},
	NotFound:             {http.StatusNotFound, RPCInvalidRequest, "invalid_request_error", "not_found_error", false, "no such endpoint or object (or one the caller may not see)"},
	MethodNotAllowed:     {http.StatusMethodNotAllowed, RPCInvalidRequest, "invalid_request_error", "invalid_request_error", false, "the path exists but not with this method; `Allow` lists those it takes"},
	Timeout:              {http.StatusRequestTimeout, RPCInvalidRequest, "invalid_request_error", "invalid_request_error", false, "the request body did not arrive in time"},
	Conflict:             {http.StatusConflict, RPCInvalidRequest, "invalid_request_error", "invalid_request_error", false, "the request conflicts with the state (already exists, already decided, not enabled)"},
	TooLarge:             {http.StatusRequestEntityTooLarge, RPCInvalidRequest, "invalid_request_error", "request_too_large", false, "the request body is over the limit"},
	UnsupportedMediaType: {http.StatusUnsupportedMediaType, RPCInvalidRequest, "invalid_request_error", "invalid_request_error", false, "the body is not `application/json`"},
	Unprocessable:        {http.StatusUnprocessableEntity, RPCInvalidRequest, "invalid_request_error", "invalid_request_error", false, "well-formed but refused: a policy set with errors, an `Idempotency-Key` reused with another request"},
	PolicyDenied:         {http.StatusForbidden, RPCRefused, "permission_error", "permission_error", false, "a policy, a kill switch or a session state denied the call"},
	ApprovalRequired:     {http.StatusForbidden, RPCRefused, "permission_error", "permission_error", false, "the call needs a human's approval; the message names the ticket"},
	ModelNotAllowed:      {http.StatusForbidden, RPCRefused, "permission_error", "permission_error", false, "the model is not in the model catalogue, and unknown models are denied"},
	BudgetExceeded:       {http.StatusTooManyRequests, RPCRefused, "insufficient_quota", "rate_limit_error", false, "a budget refused the call"},
	RateLimited:          {http.StatusTooManyRequests, RPCRefused, "rate_limit_error", "rate_limit_error", false, "a rate limit refused the call"},
	SessionLimit:         {http.StatusTooManyRequests, RPCRefused, "rate_limit_error", "rate_limit_error", false, "the agent holds as many MCP sessions as it may"},
	Internal:             {http.StatusInternalServerError, RPCInternal, "server_error", "api_error", true, "the server failed; the log says why"},
	DecisionFailed:       {http.StatusInternalServerError, RPCInternal, "server_error", "api_error", true, "the call could not be decided, so it was not made"},
	Unavailable:          {http.StatusServiceUnavailable, RPCInternal, "server_error", "api_error", true, "a store or the audit log cannot be written now; nothing was changed"},
	UpstreamUnreachable:  {http.StatusBadGateway, RPCInternal, "server_error", "api_error", true, "the upstream could not be reached, or its answer was cut short or too large"},
	UpstreamUnconfigured: {http.StatusServiceUnavailable, RPCInternal, "server_error", "api_error", true, "the upstream the call needs has no key or is not configured"},
	// Not retried by the client itself: the point of an open circuit is
	// that nobody hammers a failing upstream.
	CircuitOpen: {http.StatusServiceUnavailable, RPCRefused, "server_error", "api_error", false, "a circuit breaker guarding the tool, server or model is open: calls fail fast until it lets probes through"},
}

func lookup(c Code) entry {
	if e, ok := table[c]; ok {
		return e
	}
	return table[Internal]
}

// Known reports whether c is in the table.
func (c Code) Known() bool { _, ok := table[c]; return ok }

// Status is the HTTP status of c; an unknown code is a 500.
func (c Code) Status() int { return lookup(c).status }

// RPC is the JSON-RPC error code of c.
func (c Code) RPC() int64 { return lookup(c).rpc }

// A2ARPC is the JSON-RPC error code of c on the A2A gateway: RPC, except
// that a refusal takes RPCA2ARefused.
func (c Code) A2ARPC() int64 {
	if r := c.RPC(); r != RPCRefused {
		return r
	}
	return RPCA2ARefused
}

// OpenAIType is the OpenAI API's error.type for c, the class its SDKs raise.
func (c Code) OpenAIType() string { return lookup(c).openAI }

// AnthropicType is the Anthropic API's error.type for c.
func (c Code) AnthropicType() string { return lookup(c).anthropic }

// Retryable says whether a client should retry c by itself. A governance
// refusal will be the same a second later; a server or upstream failure
// may not be.
func (c Code) Retryable() bool { return lookup(c).retry }

// Meaning says in a sentence when c is answered, for the docs.
func (c Code) Meaning() string { return lookup(c).meaning }

// Codes lists every code, in the order of the table's declaration.
func Codes() []Code {
	return []Code{BadRequest, Unauthorized, Forbidden, NotFound, MethodNotAllowed, Timeout, Conflict,
		TooLarge, UnsupportedMediaType, Unprocessable, PolicyDenied, ApprovalRequired, ModelNotAllowed,
		BudgetExceeded, RateLimited, SessionLimit, Internal, DecisionFailed, Unavailable,
		UpstreamUnreachable, UpstreamUnconfigured, CircuitOpen}
}

// FromStatus is the code a client reads into an answer that carries none
// (a proxy's page, an empty body): the most general code of that status.
func FromStatus(status int) Code {
	switch status {
	case http.StatusForbidden:
		return Forbidden
	case http.StatusTooManyRequests:
		return RateLimited
	case http.StatusServiceUnavailable:
		return Unavailable
	}
	for _, c := range Codes() {
		if c.Status() == status {
			return c
		}
	}
	if status >= 500 {
		return Internal
	}
	return BadRequest
}

// Error is an error with a stable code. Message is what the client is
// told; Err, the cause, is only logged.
type Error struct {
	Code    Code
	Message string
	// Param names the request field at fault, when one is (OpenAI's
	// error.param).
	Param string
	Err   error
}

func (e *Error) Error() string { return string(e.Code) + ": " + e.Message }
func (e *Error) Unwrap() error { return e.Err }

// New returns an error with code c and message msg.
func New(c Code, msg string) *Error { return &Error{Code: c, Message: msg} }

// Errorf returns an error with code c and a formatted message.
func Errorf(c Code, format string, args ...any) *Error {
	return &Error{Code: c, Message: fmt.Sprintf(format, args...)}
}

// Wrap returns an error with code c that tells the client msg and keeps
// cause for the log.
func Wrap(c Code, msg string, cause error) *Error { return &Error{Code: c, Message: msg, Err: cause} }

// As returns the *Error in err's chain, if there is one.
func As(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

// Of returns the code of err: the code of the *Error in its chain, or
// Internal.
func Of(err error) Code {
	if e, ok := As(err); ok {
		return e.Code
	}
	return Internal
}
