package mcp

import (
	"encoding/json"
	"errors"
	"fmt"
	"github.com/agentgov/agentgov/mcp/wire"
	"strings"
)

// Reading the params of a tools/call and its result. Both are read on every
// call, and reading them into maps through reflection was a visible share
// of the gateway's own time; these walk the JSON once and keep only what the
// gateway looks at. Keys match exactly, as MCP servers match them: a
// case-insensitive reading (encoding/json's) could decide on a "Name" or
// "Arguments" key that the server ignores in favour of "name" or
// "arguments".

// callParams is what the gateway reads from a tools/call's params.
type callParams struct {
	Name      string
	Arguments json.RawMessage
	// ApprovalID is _meta's MetaApprovalID, when that is a string.
	ApprovalID    string
	HasApprovalID bool
}

// parseCallParams reads params, which the codec has checked to be JSON.
func parseCallParams(raw json.RawMessage) (callParams, error) {
	var p callParams
	if len(raw) == 0 {
		return p, errors.New("unexpected end of JSON input")
	}
	if wire.IsNull(raw) {
		return p, nil
	}
	r := wire.NewValueReader(raw)
	if err := r.Open(); err != nil {
		return p, errors.New("params must be a JSON object")
	}
	for {
		key, val, ok, err := r.Next()
		if err != nil {
			return p, err
		}
		if !ok {
			return p, nil
		}
		switch string(key) {
		case "name":
			if wire.IsNull(val) {
				continue
			}
			if p.Name, err = wire.JSONString(val); err != nil {
				return p, fmt.Errorf("name: %w", err)
			}
		case "arguments":
			p.Arguments = val
		case "_meta":
			if wire.IsNull(val) {
				p.ApprovalID, p.HasApprovalID = "", false
				continue
			}
			if err := readApprovalID(val, &p); err != nil {
				return p, err
			}
		}
	}
}

// readApprovalID finds MetaApprovalID in a _meta object.
func readApprovalID(meta []byte, p *callParams) error {
	r := wire.NewValueReader(meta)
	if err := r.Open(); err != nil {
		return errors.New("_meta must be a JSON object")
	}
	for {
		key, val, ok, err := r.Next()
		if err != nil || !ok {
			return err
		}
		if string(key) != MetaApprovalID {
			continue
		}
		p.ApprovalID, p.HasApprovalID = "", false
		if val[0] == '"' {
			if s, err := wire.JSONString(val); err == nil {
				p.ApprovalID, p.HasApprovalID = s, true
			}
		}
	}
}

// callResult is what the gateway reads from a tools/call result: the texts
// of its content blocks (a block's own text, then its embedded resource's),
// its structured content, every other string the client gets (the
// result's _meta, a resource link's name and description, annotations, an
// embedded resource's uri), and whether it reports an error. Only a
// block's kind and media type, and the base64 data of an image, audio or
// embedded blob, are not read: what a hostile server puts anywhere else
// reaches the client, so the post-call decision and the masking see it.
type callResult struct {
	Texts             []string
	resourceText      []bool // Texts[i] is an embedded resource's text
	StructuredContent json.RawMessage
	Other             []string
	IsError           bool
}

// parseCallResult reads a result, which the codec has checked to be JSON.
// A result that is not an object is an error; null is an empty result.
func parseCallResult(raw json.RawMessage) (callResult, error) {
	var res callResult
	if len(raw) == 0 {
		return res, errors.New("unexpected end of JSON input")
	}
	if wire.IsNull(raw) {
		return res, nil
	}
	r := wire.NewValueReader(raw)
	if err := r.Open(); err != nil {
		return res, errors.New("the result is not a JSON object")
	}
	var content, isError []byte
	for {
		key, val, ok, err := r.Next()
		if err != nil {
			return res, err
		}
		if !ok {
			break
		}
		switch string(key) {
		case "content":
			content = val
		case "structuredContent":
			res.StructuredContent = val
		case "isError":
			isError = val
		case "resultType":
			// The protocol's word for the kind of result, as a block's type.
			if val[0] != '"' {
				collectStrings(val, &res.Other)
			}
		default:
			collectStrings(val, &res.Other)
		}
	}
	res.IsError = string(isError) == "true"
	if content == nil {
		return res, nil
	}
	if content[0] != '[' {
		collectStrings(content, &res.Other)
		return res, nil
	}
	blocks := wire.NewValueReader(content)
	if err := blocks.OpenArray(); err != nil {
		return res, nil
	}
	for {
		block, ok, err := blocks.NextElement()
		if err != nil || !ok {
			return res, nil
		}
		if block[0] != '{' {
			collectStrings(block, &res.Other)
			continue
		}
		text, resource := res.blockTexts(block)
		if text != nil {
			res.Texts = append(res.Texts, *text)
			res.resourceText = append(res.resourceText, false)
		}
		if resource != nil {
			res.Texts = append(res.Texts, *resource)
			res.resourceText = append(res.resourceText, true)
		}
	}
}

