package llmproxy

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/errcode"
)

// FaultInjector decides which allowed model calls get a chaos fault (the
// server adapts *chaos.Injector). Inject has written the fault to the
// audit log when it returns one.
type FaultInjector interface {
	Inject(ctx context.Context, c ChaosCall) (ChaosFault, bool)
}

// ChaosCall is an allowed model call about to be forwarded.
type ChaosCall struct {
	Model, Agent, Session string
	// Decision is the id of the decision that allowed it.
	Decision string
}

// ChaosFault is what the proxy acts out on one call.
type ChaosFault struct {
	// Experiment names the chaos experiment that injected it.
	Experiment string
	// Kind is FaultLatency, FaultError or FaultDrop.
	Kind string
	// Wait comes before the call is forwarded (latency) or fails.
	Wait time.Duration
	// Message and Code (the HTTP status) are an error fault's.
	Message string
	Code    int
}

// The kinds of ChaosFault.
const (
	FaultLatency = "latency"
	FaultError   = "error"
	FaultDrop    = "drop"
)

// HeaderChaos names, on an answer, the chaos experiment that injected a
// fault into the call.
const HeaderChaos = "X-Agentgov-Chaos"

// injectFault acts out the chaos fault an allowed call gets, if any, as
// the provider failing would. It reports whether the call is answered; a
// latency fault only waits, and the call is then forwarded.
func (p *proxy) injectFault(w http.ResponseWriter, r *http.Request, d dialect, up *upstream, s *settlement, a *action.Action, dec action.Decision) bool {
	f, ok := p.chaos.Inject(r.Context(), ChaosCall{Model: a.Model, Agent: a.Agent.ID, Session: a.Session, Decision: dec.ID.String()})
	if !ok {
		return false
	}
	w.Header().Set(HeaderChaos, f.Experiment)
	if f.Wait > 0 {
		t := time.NewTimer(f.Wait)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			s.settle("error", "caller went away before the upstream answered", nil, "cancelled")
			return true
		}
	}
	note := fmt.Sprintf("chaos experiment %s", f.Experiment)
	switch f.Kind {
	case FaultLatency:
		return false
	case FaultError:
		// As settleUpstreamError: a provider does not bill a call it
		// failed.
		s.record(action.Outcome{Status: "error", Error: fmt.Sprintf("upstream answered %d (%s)", f.Code, note)}, fmt.Sprintf("http_%dxx", f.Code/100))
		writeProviderError(w, d, f.Code, f.Message)
	default:
		// Unlike a real drop, nothing reached the provider: nothing to
		// charge.
		s.record(action.Outcome{Status: "error", Error: "upstream unreachable: the connection was dropped by " + note}, "unreachable")
		writeError(w, d, fail(errcode.UpstreamUnreachable, fmt.Sprintf("cannot reach the %s upstream (%s)", up.name, up.host)))
	}
	return true
}

// writeProviderError answers as the provider does when it fails: its
// status and its own error body, which SDKs treat as a server error (and
// may retry, as they retry the provider's).
func writeProviderError(w http.ResponseWriter, d dialect, status int, msg string) {
	var body []byte
	switch d {
	case anthropic:
		typ := "api_error"
		switch status {
		case 429:
			typ = "rate_limit_error"
		case 529:
			typ = "overloaded_error"
		}
		body, _ = json.Marshal(map[string]any{"type": "error", "error": map[string]any{"type": typ, "message": msg}})
	default:
		e := map[string]any{"message": msg, "type": "server_error", "param": nil, "code": nil}
		if status == 429 {
			e["type"], e["code"] = "requests", "rate_limit_exceeded"
		}
		body, _ = json.Marshal(map[string]any{"error": e})
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	w.Write(body)
}
