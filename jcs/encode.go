package jcs

import (
	"bytes"
	"encoding"
	"encoding/json"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
)

// encoder writes canonical JSON straight from Go values, without encoding
// with encoding/json and parsing the text back: the audit log canonicalises
// every decision, and that round trip was a fifth of the server's CPU. It
// follows encoding/json's rules (tags, omitempty, omitzero, Marshaler and
// TextMarshaler) and hands anything outside them (embedded structs, the
// ",string" option, non-string map keys, byte slices) to the slow path for
// that value alone. TestEncoderMatchesRoundTrip holds it to the slow path.
type encoder struct {
	buf bytes.Buffer
}

var (
	jsonMarshaler = reflect.TypeFor[json.Marshaler]()
	textMarshaler = reflect.TypeFor[encoding.TextMarshaler]()
	jsonNumber    = reflect.TypeFor[json.Number]()
)

// How a type marshals itself, if it does: its own methods, or those of a
// pointer to it (usable when the value is addressable), json.Marshaler
// first, as encoding/json decides.
const (
	selfJSON = 1 << iota
	selfText
	ptrJSON
	ptrText
)

var marshalers sync.Map // reflect.Type -> int

// marshalerOf caches the answer: reflect's Implements is a tenth of the
// encoding's cost when asked for every value.
func marshalerOf(t reflect.Type) int {
	if m, ok := marshalers.Load(t); ok {
		return m.(int)
	}
	m := 0
	if t.Implements(jsonMarshaler) {
		m |= selfJSON
	}
	if t.Implements(textMarshaler) {
		m |= selfText
	}
	if t.Kind() != reflect.Pointer {
		if pt := reflect.PointerTo(t); pt.Implements(jsonMarshaler) {
			m |= ptrJSON
		} else if pt.Implements(textMarshaler) {
			m |= ptrText
		}
	}
	marshalers.Store(t, m)
	return m
}

func (e *encoder) value(v reflect.Value) error {
	if !v.IsValid() {
		e.buf.WriteString("null")
		return nil
	}
	t := v.Type()
	// The order is encoding/json's: a pointer's methods first when the
	// value is addressable, json.Marshaler before TextMarshaler.
	nilPtr := (t.Kind() == reflect.Pointer || t.Kind() == reflect.Interface) && v.IsNil()
	switch m := marshalerOf(t); {
	case m&ptrJSON != 0 && v.CanAddr():
		return e.slow(v.Addr().Interface())
	case m&selfJSON != 0 && nilPtr, m&selfText != 0 && nilPtr:
		e.buf.WriteString("null")
		return nil
	case m&selfJSON != 0:
		return e.slow(v.Interface())
	case m&ptrText != 0 && v.CanAddr():
		return e.text(v.Addr().Interface().(encoding.TextMarshaler))
	case m&selfText != 0:
		return e.text(v.Interface().(encoding.TextMarshaler))
	}
	if t == jsonNumber {
		return e.slow(v.Interface())
	}
	switch t.Kind() {
	case reflect.Bool:
		if v.Bool() {
			e.buf.WriteString("true")
		} else {
			e.buf.WriteString("false")
		}
	case reflect.String:
		writeString(&e.buf, v.String())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		e.buf.WriteString(strconv.FormatInt(v.Int(), 10))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		e.buf.WriteString(strconv.FormatUint(v.Uint(), 10))
	case reflect.Float32, reflect.Float64:
		s, err := formatNumber(v.Float())
		if err != nil {
			return err
		}
		e.buf.WriteString(s)
	case reflect.Interface, reflect.Pointer:
		if v.IsNil() {
			e.buf.WriteString("null")
			return nil
		}
		return e.value(v.Elem())
	case reflect.Slice:
		if v.IsNil() {
			e.buf.WriteString("null")
			return nil
		}
		if t.Elem().Kind() == reflect.Uint8 {
			return e.slow(v.Interface())
		}
		return e.list(v)
	case reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return e.slow(v.Interface())
		}
		return e.list(v)
	case reflect.Map:
		if v.IsNil() {
			e.buf.WriteString("null")
			return nil
		}
		if t.Key().Kind() != reflect.String || t.Key().Implements(textMarshaler) {
			return e.slow(v.Interface())
		}
		return e.object(v)
	case reflect.Struct:
		return e.structure(v)
	default:
		return e.slow(v.Interface())
	}
	return nil
}

