package provenance

import (
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// View is one session's ledger as it stood when the view was taken. It is
// immutable: an evaluation sees one consistent state whatever is added
// meanwhile.
type View struct {
	st *state
}

// Tainted reports whether untrusted content has been seen in the session.
func (v *View) Tainted() bool { return v.st.tainted }

// Flagged reports whether a policy flagged untrusted content of the
// session (instructions addressed to the model, say).
func (v *View) Flagged() bool { return v.st.flagged }

// Tools returns the tools called in the session, oldest first (at most the
// last 256). The slice is shared: read it, never write it.
func (v *View) Tools() []string { return v.st.tools }

// Entries returns how many pieces of content the view holds.
func (v *View) Entries() int { return len(v.st.entries) }

// Sources returns the sources of the content in which the value occurs
// (after normalisation, as a substring), trusted ones first and then in
// the order the content was seen; nil for a value too short to carry
// provenance or found nowhere.
func (v *View) Sources(value string) []string {
	var out []string
	v.scan(normalizeValue(value), func(e *entry) bool {
		for _, s := range out {
			if s == e.source {
				return true
			}
		}
		out = append(out, e.source)
		return true
	})
	if len(out) > 1 {
		// Trusted sources first, keeping the order within each kind.
		trusted := v.trustedSet()
		j := 0
		for i, s := range out {
			if trusted[s] {
				copy(out[j+1:i+1], out[j:i])
				out[j] = s
				j++
			}
		}
	}
	return out
}

func (v *View) trustedSet() map[string]bool {
	m := map[string]bool{}
	for _, e := range v.st.entries {
		if e.trusted {
			m[e.source] = true
		}
	}
	return m
}

// Untrusted reports whether the value occurs in untrusted content of the
// session and in no trusted content.
func (v *View) Untrusted(value string) bool {
	untrusted, trusted := false, false
	v.scan(normalizeValue(value), func(e *entry) bool {
		if e.trusted {
			trusted = true
			return false
		}
		untrusted = true
		return true
	})
	return untrusted && !trusted
}

// UntrustedParts returns the parts of a value that are untrusted: its
// words (split at whitespace) that look like values rather than prose (they
// hold a digit, an @ or a /, or are at least 12 characters long) and occur
// in untrusted content and in no trusted content. A message body is never
// found whole in a tool's result; the account number, access key or
// address inside it may be.
func (v *View) UntrustedParts(value string) []string {
	var out []string
	for _, w := range strings.Fields(value) {
		if !valueLike(w) || slices.Contains(out, w) {
			continue
		}
		if v.Untrusted(w) {
			out = append(out, w)
		}
	}
	return out
}

func valueLike(w string) bool {
	if len(w) >= 12 {
		return true
	}
	return strings.ContainsAny(w, "0123456789@/")
}

// scan calls fn for every entry holding the normalised value, oldest first,
// until fn returns false.
func (v *View) scan(norm string, fn func(*entry) bool) {
	if !long(norm) || len(v.st.entries) == 0 {
		return
	}
	p := newProbes(norm)
	for _, e := range v.st.entries {
		if e.filter.mayHold(&p) && strings.Contains(e.text, norm) && !fn(e) {
			return
		}
	}
}

// Values calls fn with every string and number inside v (a string, a
// number, or a list or map of them at any depth), numbers written as a
// person writes them (5000, 12.5), until fn returns false. It is how a
// policy function reads "any value inside".
func Values(v any, fn func(string) bool) bool {
	switch x := v.(type) {
	case nil:
		return true
	case string:
		return fn(x)
	case bool:
		return true
	case float64:
		return fn(formatFloat(x))
	case float32:
		return fn(formatFloat(float64(x)))
	case int:
		return fn(strconv.Itoa(x))
	case int64:
		return fn(strconv.FormatInt(x, 10))
	case uint64:
		return fn(strconv.FormatUint(x, 10))
	case []any:
		for _, e := range x {
			if !Values(e, fn) {
				return false
			}
		}
		return true
	case map[string]any:
		for _, e := range x {
			if !Values(e, fn) {
				return false
			}
		}
		return true
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Slice, reflect.Array:
		for i := 0; i < rv.Len(); i++ {
			if !Values(rv.Index(i).Interface(), fn) {
				return false
			}
		}
	case reflect.Map:
		it := rv.MapRange()
		for it.Next() {
			if !Values(it.Value().Interface(), fn) {
				return false
			}
		}
	case reflect.String:
		return fn(rv.String())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return fn(strconv.FormatInt(rv.Int(), 10))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return fn(strconv.FormatUint(rv.Uint(), 10))
	case reflect.Float32, reflect.Float64:
		return fn(formatFloat(rv.Float()))
	}
	return true
}

func formatFloat(f float64) string {
	if f == math.Trunc(f) && math.Abs(f) < 1e15 {
		return strconv.FormatInt(int64(f), 10)
	}
	return strconv.FormatFloat(f, 'f', -1, 64)
}
