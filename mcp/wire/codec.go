package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
)

// The gateway's own JSON-RPC codec. Every message it relays is decoded and
// encoded once per leg, so this is on the hot path of every call. The SDK's
// codec (jsonrpc.DecodeMessage) runs a reflective decoder that allocates a
// large read buffer per message, which profiles showed to be the largest
// single cost of a relayed call. This one checks the frame with json.Valid,
// then walks only the top-level object, keeping params, result and error
// data as sub-slices of the frame. It accepts and rejects what the SDK's
// codec does (see codec_test.go, which compares the two), with the SDK's
// rules: keys match case-sensitively, the last of duplicate keys wins, a
// numeric id is read as a float64 and truncated to an integer.

const wireVersion = "2.0"

// DecodeMessage reads one JSON-RPC message. What cannot be read is a
// *FrameError: a parse error for what is not JSON, an invalid request for
// JSON that is not a JSON-RPC message, with the id when there is one.
func DecodeMessage(data []byte) (jsonrpc.Message, error) {
	if !json.Valid(data) {
		return nil, &FrameError{Code: jsonrpc.CodeParseError, Err: errors.New("parse error: the message is not valid JSON")}
	}
	m, err := parseMessage(data)
	if err != nil {
		fe := &FrameError{Code: jsonrpc.CodeInvalidRequest, Err: fmt.Errorf("invalid request: %v", err)}
		var probe struct {
			ID any `json:"id"`
		}
		if json.Unmarshal(data, &probe) == nil {
			if id, err := jsonrpc.MakeID(probe.ID); err == nil {
				fe.ID = id
			}
		}
		return nil, fe
	}
	return m, nil
}

// parseMessage turns valid JSON into a request or a response.
func parseMessage(data []byte) (jsonrpc.Message, error) {
	var (
		version       string
		idRaw, method []byte
		params        []byte
		result        []byte
		wireErr       *jsonrpc.Error
	)
	obj := ValueReader{data: data, maxDepth: maxMessageDepth}
	if err := obj.Open(); err != nil {
		if bytes.Equal(bytes.TrimSpace(data), []byte("null")) {
			// null decodes as an empty message, which has no version.
			return nil, fmt.Errorf("invalid message version tag %q; expected %q", "", wireVersion)
		}
		return nil, err
	}
	for {
		key, val, ok, err := obj.Next()
		if err != nil {
			return nil, err
		}
		if !ok {
			break
		}
		switch string(key) {
		case "jsonrpc":
			if IsNull(val) {
				continue // null leaves the field as it was
			}
			s, err := JSONString(val)
			if err != nil {
				return nil, fmt.Errorf("unmarshaling jsonrpc message: jsonrpc: %w", err)
			}
			version = s
		case "id":
			idRaw = val
		case "method":
			method = val
		case "params":
			params = val
		case "result":
			result = val
		case "error":
			if IsNull(val) {
				wireErr = nil
				continue
			}
			if wireErr == nil {
				wireErr = &jsonrpc.Error{}
			}
			if err := parseWireError(val, wireErr); err != nil {
				return nil, fmt.Errorf("unmarshaling jsonrpc message: error: %w", err)
			}
		}
	}
	if version != wireVersion {
		return nil, fmt.Errorf("invalid message version tag %q; expected %q", version, wireVersion)
	}
	id, err := parseID(idRaw)
	if err != nil {
		return nil, err
	}
	if method != nil {
		name := ""
		if !IsNull(method) {
			if name, err = JSONString(method); err != nil {
				return nil, fmt.Errorf("unmarshaling jsonrpc message: method: %w", err)
			}
		}
		return &jsonrpc.Request{ID: id, Method: name, Params: params}, nil
	}
	if !id.IsValid() {
		return nil, errors.New("a message with neither a method nor an id")
	}
	resp := &jsonrpc.Response{ID: id, Result: result}
	if wireErr != nil {
		resp.Error = wireErr
	}
	return resp, nil
}