func (e *encoder) list(v reflect.Value) error {
	e.buf.WriteByte('[')
	for i := 0; i < v.Len(); i++ {
		if i > 0 {
			e.buf.WriteByte(',')
		}
		if err := e.value(v.Index(i)); err != nil {
			return err
		}
	}
	e.buf.WriteByte(']')
	return nil
}

func (e *encoder) object(v reflect.Value) error {
	keys := make([]string, 0, v.Len())
	for _, k := range v.MapKeys() {
		keys = append(keys, k.String())
	}
	slices.SortFunc(keys, compareUTF16)
	e.buf.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			e.buf.WriteByte(',')
		}
		writeString(&e.buf, k)
		e.buf.WriteByte(':')
		if err := e.value(v.MapIndex(reflect.ValueOf(k).Convert(v.Type().Key()))); err != nil {
			return err
		}
	}
	e.buf.WriteByte('}')
	return nil
}

type field struct {
	name      string
	index     int
	omitEmpty bool
	omitZero  bool
}

// fieldsCache holds, per struct type, its JSON fields in canonical order, or
// nil when the type needs the slow path.
var fieldsCache sync.Map // reflect.Type -> []field

func fieldsOf(t reflect.Type) ([]field, bool) {
	if f, ok := fieldsCache.Load(t); ok {
		fs := f.([]field)
		return fs, fs != nil
	}
	var fs []field
	ok := true
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		if sf.Anonymous {
			ok = false
			break
		}
		if !sf.IsExported() {
			continue
		}
		tag := sf.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if name == "" {
			name = sf.Name
		}
		f := field{name: name, index: i}
		for _, o := range strings.Split(opts, ",") {
			switch o {
			case "omitempty":
				f.omitEmpty = true
			case "omitzero":
				f.omitZero = true
			case "string":
				ok = false
			}
		}
		fs = append(fs, f)
	}
	if !ok {
		fieldsCache.Store(t, []field(nil))
		return nil, false
	}
	slices.SortFunc(fs, func(a, b field) int { return compareUTF16(a.name, b.name) })
	if fs == nil {
		fs = []field{}
	}
	fieldsCache.Store(t, fs)
	return fs, true
}

func (e *encoder) structure(v reflect.Value) error {
	fs, ok := fieldsOf(v.Type())
	if !ok {
		return e.slow(v.Interface())
	}
	e.buf.WriteByte('{')
	first := true
	for _, f := range fs {
		fv := v.Field(f.index)
		if f.omitEmpty && isEmpty(fv) || f.omitZero && isZero(fv) {
			continue
		}
		if !first {
			e.buf.WriteByte(',')
		}
		first = false
		writeString(&e.buf, f.name)
		e.buf.WriteByte(':')
		if err := e.value(fv); err != nil {
			return err
		}
	}
	e.buf.WriteByte('}')
	return nil
}

// isEmpty is encoding/json's omitempty test.
func isEmpty(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Array, reflect.Map, reflect.Slice, reflect.String:
		return v.Len() == 0
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.Interface, reflect.Pointer:
		return v.IsZero()
	}
	return false
}

// isZero is encoding/json's omitzero test: an IsZero method if the type has
// one, else the zero value.
func isZero(v reflect.Value) bool {
	if z, ok := v.Interface().(interface{ IsZero() bool }); ok {
		if (v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface) && v.IsNil() {
			return true
		}
		return z.IsZero()
	}
	return v.IsZero()
}

// text writes what a TextMarshaler (identifiers, times) makes of itself as a
// JSON string, as encoding/json does, without the slow path's round trip:
// these sit in every audit record.
func (e *encoder) text(m encoding.TextMarshaler) error {
	b, err := m.MarshalText()
	if err != nil {
		return err
	}
	if !utf8.Valid(b) {
		// encoding/json replaces invalid bytes; let it.
		return e.slow(m)
	}
	writeString(&e.buf, string(b))
	return nil
}

// slow canonicalises one value the long way: encoding/json, then Transform.
func (e *encoder) slow(v any) error {
	c, err := marshalSlow(v)
	if err != nil {
		return err
	}
	e.buf.Write(c)
	return nil
}
