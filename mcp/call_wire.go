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
// its structured content, and whether it reports an error.
type callResult struct {
	Texts             []string
	resourceText      []bool // Texts[i] is an embedded resource's text
	StructuredContent json.RawMessage
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
		}
	}
	res.IsError = string(isError) == "true"
	if content == nil || content[0] != '[' {
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
			continue
		}
		text, resource := blockTexts(block)
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
// text, each nil when absent or not a string. Of repeated keys the last
// counts.
func blockTexts(block []byte) (text, resource *string) {
	r := wire.NewValueReader(block)
	if r.Open() != nil {
		return nil, nil
	}
	for {
		key, val, ok, err := r.Next()
		if err != nil || !ok {
			return text, resource
		}
		switch string(key) {
		case "text":
			text = stringValue(val)
		case "resource":
			resource = nil
			if val[0] == '{' {
				inner, _ := blockTexts(val)
				resource = inner
			}
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
// structured content, one to a line.
func (r callResult) text() string {
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
