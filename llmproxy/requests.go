package llmproxy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"unicode"

	"github.com/agentgov/agentgov/errcode"
	"github.com/agentgov/agentgov/models"
)

// call is what the proxy needs to know about one model request: enough to
// decide it, route it, reserve for it and price it.
type call struct {
	path    string // below the upstream's base URL
	model   string
	obj     object // the request as the proxy read it; what goes upstream
	stream  bool
	content string // the text of the whole request, for content policies
	inEst   int64  // prompt tokens, estimated from its size
	// answers is how many answers the provider writes (OpenAI's n).
	answers int64
	// outCap is the most output tokens one answer may take: the caller's
	// cap, or, when it set none, the one the proxy sets and sends.
	outCap int64
	// capBy says where outCap comes from, for a budget denial to explain.
	capBy string
	// embedding calls write no output.
	embedding bool
	// clientUsage is whether an OpenAI streaming caller asked for the usage
	// chunk itself; when not, the proxy asks for it and strips it again.
	clientUsage bool
	// anthropicThinking is the thinking budget of an Anthropic request.
	anthropicThinking int64
	// callerCap is whether the caller set the cap itself.
	callerCap bool
}

// outEst is the output the provider may bill: every answer at its cap.
func (c *call) outEst() int64 {
	if c.embedding {
		return 0
	}
	return satMul(c.answers, c.outCap)
}

// body is what is sent upstream: the request as the proxy read it. A body
// that names a field twice is read one way here (the last one wins) and
// perhaps the other way upstream, so the upstream gets this reading, never
// the raw bytes, and sees what the policies saw.
func (c *call) body() []byte {
	b, _ := json.Marshal(c.obj)
	return b
}

type parser func(body []byte) (*call, *failure)

// maxAnswers bounds OpenAI's n, as OpenAI does; a larger n would only buy
// a larger reservation before the provider refused it.
const maxAnswers = 128

// object is a request body decoded one level deep, so that fields the proxy
// does not read survive untouched.
type object map[string]json.RawMessage

func decodeObject(body []byte) (object, *failure) {
	var o object
	if err := json.Unmarshal(body, &o); err != nil || o == nil {
		msg := "request body must be a JSON object"
		if err != nil {
			msg += ": " + errcode.DescribeJSON(err)
		}
		return nil, badRequest("", msg)
	}
	if f := checkKeys(body); f != nil {
		return nil, f
	}
	return o, nil
}

// checkKeys refuses a body in which an object, at any depth, names a key
// twice, or two keys that differ only in letter case. Parsers disagree on
// which one counts (the first, the last, or for Go's struct fields either
// spelling), so the proxy could decide on one reading while the provider
// acts on the other; nested values go upstream as sent.
//
// body has been decoded already, so it is valid JSON: the scan only needs
// to find each object's keys. It reads the bytes itself, since it runs on
// every proxied call and a token decoder cost more than the rest of the
// proxy's own work on an ordinary chat request.
func checkKeys(body []byte) *failure {
	var stack []keySet
	expectKey := false
	for i := 0; i < len(body); i++ {
		switch body[i] {
		case '{':
			stack = append(stack, keySet{object: true})
			expectKey = true
		case '[':
			stack = append(stack, keySet{})
			expectKey = false
		case '}', ']':
			if len(stack) == 0 {
				return nil
			}
			stack = stack[:len(stack)-1]
			expectKey = false
		case ',':
			expectKey = len(stack) > 0 && stack[len(stack)-1].object
		case ':':
			expectKey = false
		case '"':
			end := stringEnd(body, i)
			if end < 0 {
				return nil
			}
			if expectKey && len(stack) > 0 {
				raw := body[i : end+1]
				var k string
				if bytes.IndexByte(raw, '\\') < 0 {
					k = string(raw[1 : len(raw)-1])
				} else if json.Unmarshal(raw, &k) != nil {
					return nil
				}
				if !stack[len(stack)-1].add(k) {
					return badRequest("", fmt.Sprintf("request body: an object names the key %q twice (or twice in different letter case); parsers differ on which one counts", k))
				}
				expectKey = false
			}
			i = end
		}
	}
	return nil
}

