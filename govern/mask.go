package govern

import (
	"maps"
	"slices"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/detect"
)

// maskSensitive returns a with the secrets and personal data that the
// detectors find in its text (the content, and every string among the
// arguments) replaced by "[REDACTED:<rule>]", for the audit record.
//
// The audit log is append-only and tamper-evident: nothing written to it
// can be taken out again without breaking its proofs. A credential in a
// tool's result, or a card number in a tool's arguments, must therefore
// never reach it, whether or not a policy asked for redaction; the record
// keeps what was decided on, and the digest of the arguments (taken before
// masking) still identifies the exact call. Arguments are copied only where
// something is masked, so the common case costs the scan alone.
func maskSensitive(a action.Action) action.Action {
	if a.Content != "" {
		a.Content = maskText(a.Content)
	}
	if m, changed := maskMap(a.Args); changed {
		a.Args = m
	}
	return a
}

func maskText(s string) string {
	fs := append(detect.Secrets(s), detect.PII(s)...)
	if len(fs) == 0 {
		return s
	}
	return detect.Redact(s, fs)
}

// maskMap returns m, or a copy with masked strings when any string in it
// (at any depth) had something to mask.
func maskMap(m map[string]any) (map[string]any, bool) {
	var out map[string]any
	for k, v := range m {
		nv, changed := maskValue(v)
		if !changed {
			continue
		}
		if out == nil {
			out = maps.Clone(m)
		}
		out[k] = nv
	}
	if out == nil {
		return m, false
	}
	return out, true
}

func maskValue(v any) (any, bool) {
	switch x := v.(type) {
	case string:
		if s := maskText(x); s != x {
			return s, true
		}
	case map[string]any:
		return maskMap(x)
	case []any:
		var out []any
		for i, e := range x {
			ne, changed := maskValue(e)
			if !changed {
				continue
			}
			if out == nil {
				out = slices.Clone(x)
			}
			out[i] = ne
		}
		if out != nil {
			return out, true
		}
	}
	return v, false
}
