package mcp

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/agentgov/agentgov/mcp/pin"
	"github.com/agentgov/agentgov/mcp/wire"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
)

// Requests other than tools/call that the engine decides, as if they were
// calls of a tool named after the method: resources/read is the tool
// "resources:read" with the argument uri, prompts/get the tool
// "prompts:get" with the arguments name and arguments. Policies match them
// in `tools` as "resources:read" or "SERVER/resources:read" (a slash would
// not do: `tools` patterns are "name" or "server/name"), and the built-in
// pack's argument rules (credential paths, traversal, SSRF schemes) apply
// to a resource's URI as to a file tool's path. MCP tool names do not use
// ':', and an upstream tool whose name does is quarantined, so none can be
// mistaken for these.
const (
	methodToolSep     = ":"
	toolResourcesRead = "resources:read"
	toolPromptsGet    = "prompts:get"
)

// governedTool is the tool name a governed request is decided as.
func governedTool(method string) string {
	return strings.Replace(method, "/", methodToolSep, 1)
}

// governedRequest is what the gateway decides of a governed request.
type governedRequest struct {
	method string
	tool   string
	args   map[string]any
	// approvalID is _meta's MetaApprovalID, when that is a string.
	approvalID    string
	hasApprovalID bool
}

// parseGoverned reads a governed request's params. Keys match exactly, as
// servers read them (see call_wire.go): a "URI" beside "uri" must not
// change what is decided.
func parseGoverned(req *jsonrpc.Request) (governedRequest, error) {
	if req.Method == methodToolsCall {
		p, err := parseCallParams(req.Params)
		if err != nil {
			return governedRequest{}, fmt.Errorf("tools/call params: %v", err)
		}
		if p.Name == "" {
			return governedRequest{}, errors.New("tools/call needs params with a tool name")
		}
		args, err := decodeArgs(p.Arguments)
		if err != nil {
			return governedRequest{}, fmt.Errorf("tools/call %s: %v", p.Name, err)
		}
		return governedRequest{method: req.Method, tool: p.Name, args: args, approvalID: p.ApprovalID, hasApprovalID: p.HasApprovalID}, nil
	}
	g := governedRequest{method: req.Method, tool: governedTool(req.Method)}
	fields, err := exactFields(req.Params)
	if err != nil {
		return g, fmt.Errorf("%s params: %v", req.Method, err)
	}
	if meta, ok := fields["_meta"]; ok && !wire.IsNull(meta) {
		var p callParams
		if err := readApprovalID(meta, &p); err != nil {
			return g, fmt.Errorf("%s params: %v", req.Method, err)
		}
		g.approvalID, g.hasApprovalID = p.ApprovalID, p.HasApprovalID
	}
	switch req.Method {
	case methodResourcesRead, methodResourcesSubscribe:
		uri, err := requiredString(fields, "uri")
		if err != nil {
			return g, fmt.Errorf("%s needs params with a uri: %v", req.Method, err)
		}
		g.args = map[string]any{"uri": uri}
	case methodPromptsGet:
		name, err := requiredString(fields, "name")
		if err != nil {
			return g, fmt.Errorf("prompts/get needs params with a prompt name: %v", err)
		}
		args, err := decodeArgs(fields["arguments"])
		if err != nil {
			return g, fmt.Errorf("prompts/get %s: %v", name, err)
		}
		g.args = map[string]any{"name": name, "arguments": args}
	default:
		return g, fmt.Errorf("%s is not decided as a tool", req.Method)
	}
	return g, nil
}

// exactFields returns the members of a params object by exact key, the
// last of repeated keys counting. Absent or null params have none.
func exactFields(raw json.RawMessage) (map[string]json.RawMessage, error) {
	out := map[string]json.RawMessage{}
	if len(raw) == 0 || wire.IsNull(raw) {
		return out, nil
	}
	r := wire.NewValueReader(raw)
	if err := r.Open(); err != nil {
		return nil, errors.New("params must be a JSON object")
	}
	for {
		key, val, ok, err := r.Next()
		if err != nil {
			return nil, err
		}
		if !ok {
			return out, nil
		}
		out[string(key)] = val
	}
}

func requiredString(fields map[string]json.RawMessage, key string) (string, error) {
	v, ok := fields[key]
	if !ok || wire.IsNull(v) {
		return "", fmt.Errorf("%s is missing", key)
	}
	s, err := wire.JSONString(v)
	if err != nil {
		return "", fmt.Errorf("%s: %v", key, err)
	}
	if s == "" {
		return "", fmt.Errorf("%s is empty", key)
	}
	return s, nil
}

// contentResult is a resources/read or prompts/get result taken apart:
// its strings are what the post-call decision reads and redaction masks.
type contentResult struct {
	tree any
}

// skippedKeys are the members whose strings are not content: the kind of
// a result or a block, a role, a media type, and base64 data, which the
// detectors cannot read and masking would corrupt.
var skippedKeys = map[string]bool{"resultType": true, "type": true, "role": true, "mimeType": true, "blob": true}

func parseContentResult(raw json.RawMessage) (contentResult, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var tree any
	if err := dec.Decode(&tree); err != nil {
		return contentResult{}, err
	}
	if _, ok := tree.(map[string]any); !ok && tree != nil {
		return contentResult{}, errors.New("the result is not a JSON object")
	}
	return contentResult{tree: tree}, nil
}

// text is every content string of the result, one to a line.
func (r contentResult) text() string {
	var b strings.Builder
	walkStrings(r.tree, func(s string) string {
		if b.Len() > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(s)
		return s
	})
	return b.String()
}

// redact masks what det finds in the result's content strings; it returns
// how many findings it masked and, when there were any, the result
// rewritten.
func (r contentResult) redact(det pin.Detector) (int, json.RawMessage) {
	n := 0
	walkStrings(r.tree, func(s string) string {
		f := det.Sensitive(s)
		if len(f) == 0 {
			return s
		}
		n += len(f)
		return det.Redact(s, f)
	})
	if n == 0 {
		return 0, nil
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(r.tree); err != nil {
		return 0, nil
	}
	return n, bytes.TrimSpace(buf.Bytes())
}

// walkStrings calls fn on every string of v, except under skippedKeys, and
// stores what fn returns in its place. Members are visited in key order,
// so that the text decided on is the same for the same result.
func walkStrings(v any, fn func(string) string) {
	switch x := v.(type) {
	case map[string]any:
		for _, k := range slices.Sorted(maps.Keys(x)) {
			e := x[k]
			if skippedKeys[k] {
				continue
			}
			if s, ok := e.(string); ok {
				x[k] = fn(s)
				continue
			}
			walkStrings(e, fn)
		}
	case []any:
		for i, e := range x {
			if s, ok := e.(string); ok {
				x[i] = fn(s)
				continue
			}
			walkStrings(e, fn)
		}
	}
}