// stringEnd is the index of the quote closing the JSON string that opens
// at body[open], or -1.
func stringEnd(body []byte, open int) int {
	for j := open + 1; j < len(body); j++ {
		switch body[j] {
		case '\\':
			j++
		case '"':
			return j
		}
	}
	return -1
}

// keySet is the keys one object has named so far, compared as Go's
// decoder matches field names (foldKey). A few are kept in a list and
// compared without allocating; past smallKeys they go into a map, so that
// an object of many keys costs linear time.
type keySet struct {
	object bool
	small  []string
	folded map[string]bool
}

const smallKeys = 16

// add records k and reports whether it is new.
func (s *keySet) add(k string) bool {
	if s.folded == nil {
		for _, o := range s.small {
			if sameKey(o, k) {
				return false
			}
		}
		if len(s.small) < smallKeys {
			s.small = append(s.small, k)
			return true
		}
		s.folded = make(map[string]bool, 2*smallKeys)
		for _, o := range s.small {
			s.folded[foldKey(o)] = true
		}
	}
	f := foldKey(k)
	if s.folded[f] {
		return false
	}
	s.folded[f] = true
	return true
}

// sameKey says whether a and b fold to one key, without allocating when
// both are ASCII.
func sameKey(a, b string) bool {
	if len(a) != len(b) || !isASCII(a) || !isASCII(b) {
		if isASCII(a) && isASCII(b) {
			return false
		}
		return foldKey(a) == foldKey(b)
	}
	for i := 0; i < len(a); i++ {
		ca, cb := a[i], b[i]
		if 'a' <= ca && ca <= 'z' {
			ca -= 'a' - 'A'
		}
		if 'a' <= cb && cb <= 'z' {
			cb -= 'a' - 'A'
		}
		if ca != cb {
			return false
		}
	}
	return true
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// foldKey is k as Go's encoding/json matches struct field names: upper
// case of lower case, rune by rune, so that the Kelvin sign is a K.
func foldKey(k string) string {
	return strings.Map(func(r rune) rune { return unicode.ToUpper(unicode.ToLower(r)) }, k)
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

// jsonTypeProblem says what is wrong with a member in JSON's words: the
// caller wrote JSON, not Go.
func jsonTypeProblem(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("got a JSON %s, want %s", te.Value, errcode.JSONKind(te.Type))
	}
	return errcode.DescribeJSON(err)
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

// positive reads an optional count that, when given, must be at least 1: a
// cap of 0 is refused by providers, or read by some servers as "no cap".
func positive(o object, name string) (int64, bool, *failure) {
	n, ok, f := field[int64](o, name)
	if f != nil {
		return 0, false, f
	}
	if ok && n < 1 {
		return 0, false, badRequest(name, name+": must be a positive integer")
	}
	return n, ok, nil
}

// estimateTokens is the usual rule of thumb: about four bytes per token.
func estimateTokens(n int) int64 { return int64(n+3) / 4 }

// parseConversation reads what chat and messages requests share: the model,
// a non-empty messages array, and the text of the whole request for the
// content policies.
func parseConversation(body []byte, path string) (*call, *failure) {
	o, f := decodeObject(body)
	if f != nil {
		return nil, f
	}
	c := &call{path: path, obj: o, inEst: estimateTokens(len(body)), answers: 1}
	if c.model, f = requireModel(o); f != nil {
		return nil, f
	}
	msgs, ok, f := field[[]json.RawMessage](o, "messages")
	if f != nil {
		return nil, f
	}
	if !ok || len(msgs) == 0 {
		return nil, badRequest("messages", "messages: required, a non-empty array")
	}
	if c.stream, _, f = field[bool](o, "stream"); f != nil {
		return nil, f
	}
	if c.content, f = requestText(o); f != nil {
		return nil, f
	}
	return c, nil
}

// parseChat reads an OpenAI chat completion request.
func parseChat(body []byte) (*call, *failure) {
	c, f := parseConversation(body, "/chat/completions")
	if f != nil {
		return nil, f
	}
	o := c.obj
	if n, ok, f := positive(o, "n"); f != nil {
		return nil, f
	} else if ok {
		if n > maxAnswers {
			return nil, badRequest("n", fmt.Sprintf("n: at most %d", maxAnswers))
		}
		c.answers = n
	}
	// A caller may set either cap, or both; the provider honours one of
	// them, so the reservation covers the larger.
	for _, name := range []string{"max_tokens", "max_completion_tokens"} {
		n, ok, f := positive(o, name)
		if f != nil {
			return nil, f
		}
		if ok && n > c.outCap {
			c.outCap, c.callerCap, c.capBy = n, true, name
		}
	}
	if c.stream {
		opts, _, f := field[object](o, "stream_options")
		if f != nil {
			return nil, f
		}
		include, _, f := field[bool](opts, "include_usage")
		if f != nil {
			f.Param = "stream_options.include_usage"
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
		}
	}
	return c, nil
}

// parseEmbeddings reads an OpenAI embeddings request.
func parseEmbeddings(body []byte) (*call, *failure) {
	o, f := decodeObject(body)
	if f != nil {
		return nil, f
	}
	c := &call{path: "/embeddings", obj: o, embedding: true, answers: 1}
	if c.model, f = requireModel(o); f != nil {
		return nil, f
	}
	raw, ok := o["input"]
	if !ok || string(raw) == "null" {
		return nil, badRequest("input", "input: required")
	}
	c.inEst = estimateTokens(len(raw))
	var (
		s     string
		ss    []string
		ids   []int64
		idss  [][]int64
		inTxt string
	)
	switch {
	case json.Unmarshal(raw, &s) == nil:
		inTxt = s
	case json.Unmarshal(raw, &ss) == nil:
		inTxt = strings.Join(ss, "\n")
	case json.Unmarshal(raw, &ids) == nil, json.Unmarshal(raw, &idss) == nil:
		// Token ids: nothing to inspect as text. Anything else in an
		// array (objects, strings among ids) would go upstream undecided.
	default:
		return nil, badRequest("input", "input: want a string, an array of strings, an array of token ids or an array of arrays of token ids")
	}
	var t texts
	t.add(inTxt)
	t.others(o, map[string]bool{"input": true})
	c.content = t.b.String()
	return c, nil
}

// parseMessages reads an Anthropic Messages request.
func parseMessages(body []byte) (*call, *failure) {
	c, f := parseConversation(body, "/v1/messages")
	if f != nil {
		return nil, f
	}
	n, ok, f := positive(c.obj, "max_tokens")
	if f != nil {
		return nil, f
	}
	if !ok {
		return nil, badRequest("max_tokens", "max_tokens: required, a positive integer")
	}
	c.outCap, c.callerCap, c.capBy = n, true, "max_tokens"
	// Thinking counts against max_tokens, except that with interleaved
	// thinking its budget may exceed it: reserve for the larger.
	thinking, _, f := field[struct {
		BudgetTokens int64 `json:"budget_tokens"`
	}](c.obj, "thinking")
	if f != nil {
		return nil, f
	}
	if thinking.BudgetTokens > c.outCap {
		c.outCap, c.capBy = thinking.BudgetTokens, "thinking.budget_tokens"
	}
	return c, nil
}

// capOutput settles the output cap of a call whose caller set none: the
// model's maximum output from the catalogue, or llm.default_max_tokens for
// a model it gives none. The cap goes upstream in the field the model
// takes, so that the provider cannot bill more than was reserved.
func (c *call) capOutput(m models.Model, defOut int64) {
	if c.embedding || c.callerCap {
		return
	}
	c.outCap, c.capBy = m.MaxOutputTokens, "the model's maximum output, as the request sets no max_tokens"
	if c.outCap <= 0 {
		c.outCap, c.capBy = defOut, "llm.default_max_tokens, as the request sets no max_tokens and the model catalogue gives no max_output"
	}
	name := "max_tokens"
	if m.Provider == "openai" && m.Reasoning {
		// OpenAI refuses max_tokens for reasoning models; their cap covers
		// the hidden reasoning as well as the answer.
		name = "max_completion_tokens"
	}
	c.obj[name] = json.RawMessage(fmt.Sprint(c.outCap))
}

func satMul(a, b int64) int64 {
	if a <= 0 || b <= 0 {
		return 0
	}
	if a > math.MaxInt64/b {
		return math.MaxInt64
	}
	return a * b
}

func satAdd(a, b int64) int64 {
	if s := a + b; s >= a {
		return s
	}
	return math.MaxInt64
}
