package server

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/approval"
	"github.com/agentgov/agentgov/budget"
	"github.com/agentgov/agentgov/errcode"
	"github.com/agentgov/agentgov/killswitch"
	"github.com/agentgov/agentgov/session"
	"github.com/agentgov/agentgov/trust"
)

// errorf is an error with a stable code whose message is for the client.
// package errcode maps the code to the HTTP status.
func errorf(code errcode.Code, msg string) *errcode.Error { return errcode.New(code, msg) }

// classify turns any error from the packages below into one with a code.
// What an error without one says stays in the log: the client is told
// "internal error" and the request id to find it by.
func classify(err error) *errcode.Error {
	if ae, ok := errcode.As(err); ok {
		return ae
	}
	var fe *action.FieldError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return errcode.Wrap(errcode.TooLarge, "request body too large", err)
	case errors.As(err, &fe):
		return errcode.Wrap(errcode.BadRequest, fe.Error(), err)
	case errors.Is(err, session.ErrNotFound), errors.Is(err, killswitch.ErrNotFound), errors.Is(err, approval.ErrNotFound), errors.Is(err, budget.ErrNotFound):
		return errcode.Wrap(errcode.NotFound, err.Error(), err)
	case errors.Is(err, session.ErrConflict), errors.Is(err, killswitch.ErrConflict), errors.Is(err, approval.ErrConflict), errors.Is(err, trust.ErrConflict):
		return errcode.Wrap(errcode.Conflict, err.Error(), err)
	case errors.Is(err, session.ErrInvalid), errors.Is(err, killswitch.ErrInvalid), errors.Is(err, approval.ErrInvalid), errors.Is(err, budget.ErrInvalid), errors.Is(err, trust.ErrRefused):
		return errcode.Wrap(errcode.BadRequest, err.Error(), err)
	}
	return errcode.Wrap(errcode.Internal, "internal error", err)
}

// errorBody is the shape of every error answer of the API (DESIGN §5).
type errorBody struct {
	Error struct {
		Code    errcode.Code `json:"code"`
		Message string       `json:"message"`
		// Reason says why a credential was refused (expired, audience,
		// replayed, ...), on a 401.
		Reason string `json:"reason,omitempty"`
	} `json:"error"`
}

func writeError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	ae := classify(err)
	status := ae.Code.Status()
	info := infoOf(r.Context())
	if info != nil {
		info.code = ae.Code
	}
	msg := ae.Message
	if status >= 500 {
		id := w.Header().Get(HeaderRequestID)
		log.Error("request failed", "method", r.Method, "path", r.URL.Path, "request_id", id, "code", string(ae.Code), "err", err)
		if ae.Code == errcode.Internal && id != "" {
			msg += " (request " + id + "; the server's log says why)"
		}
	}
	w.Header().Set(errcode.Header, string(ae.Code))
	var b errorBody
	b.Error.Code, b.Error.Message, b.Error.Reason = ae.Code, msg, reasonOf(err)
	writeJSON(w, status, b)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
