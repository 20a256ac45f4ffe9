package llmproxy

import (
	"strings"
	"testing"
)

// An agent hides what a content policy forbids anywhere but the last user
// message: a system prompt, an earlier turn, an assistant message, a tool
// result, the arguments of a tool call, a tool's definition, a text part
// of a content array. The proxy used to show content policies the last
// user message only; they now see the text of the whole request (DESIGN
// §2), so every one of these is denied.
func TestContentPoliciesSeeEveryMessageAndToolDefinition(t *testing.T) {
	r := newRig(t, nil)
	const last = `{"role":"user","content":"please go on"}`
	for name, body := range map[string]string{
		"system message":    `{"model":"gpt-4o-mini","messages":[{"role":"system","content":"a forbidden topic"},` + last + `]}`,
		"developer message": `{"model":"gpt-4o-mini","messages":[{"role":"developer","content":[{"type":"text","text":"a forbidden topic"}]},` + last + `]}`,
		"earlier user turn": `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"a forbidden topic"},{"role":"assistant","content":"ok"},` + last + `]}`,
		"assistant message": `{"model":"gpt-4o-mini","messages":[{"role":"assistant","content":"a forbidden topic"},` + last + `]}`,
		"assistant refusal": `{"model":"gpt-4o-mini","messages":[{"role":"assistant","content":null,"refusal":"a forbidden topic"},` + last + `]}`,
		"tool call arguments": `{"model":"gpt-4o-mini","messages":[{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"search","arguments":"{\"q\":\"a forbidden topic\"}"}}]},` +
			`{"role":"tool","tool_call_id":"c1","content":"no results"},` + last + `]}`,
		"tool result":          `{"model":"gpt-4o-mini","messages":[{"role":"tool","tool_call_id":"c1","content":[{"type":"text","text":"a forbidden topic"}]},` + last + `]}`,
		"tool definition":      `{"model":"gpt-4o-mini","messages":[` + last + `],"tools":[{"type":"function","function":{"name":"search","description":"a forbidden topic","parameters":{"type":"object"}}}]}`,
		"tool parameter":       `{"model":"gpt-4o-mini","messages":[` + last + `],"tools":[{"type":"function","function":{"name":"search","parameters":{"type":"object","properties":{"q":{"type":"string","description":"a forbidden topic"}}}}}]}`,
		"text part of a turn":  `{"model":"gpt-4o-mini","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"https://example.com/a.png"}},{"type":"text","text":"a forbidden topic"}]},` + last + `]}`,
		"a message's name":     `{"model":"gpt-4o-mini","messages":[{"role":"user","name":"a forbidden topic","content":"hi"},` + last + `]}`,
		"legacy function call": `{"model":"gpt-4o-mini","messages":[{"role":"assistant","content":null,"function_call":{"name":"search","arguments":"a forbidden topic"}},` + last + `]}`,
	} {
		res := r.do("POST", "/llm/v1/chat/completions", body)
		if res.status != 403 || !strings.Contains(string(res.body), "rule no-forbidden") {
			t.Errorf("%s: %d %s; want the content policy's deny", name, res.status, res.body)
		}
	}
	if n := len(r.up.seen()); n != 0 {
		t.Errorf("%d calls hiding forbidden content reached the upstream", n)
	}
}

// The variant through the Anthropic Messages API: the separate system
// prompt (a string or blocks), tool_use inputs, tool_result blocks, text
// documents and thinking blocks.
func TestAnthropicContentPoliciesSeeTheSystemPromptAndEveryBlock(t *testing.T) {
	r := newRig(t, nil)
	const last = `{"role":"user","content":"please go on"}`
	wrap := func(extra, msgs string) string {
		return `{"model":"claude-haiku-4-5","max_tokens":10` + extra + `,"messages":[` + msgs + `]}`
	}
	for name, body := range map[string]string{
		"system string":   wrap(`,"system":"a forbidden topic"`, last),
		"system blocks":   wrap(`,"system":[{"type":"text","text":"a forbidden topic","cache_control":{"type":"ephemeral"}}]`, last),
		"tool_use input":  wrap("", `{"role":"assistant","content":[{"type":"tool_use","id":"t1","name":"search","input":{"q":"a forbidden topic"}}]},`+last),
		"tool_result":     wrap("", `{"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":[{"type":"text","text":"a forbidden topic"}]}]},`+last),
		"text document":   wrap("", `{"role":"user","content":[{"type":"document","source":{"type":"text","media_type":"text/plain","data":"a forbidden topic"}}]},`+last),
		"thinking block":  wrap("", `{"role":"assistant","content":[{"type":"thinking","thinking":"a forbidden topic","signature":"sig"}]},`+last),
		"tool definition": wrap(`,"tools":[{"name":"search","description":"a forbidden topic","input_schema":{"type":"object"}}]`, last),
	} {
		res := r.do("POST", "/llm/anthropic/v1/messages", body, "Authorization", "", "X-Api-Key", agentToken)
		if res.status != 403 || !strings.Contains(string(res.body), "rule no-forbidden") {
			t.Errorf("%s: %d %s; want the content policy's deny", name, res.status, res.body)
		}
	}
	if n := len(r.up.seen()); n != 0 {
		t.Errorf("%d calls hiding forbidden content reached the upstream", n)
	}
}

// What the policies see is what the model gets: a body that names a field
// twice is read by the proxy one way (the last wins in Go) and might be
// read the other way upstream, so it is refused (see
// TestDuplicateKeysCannotSplitWhatIsDecidedFromWhatIsSent), and binary
// payloads (images, audio) are not taken for text.
func TestTheUpstreamGetsWhatWasDecided(t *testing.T) {
	r := newRig(t, nil)
	body := `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"a forbidden topic"}],"messages":[{"role":"user","content":"hello"}]}`
	if res := r.do("POST", "/llm/v1/chat/completions", body); res.status != 400 {
		t.Fatalf("%d %s", res.status, res.body)
	}
	if n := len(r.up.seen()); n != 0 {
		t.Fatalf("a body naming messages twice reached the upstream")
	}
	body = `{"model":"gpt-4o-mini","messages":[{"role":"user","content":[{"type":"text","text":"describe"},{"type":"image_url","image_url":{"url":"data:image/png;base64,Zm9yYmlkZGVu"}},{"type":"input_audio","input_audio":{"data":"Zm9yYmlkZGVu","format":"wav"}}]}]}`
	r.do("POST", "/llm/v1/chat/completions", body)
	acts := r.dec.decided()
	if got := acts[len(acts)-1].Content; got != "describe" {
		t.Errorf("content = %q, want the text parts only", got)
	}
}
