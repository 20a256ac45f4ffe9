package llmproxy

import (
	"context"
	"net/http"
	"time"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/detect"
	"github.com/agentgov/agentgov/errcode"
)

// refusalRecord is the audit record of a call refused before it could be
// decided. What came from the caller (the model, the session, the reason
// that quotes them) is masked as the engine masks its decision records.
type refusalRecord struct {
	Endpoint  string           `json:"endpoint"`
	Agent     action.Agent     `json:"agent"`
	Principal action.Principal `json:"principal,omitzero"`
	Session   string           `json:"session,omitempty"`
	Model     string           `json:"model"`
	Effect    action.Effect    `json:"effect"`
	Code      errcode.Code     `json:"code"`
	Reason    string           `json:"reason"`
}

// auditTimeout bounds the append of a refusal, detached from the caller.
const auditTimeout = 10 * time.Second

// refuseUndecided answers a call that cannot be decided (no route to a
// model, or no model to route to) and audits it: a call that never left is
// still one an agent tried, and an operator looking for what an agent
// attempted must find it in the log.
func (p *proxy) refuseUndecided(w http.ResponseWriter, r *http.Request, d dialect, agent action.Agent, principal action.Principal, model string, f *failure) {
	if p.obs != nil {
		reason := string(f.Code)
		if f.Code == errcode.BadRequest {
			reason = "wrong_route"
		}
		p.obs.Refused("model_proxy", reason)
	}
	if p.rec != nil {
		rec := refusalRecord{
			Endpoint: r.URL.Path, Agent: agent, Principal: principal,
			// Masked before it is cut, so that no secret is cut where the
			// detectors would no longer know it.
			Session: truncate(maskText(r.Header.Get(HeaderSession)), 256),
			Model:   truncate(maskText(model), 256), Effect: action.Deny, Code: f.Code,
			Reason: truncate(maskText(f.Message), 1024),
		}
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), auditTimeout)
		if _, err := p.rec.Append(ctx, "llm.refusal", rec); err != nil {
			p.log.Error("model call refusal not audited", "agent", agent.ID, "code", string(f.Code), "err", err)
		}
		cancel()
	}
	writeError(w, d, f)
}

func maskText(s string) string {
	if s == "" {
		return s
	}
	return detect.Mask(s)
}

// truncate cuts s to at most n bytes, on a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}
