package llmproxy

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
)

// modelObject is OpenAI's model object.
type modelObject struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

// openAIModels are the catalogue models callable at /llm/v1: OpenAI's own
// and Google's (through Gemini's OpenAI-compatible endpoint).
func (p *proxy) openAIModels() []modelObject {
	var out []modelObject
	for _, m := range p.cat.Models() {
		if m.Provider == "openai" || m.Provider == "google" {
			out = append(out, modelObject{ID: m.Name, Object: "model", OwnedBy: m.Provider})
		}
	}
	return out
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
	if !ok || (m.Provider != "openai" && m.Provider != "google") {
		writeError(w, openAI, &failure{code: codeNotFound, param: "model", msg: fmt.Sprintf("model %q is not in the model catalogue", name)})
		return
	}
	writeJSON(w, modelObject{ID: m.Name, Object: "model", OwnedBy: m.Provider})
}

// getAllowed checks the method and the caller's identity; listing models is
// not a model call, so it is not decided, but it is not anonymous either.
func (p *proxy) getAllowed(w http.ResponseWriter, r *http.Request) bool {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		writeError(w, openAI, &failure{code: codeMethod, msg: fmt.Sprintf("%s takes GET, not %s", r.URL.Path, r.Method)})
		return false
	}
	if _, _, err := p.identify(r); err != nil {
		writeError(w, openAI, &failure{code: codeUnauthorized, msg: "use your agentgov agent token as the API key: " + err.Error()})
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
