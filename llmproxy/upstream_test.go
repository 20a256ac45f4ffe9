package llmproxy

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// Keys the fake upstream accepts. They are the proxy's own; callers use
// agentgov tokens and never see these.
const (
	openAIUpstreamKey    = "sk-upstream-openai"
	anthropicUpstreamKey = "sk-ant-upstream"
	googleUpstreamKey    = "gm-upstream"
)

// Token counts the fake upstream reports, so tests can check settlement.
const (
	chatPromptTokens     = 11
	chatCompletionTokens = 7
	embedTokens          = 5
	msgInputTokens       = 13
	msgCacheReadTokens   = 4
	msgOutputTokens      = 9
	// thinkingTokens is the hidden reasoning a call whose last user message
	// is "thinking" reports apart from completion_tokens, as Gemini's
	// OpenAI-compatible endpoint does: only the total includes it.
	thinkingTokens = 40
)

// fakeUpstream speaks the OpenAI and Anthropic wire formats, streaming (SSE)
// included, the way the real APIs do. It is the one stand-in in these tests:
// the real providers cannot be reached from here. A last user message of
// "upstream-error" makes it answer 400 in the provider's shape.
type fakeUpstream struct {
	t   *testing.T
	srv *httptest.Server

	mu       sync.Mutex
	requests []seenRequest
}

type seenRequest struct {
	Path   string
	Header http.Header
	Body   map[string]any
}

func newFakeUpstream(t *testing.T) *fakeUpstream {
	f := &fakeUpstream{t: t}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeUpstream) seen() []seenRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]seenRequest(nil), f.requests...)
}

func (f *fakeUpstream) last() seenRequest {
	s := f.seen()
	if len(s) == 0 {
		f.t.Fatal("the upstream received no request")
	}
	return s[len(s)-1]
}

func (f *fakeUpstream) serve(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	var body map[string]any
	json.Unmarshal(raw, &body)
	f.mu.Lock()
	f.requests = append(f.requests, seenRequest{Path: r.URL.Path, Header: r.Header.Clone(), Body: body})
	f.mu.Unlock()

	anthropicCall := r.URL.Path == "/v1/messages"
	switch {
	case anthropicCall && r.Header.Get("X-Api-Key") != anthropicUpstreamKey:
		writeRaw(w, 401, `{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}`)
		return
	case !anthropicCall && r.Header.Get("Authorization") != "Bearer "+openAIUpstreamKey && r.Header.Get("Authorization") != "Bearer "+googleUpstreamKey:
		writeRaw(w, 401, `{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}`)
		return
	}
	if lastUser(body) == "upstream-error" {
		if anthropicCall {
			writeRaw(w, 400, `{"type":"error","error":{"type":"invalid_request_error","message":"upstream says no"}}`)
		} else {
			writeRaw(w, 400, `{"error":{"message":"upstream says no","type":"invalid_request_error","param":null,"code":null}}`)
		}
		return
	}
	model, _ := body["model"].(string)
	stream, _ := body["stream"].(bool)
	switch lastUser(body) {
	case "hang": // one chunk, then nothing until the caller goes away
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\n")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
		return
	case "no-usage": // an OpenAI-compatible server that ignores include_usage
		f.chatStream(w, model, false)
		return
	case "huge": // an answer of 16 KiB
		writeRaw(w, 200, `{"id":"chatcmpl-3","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"`+strings.Repeat("x", 16<<10)+`"}}],"usage":{"prompt_tokens":1,"completion_tokens":1}}`)
		return
	case "huge-event": // a stream whose second event is 16 KiB long
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\n")
		io.WriteString(w, "data: "+strings.Repeat("x", 16<<10)+"\n\n")
		io.WriteString(w, "data: [DONE]\n\n")
		return
	case "thinking":
		writeRaw(w, 200, fmt.Sprintf(`{"id":"chatcmpl-2","object":"chat.completion","created":1700000000,"model":%q,`+
			`"choices":[{"index":0,"message":{"role":"assistant","content":"Hello from upstream"},"finish_reason":"stop"}],`+
			`"usage":{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d}}`,
			model, chatPromptTokens, chatCompletionTokens, chatPromptTokens+chatCompletionTokens+thinkingTokens))
		return
	}
	switch r.URL.Path {
	case "/v1/chat/completions", "/v1beta/openai/chat/completions":
		if stream {
			opts, _ := body["stream_options"].(map[string]any)
			includeUsage, _ := opts["include_usage"].(bool)
			f.chatStream(w, model, includeUsage)
			return
		}
		writeRaw(w, 200, fmt.Sprintf(`{"id":"chatcmpl-1","object":"chat.completion","created":1700000000,"model":%q,`+
			`"choices":[{"index":0,"message":{"role":"assistant","content":"Hello from upstream","refusal":null},"logprobs":null,"finish_reason":"stop"}],`+
			`"usage":{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d},"system_fingerprint":"fp_1"}`,
			model, chatPromptTokens, chatCompletionTokens, chatPromptTokens+chatCompletionTokens))
	case "/v1/embeddings":
		vec := `[0.1,-0.2,0.3]`
		if body["encoding_format"] == "base64" { // what the openai SDK asks for by default
			var b []byte
			for _, f := range []float32{0.1, -0.2, 0.3} {
				b = binary.LittleEndian.AppendUint32(b, math.Float32bits(f))
			}
			vec = `"` + base64.StdEncoding.EncodeToString(b) + `"`
		}
		writeRaw(w, 200, fmt.Sprintf(`{"object":"list","data":[{"object":"embedding","index":0,"embedding":%s}],"model":%q,"usage":{"prompt_tokens":%d,"total_tokens":%d}}`,
			vec, model, embedTokens, embedTokens))
	case "/v1/messages":
		if stream {
			f.messagesStream(w, model)
			return
		}
		writeRaw(w, 200, fmt.Sprintf(`{"id":"msg_1","type":"message","role":"assistant","model":%q,"content":[{"type":"text","text":"Hello from upstream"}],`+
			`"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":%d,"cache_creation_input_tokens":0,"cache_read_input_tokens":%d,"output_tokens":%d}}`,
			model, msgInputTokens, msgCacheReadTokens, msgOutputTokens))
	default:
		writeRaw(w, 404, `{"error":{"message":"unknown path","type":"invalid_request_error","param":null,"code":null}}`)
	}
}

