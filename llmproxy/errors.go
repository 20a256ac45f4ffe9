package llmproxy

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/agentgov/agentgov/errcode"
)

// dialect is the wire format a caller speaks, and so the shape its errors
// must take for its SDK to raise the usual exception.
type dialect int

const (
	openAI dialect = iota
	anthropic
)

// failure is a refusal answered by the proxy itself. Its code is one of
// package errcode's, which says what it becomes in each provider's shape;
// Param names the request field at fault, for OpenAI's error.param.
type failure = errcode.Error

func fail(code errcode.Code, msg string) *failure { return &failure{Code: code, Message: msg} }

func badRequest(param, msg string) *failure {
	return &failure{Code: errcode.BadRequest, Param: param, Message: msg}
}

// identifyFailure is the refusal of a caller whose credential Identify
// refused: 403 for a known token that is not an agent's, else 401.
func identifyFailure(err error) *failure {
	code, msg := errcode.Unauthorized, err.Error()
	if e, ok := errcode.As(err); ok {
		code, msg = e.Code, e.Message
	}
	return fail(code, "use your agentgov agent token as the API key: "+msg)
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

// writeError answers f in the caller's dialect, with the status and error
// type package errcode gives its code, and x-should-retry, so that SDKs do
// not retry a refusal by themselves (which would also spend a budget).
func writeError(w http.ResponseWriter, d dialect, f *failure) {
	var body []byte
	switch d {
	case anthropic:
		var e anthropicError
		e.Type = "error"
		e.Error.Type = f.Code.AnthropicType()
		e.Error.Message = f.Message
		body, _ = json.Marshal(e)
	default:
		var e openAIError
		e.Error.Message = f.Message
		e.Error.Type = f.Code.OpenAIType()
		e.Error.Code = string(f.Code)
		if f.Param != "" {
			e.Error.Param = &f.Param
		}
		body, _ = json.Marshal(e)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("X-Should-Retry", strconv.FormatBool(f.Code.Retryable()))
	h.Set(errcode.Header, string(f.Code))
	w.WriteHeader(f.Code.Status())
	w.Write(body)
}