// parseID reads an id as the SDK does: a number through float64, a string,
// or null (no id).
func parseID(raw []byte) (jsonrpc.ID, error) {
	if raw == nil || IsNull(raw) {
		return jsonrpc.ID{}, nil
	}
	switch raw[0] {
	case 't', 'f', '{', '[':
		return jsonrpc.ID{}, fmt.Errorf("invalid ID type %s", kindOf(raw))
	case '"':
		s, err := JSONString(raw)
		if err != nil {
			return jsonrpc.ID{}, err
		}
		return jsonrpc.MakeID(s)
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil {
		return jsonrpc.ID{}, fmt.Errorf("invalid ID %s: %w", raw, err)
	}
	return jsonrpc.MakeID(f)
}

// parseWireError fills e from a JSON-RPC error object. Like the SDK's
// decoder it decodes into e as it is, so that duplicate error keys merge.
func parseWireError(val []byte, e *jsonrpc.Error) error {
	obj := NewValueReader(val)
	if err := obj.Open(); err != nil {
		return err
	}
	for {
		key, v, ok, err := obj.Next()
		if err != nil {
			return err
		}
		if !ok {
			return nil
		}
		switch string(key) {
		case "code":
			if IsNull(v) {
				continue
			}
			if v[0] == '"' || v[0] == 't' || v[0] == 'f' || v[0] == '{' || v[0] == '[' {
				return fmt.Errorf("code: %s is not a number", kindOf(v))
			}
			n, err := strconv.ParseInt(string(v), 10, 64)
			if err != nil {
				return fmt.Errorf("code: %s is not an integer", v)
			}
			e.Code = n
		case "message":
			if IsNull(v) {
				continue
			}
			s, err := JSONString(v)
			if err != nil {
				return fmt.Errorf("message: %w", err)
			}
			e.Message = s
		case "data":
			e.Data = v
		}
	}
}

func IsNull(v []byte) bool { return len(v) == 4 && v[0] == 'n' }

func kindOf(v []byte) string {
	switch v[0] {
	case '"':
		return "string"
	case 't', 'f':
		return "bool"
	case '{':
		return "object"
	case '[':
		return "array"
	case 'n':
		return "null"
	}
	return "number"
}

// JSONString decodes a JSON string. Plain ASCII without escapes, which is
// what method names, versions and most ids are, is copied as it is; the
// rest goes through encoding/json.
func JSONString(v []byte) (string, error) {
	if v[0] != '"' {
		return "", fmt.Errorf("%s is not a string", kindOf(v))
	}
	inner := v[1 : len(v)-1]
	for _, c := range inner {
		if c == '\\' || c >= 0x80 {
			var s string
			if err := json.Unmarshal(v, &s); err != nil {
				return "", err
			}
			return s, nil
		}
	}
	return string(inner), nil
}

// ValueReader walks the members of a JSON object, or the elements of an
// array, that is already known to be valid JSON, without decoding them.
type ValueReader struct {
	data []byte
	pos  int
	// maxDepth bounds the nesting of member values, as the SDK's decoder
	// bounds a message's to 1000 levels; 0 means no bound.
	maxDepth int
}

// maxMessageDepth is the SDK decoder's bound on a message's nesting, less
// the level of the message object itself.
const maxMessageDepth = 1000 - 1

// NewValueReader reads data, one JSON object or array.
func NewValueReader(data []byte) *ValueReader { return &ValueReader{data: data} }

func (r *ValueReader) skipSpace() {
	for r.pos < len(r.data) {
		switch r.data[r.pos] {
		case ' ', '\t', '\n', '\r':
			r.pos++
		default:
			return
		}
	}
}

// open moves past the opening brace.
func (r *ValueReader) Open() error {
	r.skipSpace()
	if r.pos >= len(r.data) || r.data[r.pos] != '{' {
		return errors.New("unmarshaling jsonrpc message: not a JSON object")
	}
	r.pos++
	return nil
}

// openArray moves past the opening bracket.
func (r *ValueReader) OpenArray() error {
	r.skipSpace()
	if r.pos >= len(r.data) || r.data[r.pos] != '[' {
		return errors.New("not a JSON array")
	}
	r.pos++
	return nil
}

// nextElement returns the next element of an array; ok is false after the
// last one.
func (r *ValueReader) NextElement() (val []byte, ok bool, err error) {
	r.skipSpace()
	if r.pos < len(r.data) && r.data[r.pos] == ',' {
		r.pos++
		r.skipSpace()
	}
	if r.pos >= len(r.data) {
		return nil, false, errors.New("unexpected end of array")
	}
	if r.data[r.pos] == ']' {
		r.pos++
		return nil, false, nil
	}
	start := r.pos
	end, err := r.skipValue(start)
	if err != nil {
		return nil, false, err
	}
	r.pos = end
	return r.data[start:end], true, nil
}

// next returns the next member's key (unquoted) and raw value; ok is false
// after the last member.
func (r *ValueReader) Next() (key, val []byte, ok bool, err error) {
	r.skipSpace()
	if r.pos < len(r.data) && r.data[r.pos] == ',' {
		r.pos++
		r.skipSpace()
	}
	if r.pos >= len(r.data) {
		return nil, nil, false, errors.New("unexpected end of object")
	}
	if r.data[r.pos] == '}' {
		r.pos++
		return nil, nil, false, nil
	}
	start := r.pos
	end, err := r.skipValue(start)
	if err != nil {
		return nil, nil, false, err
	}
	key = r.data[start+1 : end-1]
	if bytes.IndexByte(key, '\\') >= 0 {
		var s string
		if err := json.Unmarshal(r.data[start:end], &s); err != nil {
			return nil, nil, false, err
		}
		key = []byte(s)
	}
	r.pos = end
	r.skipSpace()
	if r.pos >= len(r.data) || r.data[r.pos] != ':' {
		return nil, nil, false, errors.New("expected a colon after an object key")
	}
	r.pos++
	r.skipSpace()
	vstart := r.pos
	vend, err := r.skipValue(vstart)
	if err != nil {
		return nil, nil, false, err
	}
	r.pos = vend
	return key, r.data[vstart:vend], true, nil
}

// skipValue returns the end of the value starting at i. The data is valid
// JSON, so only strings and nesting need following.
func (r *ValueReader) skipValue(i int) (int, error) {
	d := r.data
	depth := 0
	for i < len(d) {
		c := d[i]
		switch {
		case c == '"':
			i++
			for i < len(d) && d[i] != '"' {
				if d[i] == '\\' {
					i++
				}
				i++
			}
			i++
		case c == '{' || c == '[':
			depth++
			if r.maxDepth > 0 && depth > r.maxDepth {
				return 0, errors.New("exceeded maximum nesting depth of 1000")
			}
			i++
		case c == '}' || c == ']':
			if depth == 0 {
				return i, nil // the end of the enclosing object ends a scalar
			}
			depth--
			i++
		case depth == 0 && (c == ',' || c == ':' || c == ' ' || c == '\t' || c == '\n' || c == '\r'):
			return i, nil
		default:
			i++
		}
		if depth == 0 && (c == '"' || c == '}' || c == ']') {
			break
		}
	}
	if depth != 0 || i > len(d) {
		return 0, errors.New("unexpected end of JSON")
	}
	return i, nil
}

// EncodeMessage is AppendMessage into a new slice.
func EncodeMessage(msg jsonrpc.Message) ([]byte, error) {
	return AppendMessage(make([]byte, 0, 256), msg)
}

// AppendMessage appends the wire form of msg to dst: the same bytes as
// jsonrpc.EncodeMessage, built by appending instead of through reflection.
// Raw params, results and error data are compacted (and so checked) as the
// SDK's encoder does, which also keeps every message on one line.
func AppendMessage(dst []byte, msg jsonrpc.Message) ([]byte, error) {
	dst = append(dst, `{"jsonrpc":"2.0"`...)
	var id jsonrpc.ID
	switch m := msg.(type) {
	case *jsonrpc.Request:
		id = m.ID
	case *jsonrpc.Response:
		id = m.ID
	default:
		return nil, fmt.Errorf("encode message: unknown message type %T", msg)
	}
	switch v := id.Raw().(type) {
	case nil:
	case int64:
		dst = append(dst, `,"id":`...)
		dst = strconv.AppendInt(dst, v, 10)
	case string:
		dst = append(dst, `,"id":`...)
		dst = appendString(dst, v)
	default:
		return nil, fmt.Errorf("encode message: id of type %T", v)
	}
	var err error
	switch m := msg.(type) {
	case *jsonrpc.Request:
		if m.Method != "" {
			dst = append(dst, `,"method":`...)
			dst = appendString(dst, m.Method)
		}
		if len(m.Params) > 0 {
			dst = append(dst, `,"params":`...)
			if dst, err = appendRaw(dst, m.Params); err != nil {
				return nil, fmt.Errorf("encode message: params: %w", err)
			}
		}
	case *jsonrpc.Response:
		if len(m.Result) > 0 {
			dst = append(dst, `,"result":`...)
			if dst, err = appendRaw(dst, m.Result); err != nil {
				return nil, fmt.Errorf("encode message: result: %w", err)
			}
		}
		if m.Error != nil {
			we := wireError(m.Error)
			dst = append(dst, `,"error":{"code":`...)
			dst = strconv.AppendInt(dst, we.Code, 10)
			dst = append(dst, `,"message":`...)
			dst = appendString(dst, we.Message)
			if len(we.Data) > 0 {
				dst = append(dst, `,"data":`...)
				if dst, err = appendRaw(dst, we.Data); err != nil {
					return nil, fmt.Errorf("encode message: error data: %w", err)
				}
			}
			dst = append(dst, '}')
		}
	}
	return append(dst, '}'), nil
}

// wireError is the JSON-RPC error an error is sent as, by the SDK's rule:
// a wrapped *jsonrpc.Error lends its code, the outer error its message.
func wireError(err error) *jsonrpc.Error {
	if we, ok := err.(*jsonrpc.Error); ok {
		return we
	}
	out := &jsonrpc.Error{Message: err.Error()}
	var wrapped *jsonrpc.Error
	if errors.As(err, &wrapped) {
		out.Code = wrapped.Code
	}
	return out
}

// appendRaw appends a raw JSON value, compacted. A value without layout
// whitespace, which is nearly every value the gateway relays, is validated
// and copied; one with it goes through json.Compact.
func appendRaw(dst, raw []byte) ([]byte, error) {
	if !hasLayout(raw) {
		if !json.Valid(raw) {
			return nil, errors.New("invalid JSON")
		}
		return append(dst, raw...), nil
	}
	buf := bytes.NewBuffer(dst)
	if err := json.Compact(buf, raw); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// hasLayout reports whether raw has whitespace outside its strings.
func hasLayout(raw []byte) bool {
	in := false
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if in {
			switch c {
			case '\\':
				i++
			case '"':
				in = false
			}
			continue
		}
		switch c {
		case '"':
			in = true
		case ' ', '\t', '\n', '\r':
			return true
		}
	}
	return false
}

// appendString appends s as a JSON string, escaped as encoding/json does
// with HTML escaping off (as the SDK encodes).
func appendString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x80 {
			var buf bytes.Buffer
			enc := json.NewEncoder(&buf)
			enc.SetEscapeHTML(false)
			_ = enc.Encode(s) // a string always encodes
			return append(dst, bytes.TrimSuffix(buf.Bytes(), []byte("\n"))...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}