func (f *fakeUpstream) chatStream(w http.ResponseWriter, model string, includeUsage bool) {
	w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
	w.Header().Set("X-Request-Id", "req_stream_1")
	w.WriteHeader(200)
	usageNull := ""
	if includeUsage {
		usageNull = `,"usage":null` // OpenAI adds it to every chunk once usage is asked for
	}
	chunk := func(delta, finish string) {
		fmt.Fprintf(w, "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":%q,\"choices\":[{\"index\":0,\"delta\":%s,\"logprobs\":null,\"finish_reason\":%s}]%s}\n\n",
			model, delta, finish, usageNull)
		w.(http.Flusher).Flush()
	}
	chunk(`{"role":"assistant","content":""}`, "null")
	chunk(`{"content":"Hello"}`, "null")
	chunk(`{"content":" world"}`, "null")
	chunk(`{}`, `"stop"`)
	if includeUsage {
		fmt.Fprintf(w, "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":%q,\"choices\":[],\"usage\":{\"prompt_tokens\":%d,\"completion_tokens\":%d,\"total_tokens\":%d}}\n\n",
			model, chatPromptTokens, chatCompletionTokens, chatPromptTokens+chatCompletionTokens)
	}
	fmt.Fprint(w, "data: [DONE]\n\n")
}

func (f *fakeUpstream) messagesStream(w http.ResponseWriter, model string) {
	w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
	w.Header().Set("Request-Id", "req_ant_1")
	w.WriteHeader(200)
	event := func(name, data string) {
		fmt.Fprintf(w, "event: %s\ndata: %s\n\n", name, data)
		w.(http.Flusher).Flush()
	}
	event("message_start", fmt.Sprintf(`{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":%q,"content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":%d,"cache_creation_input_tokens":0,"cache_read_input_tokens":%d,"output_tokens":1}}}`,
		model, msgInputTokens, msgCacheReadTokens))
	event("content_block_start", `{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`)
	event("ping", `{"type": "ping"}`)
	event("content_block_delta", `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}}`)
	event("content_block_delta", `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" world"}}`)
	event("content_block_stop", `{"type":"content_block_stop","index":0}`)
	event("message_delta", fmt.Sprintf(`{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":%d}}`, msgOutputTokens))
	event("message_stop", `{"type":"message_stop"}`)
}

func writeRaw(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Request-Id", "req_upstream")
	w.Header().Set("Set-Cookie", "upstream_session=secret")
	w.WriteHeader(status)
	io.WriteString(w, body)
}

// lastUser is the text of the last user message of an OpenAI or Anthropic body.
func lastUser(body map[string]any) string {
	msgs, _ := body["messages"].([]any)
	for i := len(msgs) - 1; i >= 0; i-- {
		m, _ := msgs[i].(map[string]any)
		if m["role"] != "user" {
			continue
		}
		switch c := m["content"].(type) {
		case string:
			return c
		case []any:
			var parts []string
			for _, p := range c {
				if pm, ok := p.(map[string]any); ok {
					if s, ok := pm["text"].(string); ok {
						parts = append(parts, s)
					}
				}
			}
			return strings.Join(parts, "\n")
		}
	}
	if s, ok := body["input"].(string); ok {
		return s
	}
	return ""
}
