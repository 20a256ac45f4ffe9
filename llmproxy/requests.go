package llmproxy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// call is what the proxy needs to know about one model request: enough to
// decide it, route it and price it. Everything else in the body is forwarded
// untouched.
type call struct {
	path    string // below the upstream's base URL
	model   string
	body    []byte // what is sent upstream
	stream  bool
	content string // the last user message, for content policies
	inEst   int64  // prompt tokens, estimated from its size
	outEst  int64  // output tokens: max_tokens, or the configured default
	// clientUsage is whether an OpenAI streaming caller asked for the usage
	// chunk itself; when not, the proxy asks for it and strips it again.
	clientUsage bool
}

type parser func(body []byte, defOut int64) (*call, *failure)

// object is a request body decoded one level deep, so that fields the proxy
// does not read survive untouched.
type object map[string]json.RawMessage

func decodeObject(body []byte) (object, *failure) {
	var o object
	if err := json.Unmarshal(body, &o); err != nil || o == nil {
		msg := "request body must be a JSON object"
		if err != nil {
			msg += ": " + err.Error()
		}
		return nil, badRequest("", msg)
	}
	return o, nil
}

// field decodes one member of o into T. Absent and null both leave ok false.
func field[T any](o object, name string) (v T, ok bool, f *failure) {
	raw, present := o[name]
	if !present || string(raw) == "null" {
		return v, false, nil
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return v, false, badRequest(name, fmt.Sprintf("%s: wrong type: %v", name, jsonTypeProblem(err)))
	}
	return v, true, nil
}

func jsonTypeProblem(err error) string {
	if te, ok := err.(*json.UnmarshalTypeError); ok {
		return fmt.Sprintf("got a JSON %s, want %s", te.Value, te.Type)
	}
	return err.Error()
}

func requireModel(o object) (string, *failure) {
	m, ok, f := field[string](o, "model")
	if f != nil {
		return "", f
	}
	if !ok || strings.TrimSpace(m) == "" {
		return "", badRequest("model", "model: required")
	}
	return m, nil
}

func nonNegative(o object, name string) (int64, bool, *failure) {
	n, ok, f := field[int64](o, name)
	if f != nil {
		return 0, false, f
	}
	if n < 0 {
		return 0, false, badRequest(name, name+": must not be negative")
	}
	return n, ok, nil
}

type message struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

// lastUserText is the text of the last user message: a string content, or the
// text parts of a content array (OpenAI parts and Anthropic blocks alike).
func lastUserText(msgs []message) string {
	for i := len(msgs) - 1; i >= 0; i-- {
		if msgs[i].Role == "user" {
			return contentText(msgs[i].Content)
		}
	}
	return ""
}

func contentText(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if json.Unmarshal(raw, &parts) != nil {
		return ""
	}
	var texts []string
	for _, p := range parts {
		if p.Type == "text" || p.Type == "input_text" {
			texts = append(texts, p.Text)
		}
	}
	return strings.Join(texts, "\n")
}

// estimateTokens is the usual rule of thumb: about four bytes per token.
func estimateTokens(n int) int64 { return int64(n+3) / 4 }

// parseConversation reads what chat and messages requests share: the model,
// a non-empty messages array, and the last user text as the content policies
// see.
func parseConversation(body []byte, path string) (*call, object, *failure) {
	o, f := decodeObject(body)
	if f != nil {
		return nil, nil, f
	}
	c := &call{path: path, body: body, inEst: estimateTokens(len(body))}
	if c.model, f = requireModel(o); f != nil {
		return nil, nil, f
	}
	msgs, ok, f := field[[]message](o, "messages")
	if f != nil {
		return nil, nil, f
	}
	if !ok || len(msgs) == 0 {
		return nil, nil, badRequest("messages", "messages: required, a non-empty array")
	}
	c.content = lastUserText(msgs)
	return c, o, nil
}

// parseChat reads an OpenAI chat completion request.
func parseChat(body []byte, defOut int64) (*call, *failure) {
	c, o, f := parseConversation(body, "/chat/completions")
	if f != nil {
		return nil, f
	}
	if c.stream, _, f = field[bool](o, "stream"); f != nil {
		return nil, f
	}
	c.outEst = defOut
	for _, name := range []string{"max_tokens", "max_completion_tokens"} {
		n, ok, f := nonNegative(o, name)
		if f != nil {
			return nil, f
		}
		if ok {
			c.outEst = n
		}
	}
	if c.stream {
		opts, _, f := field[object](o, "stream_options")
		if f != nil {
			return nil, f
		}
		include, _, f := field[bool](opts, "include_usage")
		if f != nil {
			f.param = "stream_options.include_usage"
			return nil, f
		}
		c.clientUsage = include
		if !include {
			// The caller's own usage report is the only authoritative one in
			// a stream: ask for it.
			if opts == nil {
				opts = object{}
			}
			opts["include_usage"] = json.RawMessage("true")
			raw, _ := json.Marshal(opts)
			o["stream_options"] = raw
			c.body, _ = json.Marshal(o)
		}
	}
	return c, nil
}

// parseEmbeddings reads an OpenAI embeddings request.
func parseEmbeddings(body []byte, _ int64) (*call, *failure) {
	o, f := decodeObject(body)
	if f != nil {
		return nil, f
	}
	c := &call{path: "/embeddings", body: body}
	if c.model, f = requireModel(o); f != nil {
		return nil, f
	}
	raw, ok := o["input"]
	if !ok || string(raw) == "null" {
		return nil, badRequest("input", "input: required")
	}
	c.inEst = estimateTokens(len(raw))
	var s string
	var ss []string
	switch {
	case json.Unmarshal(raw, &s) == nil:
		c.content = s
	case json.Unmarshal(raw, &ss) == nil:
		c.content = strings.Join(ss, "\n")
	case bytes.HasPrefix(bytes.TrimSpace(raw), []byte("[")):
		// token arrays: nothing to inspect as text
	default:
		return nil, badRequest("input", "input: want a string, an array of strings or an array of token arrays")
	}
	return c, nil
}

// parseMessages reads an Anthropic Messages request.
func parseMessages(body []byte, _ int64) (*call, *failure) {
	c, o, f := parseConversation(body, "/v1/messages")
	if f != nil {
		return nil, f
	}
	n, ok, f := nonNegative(o, "max_tokens")
	if f != nil {
		return nil, f
	}
	if !ok || n == 0 {
		return nil, badRequest("max_tokens", "max_tokens: required, a positive integer")
	}
	c.outEst = n
	if c.stream, _, f = field[bool](o, "stream"); f != nil {
		return nil, f
	}
	return c, nil
}
