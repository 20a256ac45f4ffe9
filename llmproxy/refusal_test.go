package llmproxy

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"

	"github.com/agentgov/agentgov/models"
)

// recorder keeps what the proxy appends to the audit log.
type recorder struct {
	mu   sync.Mutex
	recs []refusalRecord
	kind []string
}

func (r *recorder) Append(ctx context.Context, kind string, rec any) (uint64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	b, err := json.Marshal(rec)
	if err != nil {
		return 0, err
	}
	var rr refusalRecord
	if err := json.Unmarshal(b, &rr); err != nil {
		return 0, err
	}
	r.recs = append(r.recs, rr)
	r.kind = append(r.kind, kind)
	return uint64(len(r.recs)), nil
}

// A call the proxy refuses before it can be decided is audited as the MCP
// gateway audits the calls it refuses itself: who tried which model, why
// it was refused, and never a secret the caller put in the model's name.
func TestRefusalsBeforeADecisionAreAudited(t *testing.T) {
	rec := &recorder{}
	r := newRig(t, func(c *Config) {
		c.Recorder = rec
		c.Getenv = testEnv(map[string]string{"GEMINI_API_KEY": ""})
	})
	secret := "AKIAIOSFODNN7EXAMPLE"
	for _, tc := range []struct {
		path, body, code string
		status           int
	}{
		{"/llm/v1/chat/completions", `{"model":"no such model, key ` + secret + `","messages":[{"role":"user","content":"hi"}]}`, "model_not_allowed", 403},
		{"/llm/v1/chat/completions", `{"model":"claude-haiku-4-5","messages":[{"role":"user","content":"hi"}]}`, "bad_request", 400},
		{"/llm/anthropic/v1/messages", `{"model":"gpt-4o-mini","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`, "bad_request", 400},
		{"/llm/v1/chat/completions", `{"model":"gemini-2.5-flash","messages":[{"role":"user","content":"hi"}]}`, "upstream_not_configured", 503},
	} {
		res := r.do("POST", tc.path, tc.body, "X-Agentgov-Session", "s-1")
		if res.status != tc.status || res.header.Get("X-Agentgov-Error-Code") != tc.code {
			t.Errorf("%s %s: %d %s", tc.path, tc.body, res.status, res.body)
		}
	}
	if n := len(r.dec.decided()); n != 0 {
		t.Errorf("%d calls reached the decider", n)
	}
	if len(r.up.seen()) != 0 {
		t.Error("a refused call reached the upstream")
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.recs) != 4 {
		t.Fatalf("%d refusals audited, want 4: %+v", len(rec.recs), rec.recs)
	}
	want := []string{"model_not_allowed", "bad_request", "bad_request", "upstream_not_configured"}
	for i, rr := range rec.recs {
		if rec.kind[i] != "llm.refusal" || string(rr.Code) != want[i] || rr.Effect != "deny" || rr.Agent.ID != "researcher-1" ||
			rr.Principal.Org != "acme" || rr.Session != "s-1" || rr.Reason == "" || rr.Model == "" {
			t.Errorf("record %d (%s): %+v", i, rec.kind[i], rr)
		}
	}
	if b, _ := json.Marshal(rec.recs); strings.Contains(string(b), secret) {
		t.Errorf("the secret in the model's name reached the audit log: %s", b)
	}
}

// /llm/v1/models lists only what a call can reach: models of a provider
// with no key are left out, and asked for by name they are not found.
func TestModelsListOnlyProvidersWithAKey(t *testing.T) {
	r := newRigWith(t, models.Shipped(), func(c *Config) { c.Getenv = testEnv(map[string]string{"GEMINI_API_KEY": ""}) })
	res := r.do("GET", "/llm/v1/models", "")
	var list struct {
		Data []modelObject `json:"data"`
	}
	if res.status != 200 || json.Unmarshal(res.body, &list) != nil {
		t.Fatalf("%d %s", res.status, res.body)
	}
	owners := map[string]int{}
	for _, m := range list.Data {
		owners[m.OwnedBy]++
	}
	if owners["openai"] == 0 || owners["google"] != 0 || len(owners) != 1 {
		t.Errorf("owners %v: want OpenAI's models only", owners)
	}
	if res := r.do("GET", "/llm/v1/models/gemini-2.5-flash", ""); res.status != 404 || !strings.Contains(string(res.body), "GEMINI_API_KEY") {
		t.Errorf("a model without a key: %d %s", res.status, res.body)
	}
	// With no provider at all the list is empty, not null.
	r = newRigWith(t, models.Shipped(), func(c *Config) { c.Getenv = func(string) string { return "" } })
	if res := r.do("GET", "/llm/v1/models", ""); res.status != 200 || !strings.Contains(string(res.body), `"data":[]`) {
		t.Errorf("no provider: %d %s", res.status, res.body)
	}
}
