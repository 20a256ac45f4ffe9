package llmproxy

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// dialect is the wire format a caller speaks, and so the shape its errors
// must take for its SDK to raise the usual exception.
type dialect int

const (
	openAI dialect = iota
	anthropic
)

// code classifies a refusal. This file is the one place that turns a code into
// an HTTP status and each provider's error type.
type code string

const (
	codeBadRequest     code = "invalid_request"
	codeTooLarge       code = "request_too_large"
	codeUnauthorized   code = "unauthenticated"
	codeNotFound       code = "not_found"
	codeMethod         code = "method_not_allowed"
	codePolicyDenied   code = "policy_denied"
	codeApproval       code = "approval_required"
	codeModelDenied    code = "model_not_allowed"
	codeBudget         code = "budget_exceeded"
	codeRateLimited    code = "rate_limited"
	codeDecisionFailed code = "decision_failed"
	codeUnreachable    code = "upstream_unreachable"
	codeNoUpstream     code = "upstream_not_configured"
)

func (c code) status() int {
	switch c {
	case codeBadRequest:
		return http.StatusBadRequest
	case codeTooLarge:
		return http.StatusRequestEntityTooLarge
	case codeUnauthorized:
		return http.StatusUnauthorized
	case codeNotFound:
		return http.StatusNotFound
	case codeMethod:
		return http.StatusMethodNotAllowed
	case codePolicyDenied, codeApproval, codeModelDenied:
		return http.StatusForbidden
	case codeBudget, codeRateLimited:
		return http.StatusTooManyRequests
	case codeUnreachable:
		return http.StatusBadGateway
	case codeNoUpstream:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// openAIType is the error.type OpenAI itself uses for the class.
func (c code) openAIType() string {
	switch c {
	case codeBadRequest, codeTooLarge, codeNotFound, codeMethod, codeUnauthorized:
		return "invalid_request_error"
	case codePolicyDenied, codeApproval, codeModelDenied:
		return "permission_error"
	case codeBudget:
		return "insufficient_quota"
	case codeRateLimited:
		return "rate_limit_error"
	}
	return "server_error"
}

// anthropicType is the error.type of the Anthropic API for the class.
func (c code) anthropicType() string {
	switch c {
	case codeBadRequest, codeMethod:
		return "invalid_request_error"
	case codeTooLarge:
		return "request_too_large"
	case codeUnauthorized:
		return "authentication_error"
	case codeNotFound:
		return "not_found_error"
	case codePolicyDenied, codeApproval, codeModelDenied:
		return "permission_error"
	case codeBudget, codeRateLimited:
		return "rate_limit_error"
	}
	return "api_error"
}

// retryable says whether an SDK should retry by itself. A governance refusal
// will be the same a second later, so SDKs are told not to (x-should-retry),
// which also spares a budget the retries.
func (c code) retryable() bool {
	switch c {
	case codeDecisionFailed, codeUnreachable, codeNoUpstream:
		return true
	}
	return false
}

// failure is a refusal answered by the proxy itself.
type failure struct {
	code  code
	msg   string
	param string // the request field at fault, for OpenAI's error.param
}

func (f *failure) Error() string { return string(f.code) + ": " + f.msg }

func badRequest(param, msg string) *failure {
	return &failure{code: codeBadRequest, param: param, msg: msg}
}

type openAIError struct {
	Error struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    string  `json:"code"`
	} `json:"error"`
}

type anthropicError struct {
	Type  string `json:"type"`
	Error struct {
		Type    string `json:"type"`
		Message string `json:"message"`
	} `json:"error"`
}

func writeError(w http.ResponseWriter, d dialect, f *failure) {
	var body []byte
	switch d {
	case anthropic:
		var e anthropicError
		e.Type = "error"
		e.Error.Type = f.code.anthropicType()
		e.Error.Message = f.msg
		body, _ = json.Marshal(e)
	default:
		var e openAIError
		e.Error.Message = f.msg
		e.Error.Type = f.code.openAIType()
		e.Error.Code = string(f.code)
		if f.param != "" {
			e.Error.Param = &f.param
		}
		body, _ = json.Marshal(e)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("X-Should-Retry", strconv.FormatBool(f.code.retryable()))
	w.WriteHeader(f.code.status())
	w.Write(body)
}
