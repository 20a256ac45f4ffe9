package server

import (
	"context"
	"crypto/rand"
	"log/slog"
	"net/http"
	"regexp"
	"time"

	"github.com/agentgov/agentgov/errcode"
)

// Headers on every answer.
const (
	// HeaderRequestID names a request in its answer and in the access log.
	// A caller's own well-formed id is kept, so that its logs and the
	// server's meet.
	HeaderRequestID = "X-Request-Id"
	// HeaderDecision carries the id of the decision an answer is about
	// (/v1/decide, the model proxy).
	HeaderDecision = "X-Agentgov-Decision"
)

var requestIDPattern = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

// reqInfo is what the access log says of a request beyond what net/http
// knows: filled in by the handlers as they serve it, on its goroutine.
type reqInfo struct {
	agent  string // the agent an agent token acts as
	caller string // the token's name
	code   errcode.Code
}

type infoKey struct{}

func infoOf(ctx context.Context) *reqInfo {
	i, _ := ctx.Value(infoKey{}).(*reqInfo)
	return i
}

// quiet are the paths probed by machines every few seconds; their lines
// are logged at debug level so that they do not drown the rest.
var quiet = map[string]bool{"/healthz": true, "/readyz": true, "/metrics": true}

// accessLog writes one line per request once it is answered: method, path,
// status, duration, the agent the credential names, the decision id, the
// error code of a refusal, and the request id.
func (s *Server) accessLog(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := r.Header.Get(HeaderRequestID)
		if !requestIDPattern.MatchString(id) {
			id = "req_" + rand.Text()[:20]
		}
		w.Header().Set(HeaderRequestID, id)
		info := &reqInfo{}
		sw := &statusWriter{ResponseWriter: w}
		ctx := context.WithValue(r.Context(), infoKey{}, info)
		h.ServeHTTP(sw, r.WithContext(ctx))

		level := slog.LevelInfo
		if quiet[r.URL.Path] && sw.status < 500 {
			level = slog.LevelDebug
		}
		if !s.log.Enabled(ctx, level) {
			return
		}
		status := sw.status
		if status == 0 {
			status = http.StatusOK
		}
		attrs := make([]slog.Attr, 0, 9)
		attrs = append(attrs,
			slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Int("status", status),
			slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000),
			slog.String("request_id", id))
		if info.agent != "" {
			attrs = append(attrs, slog.String("agent", info.agent))
		}
		if info.caller != "" && info.caller != info.agent {
			attrs = append(attrs, slog.String("caller", info.caller))
		}
		if d := sw.Header().Get(HeaderDecision); d != "" {
			attrs = append(attrs, slog.String("decision", d))
		}
		if info.code != "" {
			attrs = append(attrs, slog.String("code", string(info.code)))
		}
		s.log.LogAttrs(ctx, level, "request", attrs...)
	})
}

// statusWriter remembers the status of an answer. It unwraps for
// http.ResponseController, so that flushing a stream and the body's read
// deadline reach the connection.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
