// Package pin is what the gateway and the CLI know of MCP tool definitions:
// their canonical form and fingerprints, the reviewed pins of a lock file,
// the drift of a live server from its pins graded by severity, and the scan
// of tool metadata for poisoning and shadowing. It is pure: it dials nothing
// and keeps no state but the lock file it is given.
package pin

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/agentgov/agentgov/jcs"
)

// ToolDef is the part of an MCP tool definition that a model reads and acts
// on, kept as the server sent it. It is what a pin covers: a change in any
// of these fields changes what the model is told the tool does.
type ToolDef struct {
	Name         string          `json:"name"`
	Title        string          `json:"title,omitempty"`
	Description  string          `json:"description,omitempty"`
	InputSchema  json.RawMessage `json:"inputSchema,omitempty"`
	OutputSchema json.RawMessage `json:"outputSchema,omitempty"`
	Annotations  json.RawMessage `json:"annotations,omitempty"`
}

// ParseToolDef reads one tool object of a tools/list result. Fields outside
// the pinned set (icons, _meta) are ignored, and a JSON null counts as
// absent, so that the same definition always yields the same fingerprint.
func ParseToolDef(raw json.RawMessage) (ToolDef, error) {
	var t ToolDef
	if err := json.Unmarshal(raw, &t); err != nil {
		return ToolDef{}, fmt.Errorf("tool definition: %w", err)
	}
	if t.Name == "" {
		return ToolDef{}, fmt.Errorf("tool definition without a name")
	}
	for _, f := range []*json.RawMessage{&t.InputSchema, &t.OutputSchema, &t.Annotations} {
		if bytes.Equal(bytes.TrimSpace(*f), []byte("null")) {
			*f = nil
		}
	}
	return t, nil
}

// Canonical returns the RFC 8785 form of the pinned fields. Equal
// definitions, however their JSON was spaced or ordered, give equal bytes.
func (t ToolDef) Canonical() ([]byte, error) {
	b, err := jcs.Marshal(t)
	if err != nil {
		return nil, fmt.Errorf("tool %s: %w", t.Name, err)
	}
	return b, nil
}

// Fingerprint is the SHA-256 of the canonical definition, written
// "sha256:" and hex.
func (t ToolDef) Fingerprint() (string, error) {
	b, err := t.Canonical()
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

// ServerFingerprint covers a server's whole tool set: the SHA-256 of the
// canonical JSON of its tools' fingerprints, sorted. Adding, removing or
// changing any tool changes it; listing order does not.
func ServerFingerprint(tools []ToolDef) (string, error) {
	fps := make([]string, 0, len(tools))
	for _, t := range tools {
		fp, err := t.Fingerprint()
		if err != nil {
			return "", err
		}
		fps = append(fps, fp)
	}
	slices.Sort(fps)
	b, err := jcs.Marshal(fps)
	if err != nil {
		return "", fmt.Errorf("server fingerprint: %w", err)
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

// schema is the slice of JSON Schema that drift detection compares.
type schema struct {
	Type       any                `json:"type"`
	Properties map[string]*schema `json:"properties"`
	Required   []string           `json:"required"`
	Items      *schema            `json:"items"`
}

func parseSchema(raw json.RawMessage) *schema {
	s := &schema{}
	if len(raw) > 0 {
		_ = json.Unmarshal(raw, s) // a schema we cannot read compares as empty
	}
	return s
}

// typeString renders a schema's type for messages: "string",
// "string|null", or "any" when none is declared.
func (s *schema) typeString() string {
	if s == nil || s.Type == nil {
		return "any"
	}
	switch t := s.Type.(type) {
	case string:
		return t
	case []any:
		parts := make([]string, 0, len(t))
		for _, p := range t {
			parts = append(parts, fmt.Sprint(p))
		}
		slices.Sort(parts)
		return strings.Join(parts, "|")
	}
	return fmt.Sprint(s.Type)
}

// schemaValue decodes a raw schema into plain Go values for detectors that
// look at parameter descriptions.
func schemaValue(raw json.RawMessage) any {
	if len(raw) == 0 {
		return nil
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil
	}
	return v
}
