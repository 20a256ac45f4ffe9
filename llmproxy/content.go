package llmproxy

import (
	"bytes"
	"cmp"
	"encoding/json"
	"slices"
	"strings"
)

// requestText is the text of a whole chat or messages request, as content
// policies see it at pre_model_call (DESIGN §2): the separate system prompt
// (Anthropic), every message of every role in order (its text and text
// parts, refusals, the arguments of its tool calls, tool results, text
// documents, thinking), then the tool definitions, the response schema, a
// predicted output and every other top-level field but the controls.
// Pieces are joined by newlines.
//
// Message content is walked rather than read field by field, so that a
// block type the proxy does not know still shows its text; what is skipped
// is what a model does not read as text (roles, ids, types, signatures) or
// cannot be read as text (images, audio and files given inline). URLs the
// provider fetches are kept: whoever serves one reads it.
func requestText(o object) (string, *failure) {
	var t texts
	for _, name := range []string{"system", "messages"} {
		raw, ok := o[name]
		if !ok || string(raw) == "null" {
			continue
		}
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			return "", badRequest(name, name+": "+err.Error())
		}
		t.walk(v, "")
	}
	// Tool definitions and schemas are given whole, keys and all: a
	// parameter's name instructs the model as much as its description.
	for _, name := range []string{"tools", "functions", "response_format"} {
		if raw, ok := o[name]; ok && string(raw) != "null" {
			t.raw(raw)
		}
	}
	if raw, ok := o["prediction"]; ok {
		var v any
		if json.Unmarshal(raw, &v) == nil {
			t.walk(v, "")
		}
	}
	t.others(o, conversationFields)
	return t.b.String(), nil
}

// conversationFields are the top-level fields requestText reads itself.
var conversationFields = map[string]bool{
	"system": true, "messages": true, "tools": true, "functions": true, "response_format": true, "prediction": true,
}

// controls are top-level fields that hold no text a model reads or a
// provider acts on as text: the model's name, ids, modes and options whose
// values are enums. Numbers, booleans and nulls are skipped wherever they
// are.
var controls = map[string]bool{
	"model": true, "stream": true, "stream_options": true, "thinking": true, "reasoning_effort": true,
	"verbosity": true, "service_tier": true, "modalities": true, "audio": true, "logit_bias": true,
	"metadata": true, "user": true, "safety_identifier": true, "prompt_cache_key": true,
	"encoding_format": true,
}

// others adds every other top-level field, whole, as JSON: a field the
// proxy does not know may still reach the model (a server that renders a
// chat_template or documents into the prompt, tool_choice, Anthropic's
// mcp_servers), so it is decided like the rest rather than forwarded
// unseen.
func (t *texts) others(o object, read map[string]bool) {
	keys := make([]string, 0, len(o))
	for k := range o {
		if !read[k] && !controls[k] {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		raw := bytes.TrimSpace(o[k])
		switch {
		case len(raw) == 0:
		case raw[0] == '"':
			var s string
			if json.Unmarshal(raw, &s) == nil {
				t.add(s)
			}
		case raw[0] == '{' || raw[0] == '[':
			t.raw(raw)
		}
	}
}

type texts struct{ b strings.Builder }

func (t *texts) add(s string) {
	if s == "" {
		return
	}
	if t.b.Len() > 0 {
		t.b.WriteByte('\n')
	}
	t.b.WriteString(s)
}

// raw adds a JSON value as compact JSON text.
func (t *texts) raw(raw json.RawMessage) {
	var b bytes.Buffer
	if json.Compact(&b, raw) == nil {
		t.add(b.String())
	}
}

// notText are the keys whose string values a model does not read as text.
var notText = map[string]bool{
	"role": true, "type": true, "id": true, "tool_call_id": true, "tool_use_id": true,
	"signature": true, "cache_control": true, "media_type": true, "mime_type": true,
	"detail": true, "format": true, "file_data": true, "file_id": true,
	"input_audio": true, "audio": true, "encrypted_content": true,
}

// walk adds every string in v a model reads as text. key is the key v sits
// under in its parent object.
func (t *texts) walk(v any, key string) {
	switch x := v.(type) {
	case string:
		t.add(x)
	case []any:
		for _, e := range x {
			t.walk(e, key)
		}
	case map[string]any:
		typ, _ := x["type"].(string)
		for _, k := range sortedKeys(x) {
			e := x[k]
			switch {
			case notText[k]:
			case k == "url" || k == "image_url":
				// A URL the provider fetches is a message to whoever
				// serves it; inline data: URLs are base64 payloads.
				if u, ok := e.(string); ok {
					if !isDataURL(u) {
						t.add(u)
					}
				} else {
					t.walk(e, k)
				}
			case k == "data":
				// Inline data is base64 (an image, a PDF, redacted
				// thinking), except a plain-text document's source.
				if typ == "text" {
					t.walk(e, k)
				}
			case k == "input" && typ == "tool_use":
				// A tool call's input, keys and all, as for tool definitions.
				if b, err := json.Marshal(e); err == nil {
					t.add(string(b))
				}
			default:
				t.walk(e, k)
			}
		}
	}
}

// sortedKeys orders an object's keys so that the text of a request is the
// same each time it is read, with "text" and "content" first as a person
// would read them.
func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	rank := func(k string) int {
		switch k {
		case "name":
			return 0
		case "text", "content", "thinking", "refusal":
			return 1
		}
		return 2
	}
	slices.SortFunc(keys, func(a, b string) int {
		if c := cmp.Compare(rank(a), rank(b)); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	return keys
}

func isDataURL(u string) bool {
	return len(u) >= 5 && strings.EqualFold(u[:5], "data:")
}
