package server

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/approval"
	"github.com/agentgov/agentgov/budget"
	"github.com/agentgov/agentgov/killswitch"
	"github.com/agentgov/agentgov/session"
)

// apiError is an error with a stable code. Its message is for the client;
// the wrapped cause, if any, is only logged.
type apiError struct {
	code  string
	msg   string
	cause error
}

func (e *apiError) Error() string { return e.code + ": " + e.msg }
func (e *apiError) Unwrap() error { return e.cause }

func errorf(code, msg string) *apiError { return &apiError{code: code, msg: msg} }

// Error codes. statusOf is the one place that maps them to HTTP statuses.
const (
	codeBadRequest    = "bad_request"
	codeUnauthorized  = "unauthorized"
	codeForbidden     = "forbidden"
	codeNotFound      = "not_found"
	codeConflict      = "conflict"
	codeTooLarge      = "too_large"
	codeUnprocessable = "unprocessable"
	codeUnavailable   = "unavailable"
	codeInternal      = "internal"
)

func statusOf(code string) int {
	switch code {
	case codeBadRequest:
		return http.StatusBadRequest
	case codeUnauthorized:
		return http.StatusUnauthorized
	case codeForbidden:
		return http.StatusForbidden
	case codeNotFound:
		return http.StatusNotFound
	case codeConflict:
		return http.StatusConflict
	case codeTooLarge:
		return http.StatusRequestEntityTooLarge
	case codeUnprocessable:
		return http.StatusUnprocessableEntity
	case codeUnavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// classify turns any error from the packages below into an apiError.
func classify(err error) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	var fe *action.FieldError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return &apiError{code: codeTooLarge, msg: "request body too large", cause: err}
	case errors.As(err, &fe):
		return &apiError{code: codeBadRequest, msg: fe.Error(), cause: err}
	case errors.Is(err, session.ErrNotFound), errors.Is(err, killswitch.ErrNotFound), errors.Is(err, approval.ErrNotFound), errors.Is(err, budget.ErrNotFound):
		return &apiError{code: codeNotFound, msg: err.Error(), cause: err}
	case errors.Is(err, session.ErrConflict), errors.Is(err, killswitch.ErrConflict), errors.Is(err, approval.ErrConflict):
		return &apiError{code: codeConflict, msg: err.Error(), cause: err}
	case errors.Is(err, session.ErrInvalid), errors.Is(err, killswitch.ErrInvalid), errors.Is(err, approval.ErrInvalid), errors.Is(err, budget.ErrInvalid):
		return &apiError{code: codeBadRequest, msg: err.Error(), cause: err}
	}
	return &apiError{code: codeInternal, msg: "internal error", cause: err}
}

type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func writeError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	ae := classify(err)
	status := statusOf(ae.code)
	if status >= 500 {
		log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	var b errorBody
	b.Error.Code, b.Error.Message = ae.code, ae.msg
	writeJSON(w, status, b)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