// blockTexts returns a content block's text and its embedded resource's
// text, each nil when absent or not a string, and adds the block's other
// strings to res.Other. Of repeated keys the last counts.
func (res *callResult) blockTexts(block []byte) (text, resource *string) {
	r := wire.NewValueReader(block)
	if r.Open() != nil {
		return nil, nil
	}
	var kind string
	var data [][]byte
	defer func() {
		for _, d := range data {
			if !base64Block(kind) || d[0] != '"' {
				collectStrings(d, &res.Other)
			}
		}
	}()
	for {
		key, val, ok, err := r.Next()
		if err != nil || !ok {
			return text, resource
		}
		switch string(key) {
		case "text":
			if text = stringValue(val); text == nil {
				collectStrings(val, &res.Other)
			}
		case "resource":
			resource = nil
			if val[0] == '{' {
				resource = res.resourceTexts(val)
			} else {
				collectStrings(val, &res.Other)
			}
		case "type":
			kind = ""
			if s := stringValue(val); s != nil {
				kind = *s
			} else {
				collectStrings(val, &res.Other)
			}
		case "mimeType":
			if val[0] != '"' {
				collectStrings(val, &res.Other)
			}
		case "data":
			data = append(data, val)
		default:
			collectStrings(val, &res.Other)
		}
	}
}

// resourceTexts returns an embedded resource's text, nil when absent or not
// a string, and adds its other strings but its blob to res.Other.
func (res *callResult) resourceTexts(obj []byte) (text *string) {
	r := wire.NewValueReader(obj)
	if r.Open() != nil {
		return nil
	}
	for {
		key, val, ok, err := r.Next()
		if err != nil || !ok {
			return text
		}
		switch string(key) {
		case "text":
			if text = stringValue(val); text == nil {
				collectStrings(val, &res.Other)
			}
		case "mimeType", "blob":
			if val[0] != '"' {
				collectStrings(val, &res.Other)
			}
		default:
			collectStrings(val, &res.Other)
		}
	}
}

// base64Block says a content block of this kind carries base64 data,
// which the detectors cannot read and masking would corrupt.
func base64Block(kind string) bool { return kind == "image" || kind == "audio" }

// collectStrings adds every string of a JSON value to out.
func collectStrings(val []byte, out *[]string) {
	if len(val) == 0 {
		return
	}
	switch val[0] {
	case '"':
		if s := stringValue(val); s != nil {
			*out = append(*out, *s)
		}
	case '{':
		r := wire.NewValueReader(val)
		if r.Open() != nil {
			return
		}
		for {
			_, v, ok, err := r.Next()
			if err != nil || !ok {
				return
			}
			collectStrings(v, out)
		}
	case '[':
		r := wire.NewValueReader(val)
		if r.OpenArray() != nil {
			return
		}
		for {
			v, ok, err := r.NextElement()
			if err != nil || !ok {
				return
			}
			collectStrings(v, out)
		}
	}
}

func stringValue(val []byte) *string {
	if val[0] != '"' {
		return nil
	}
	s, err := wire.JSONString(val)
	if err != nil {
		return nil
	}
	return &s
}

func (r callResult) hasStructured() bool {
	return len(r.StructuredContent) > 0 && !wire.IsNull(r.StructuredContent)
}

// text is what the post-call decision inspects: every text, then the
// structured content, then the other strings, one to a line.
func (r callResult) text() string {
	if len(r.Other) == 0 {
		return r.contentText()
	}
	var b strings.Builder
	b.WriteString(r.contentText())
	for _, o := range r.Other {
		b.WriteByte('\n')
		b.WriteString(o)
	}
	return b.String()
}

// contentText is every text, then the structured content, one to a line.
func (r callResult) contentText() string {
	var b strings.Builder
	for i, t := range r.Texts {
		if r.resourceText[i] || b.Len() > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(t)
	}
	if r.hasStructured() {
		b.WriteByte('\n')
		b.Write(r.StructuredContent)
	}
	return b.String()
}
