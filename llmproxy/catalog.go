package llmproxy

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"

	"github.com/agentgov/agentgov/errcode"
)

// modelObject is OpenAI's model object.
type modelObject struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

// openAIModels are the catalogue models callable at /llm/v1: OpenAI's own
// and Google's (through Gemini's OpenAI-compatible endpoint), of providers
// this proxy has a key for. A model listed is one a call can reach.
func (p *proxy) openAIModels() []modelObject {
	out := []modelObject{}
	for _, m := range p.cat.Models() {
		if p.callable(m.Provider) {
			out = append(out, modelObject{ID: m.Name, Object: "model", OwnedBy: m.Provider})
		}
	}
	return out
}

// callable says whether models of provider are served at /llm/v1: by an
// upstream that has its key.
func (p *proxy) callable(provider string) bool {
	if provider != "openai" && provider != "google" {
		return false
	}
	up := p.upstreams[provider]
	return up != nil && up.missing == ""
}

func (p *proxy) listModels(w http.ResponseWriter, r *http.Request) {
	if !p.getAllowed(w, r) {
		return
	}
	writeJSON(w, struct {
		Object string        `json:"object"`
		Data   []modelObject `json:"data"`
	}{"list", p.openAIModels()})
}

func (p *proxy) getModel(w http.ResponseWriter, r *http.Request, name string) {
	if !p.getAllowed(w, r) {
		return
	}
	m, ok := p.cat.Lookup(name)
	switch {
	case !ok || (m.Provider != "openai" && m.Provider != "google"):
		writeError(w, openAI, &failure{Code: errcode.NotFound, Param: "model", Message: fmt.Sprintf("model %q is not in the model catalogue of /llm/v1", name)})
		return
	case !p.callable(m.Provider):
		writeError(w, openAI, &failure{Code: errcode.NotFound, Param: "model", Message: fmt.Sprintf("model %q is not served here: %s", name, p.upstreams[m.Provider].missing)})
		return
	}
	writeJSON(w, modelObject{ID: m.Name, Object: "model", OwnedBy: m.Provider})
}

// getAllowed checks the method and the caller's identity; listing models is
// not a model call, so it is not decided, but it is not anonymous either.
func (p *proxy) getAllowed(w http.ResponseWriter, r *http.Request) bool {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		writeError(w, openAI, fail(errcode.MethodNotAllowed, fmt.Sprintf("%s takes GET, not %s", r.URL.Path, r.Method)))
		return false
	}
	if _, _, err := p.identify(r); err != nil {
		writeError(w, openAI, identifyFailure(err))
		return false
	}
	return true
}

func writeJSON(w http.ResponseWriter, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.Write(b)
}
