package govern

import (
	"encoding/json"
	"maps"
	"math"
	"slices"
	"strconv"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/detect"
)

// maskSensitive returns a with the secrets and personal data that the
// detectors find in everything an agent (or an upstream, through a tool
// result) can write into it replaced by "[REDACTED:<rule>]", for the audit
// record: the content; the arguments and tool annotations, keys as well as
// values, numbers included (a card number sent as a JSON number); the
// resource, the session, the point, the tool's name and server, the
// destination, the model and the approval id.
//
// The audit log is append-only and tamper-evident: nothing written to it
// can be taken out again without breaking its proofs. A credential in a
// tool's result, or a card number in a tool's arguments, must therefore
// never reach it, whether or not a policy asked for redaction; the record
// keeps what was decided on, and the digest of the arguments (taken before
// masking) still identifies the exact call. Maps are copied only where
// something is masked, so the common case costs the scan alone.
func maskSensitive(a action.Action) action.Action {
	for _, s := range []*string{&a.Content, &a.Session, &a.Tool.Name, &a.Tool.Server, &a.Resource.Type, &a.Resource.ID, &a.Resource.Permission, &a.Destination, &a.Model, &a.ApprovalID} {
		*s = maskText(*s)
	}
	// An invalid action is recorded too, with the point it named.
	a.Point = action.Point(maskText(string(a.Point)))
	if m, changed := maskMap(a.Args); changed {
		a.Args = m
	}
	if m, changed := maskMap(a.Tool.Annotations); changed {
		a.Tool.Annotations = m
	}
	return a
}

// maskDecision masks the reasons of d, which may quote what an agent sent
// (an invalid field, a rate limit's key).
func maskDecision(d action.Decision) action.Decision {
	d.Reasons = maskTexts(d.Reasons)
	return d
}

// maskTrace masks the correlation data a caller sent as headers.
func maskTrace(t *Trace) *Trace {
	if t == nil {
		return nil
	}
	m := Trace{TraceParent: maskText(t.TraceParent), CorrelationID: maskText(t.CorrelationID)}
	return &m
}

func maskTexts(ss []string) []string {
	var out []string
	for i, s := range ss {
		if m := maskText(s); m != s {
			if out == nil {
				out = slices.Clone(ss)
			}
			out[i] = m
		}
	}
	if out == nil {
		return ss
	}
	return out
}

func maskText(s string) string {
	if s == "" {
		return s
	}
	return detect.Mask(s)
}

// maskMap returns m, or a copy with masked keys and values when any key or
// value in it (at any depth) had something to mask.
func maskMap(m map[string]any) (map[string]any, bool) {
	var out map[string]any
	for k, v := range m {
		nk := maskText(k)
		nv, changed := maskValue(v)
		if !changed && nk == k {
			continue
		}
		if out == nil {
			out = maps.Clone(m)
		}
		if nk != k {
			delete(out, k)
			nk = freeKey(out, nk)
		}
		out[nk] = nv
	}
	if out == nil {
		return m, false
	}
	return out, true
}

// freeKey returns k, or k with a number after it when k is already taken:
// two keys that mask to the same text stay two keys.
func freeKey(m map[string]any, k string) string {
	if _, taken := m[k]; !taken {
		return k
	}
	for i := 2; ; i++ {
		c := k + " (" + strconv.Itoa(i) + ")"
		if _, taken := m[c]; !taken {
			return c
		}
	}
}

// minMaskedNumber: no detector finds anything in a number of fewer than 13
// digits (the shortest card number), so smaller numbers are not scanned.
const minMaskedNumber = 1e12

func maskValue(v any) (any, bool) {
	switch x := v.(type) {
	case string:
		if s := maskText(x); s != x {
			return s, true
		}
	case json.Number:
		if s := maskText(string(x)); s != string(x) {
			return s, true
		}
	case int64:
		if x >= minMaskedNumber || x <= -minMaskedNumber {
			return maskNumber(v, strconv.FormatInt(x, 10))
		}
	case int:
		if x >= minMaskedNumber || x <= -minMaskedNumber {
			return maskNumber(v, strconv.Itoa(x))
		}
	case uint64:
		if x >= minMaskedNumber {
			return maskNumber(v, strconv.FormatUint(x, 10))
		}
	case float64:
		if math.Abs(x) >= minMaskedNumber {
			return maskNumber(v, strconv.FormatFloat(x, 'f', -1, 64))
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

// maskNumber replaces a number whose digits hold personal data (a card
// number) by the masked text.
func maskNumber(v any, digits string) (any, bool) {
	if s := detect.Mask(digits); s != digits {
		return s, true
	}
	return v, false
}
