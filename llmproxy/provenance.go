package llmproxy

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"

	"github.com/agentgov/agentgov/provenance"
)

// conversation is what the provenance ledger learns from a chat or
// messages request (DESIGN §8): the user's turns are trusted input, tool
// results (OpenAI's tool and function messages, Anthropic's tool_result
// blocks) untrusted content from the tool that produced them, named by the
// assistant turn that called it. System prompts and the assistant's own
// turns carry no provenance: they are neither the user's words nor a
// tool's.
type conversation struct {
	segments []provenance.Segment
	// first is the conversation's first user turn, with the system
	// prompt: what names the conversation when the caller sends no
	// session.
	first string
}

type chatMessage struct {
	Role       string          `json:"role"`
	Content    json.RawMessage `json:"content"`
	Name       string          `json:"name"`
	ToolCallID string          `json:"tool_call_id"`
	ToolCalls  []struct {
		ID       string `json:"id"`
		Function struct {
			Name string `json:"name"`
		} `json:"function"`
	} `json:"tool_calls"`
}

type contentBlock struct {
	Type      string          `json:"type"`
	Text      string          `json:"text"`
	ID        string          `json:"id"`
	Name      string          `json:"name"`
	ToolUseID string          `json:"tool_use_id"`
	Content   json.RawMessage `json:"content"`
}

// readConversation reads the provenance of a request's messages. A message
// it cannot read adds nothing: the request was validated already, and
// provenance only ever narrows what policies allow.
func readConversation(o object) conversation {
	var c conversation
	var msgs []chatMessage
	if raw, ok := o["messages"]; !ok || json.Unmarshal(raw, &msgs) != nil {
		return c
	}
	names := map[string]string{} // tool call id -> tool name
	var system string
	if raw, ok := o["system"]; ok {
		system = blockText(raw)
	}
	for _, m := range msgs {
		switch m.Role {
		case "system", "developer":
			if system != "" {
				system += "\n"
			}
			system += blockText(m.Content)
		case "assistant":
			for _, tc := range m.ToolCalls {
				names[tc.ID] = tc.Function.Name
			}
			var blocks []contentBlock
			if json.Unmarshal(m.Content, &blocks) == nil {
				for _, b := range blocks {
					if b.Type == "tool_use" || b.Type == "server_tool_use" {
						names[b.ID] = b.Name
					}
				}
			}
		case "tool":
			c.add(toolSource(names[m.ToolCallID]), false, blockText(m.Content))
		case "function":
			c.add(toolSource(m.Name), false, blockText(m.Content))
		case "user":
			var blocks []contentBlock
			if json.Unmarshal(m.Content, &blocks) != nil {
				c.user(system, blockText(m.Content))
				continue
			}
			for _, b := range blocks {
				switch {
				case b.Type == "tool_result":
					c.add(toolSource(names[b.ToolUseID]), false, blockText(b.Content))
				case b.Text != "":
					c.user(system, b.Text)
				}
			}
		}
	}
	return c
}

func (c *conversation) add(source string, trusted bool, text string) {
	if strings.TrimSpace(text) != "" {
		c.segments = append(c.segments, provenance.Segment{Source: source, Trusted: trusted, Text: text})
	}
}

func (c *conversation) user(system, text string) {
	if c.first == "" && strings.TrimSpace(text) != "" {
		c.first = system + "\x00" + text
	}
	c.add(provenance.User, true, text)
}

func toolSource(name string) string {
	if name == "" {
		name = "unknown"
	}
	return provenance.ToolSource("", name)
}

// session names the conversation for a caller that sends no session
// header: the same first user turn (and system prompt) is the same
// conversation on every turn, so that what its tool results said is known
// when the model's next tool call is decided.
func (c *conversation) session() string {
	if c.first == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(c.first))
	return "conv-" + hex.EncodeToString(sum[:12])
}

// blockText is the text of a message's content: a string, or the text of
// its blocks (nested content included).
func blockText(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var blocks []contentBlock
	if json.Unmarshal(raw, &blocks) != nil {
		return ""
	}
	var out []string
	for _, b := range blocks {
		if b.Text != "" {
			out = append(out, b.Text)
		}
		if len(b.Content) > 0 {
			if t := blockText(b.Content); t != "" {
				out = append(out, t)
			}
		}
	}
	return strings.Join(out, "\n")
}
