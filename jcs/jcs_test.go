package jcs

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"
	"unicode/utf8"
)

func TestTransform(t *testing.T) {
	cases := []struct{ in, want string }{
		// Key order by UTF-16 code units, whitespace dropped (RFC 8785 §3.2.3 example keys).
		{`{"b": 1, "a": [true, null, "x"]}`, `{"a":[true,null,"x"],"b":1}`},
		{`{"\u20ac":1,"\r":2,"1":3,"\ud83d\ude00":4,"\u00e9":5}`, "{\"\\r\":2,\"1\":3,\"é\":5,\"€\":1,\"😀\":4}"},
		// Numbers as ECMAScript prints them.
		{`[1.0, 5000, 5000.5, 1e21, 1e-7, 0.000001, -0, 123456789012345680000, 4.5e-10]`,
			`[1,5000,5000.5,1e+21,1e-7,0.000001,0,123456789012345680000,4.5e-10]`},
		// Escapes: only the short ones and control characters.
		{`"a\u0001\n\"\/<>"`, `"a\u0001\n\"/<>"`},
	}
	for _, c := range cases {
		got, err := Transform([]byte(c.in))
		if err != nil {
			t.Fatalf("Transform(%s): %v", c.in, err)
		}
		if string(got) != c.want {
			t.Errorf("Transform(%s)\n got %s\nwant %s", c.in, got, c.want)
		}
	}
}

func TestTransformRejects(t *testing.T) {
	for _, in := range []string{`{`, `{"a":1} {}`, ``} {
		if _, err := Transform([]byte(in)); err == nil {
			t.Errorf("Transform(%q) succeeded, want an error", in)
		}
	}
}

func TestMarshalEqualValuesEqualBytes(t *testing.T) {
	a, _ := Marshal(map[string]any{"x": int64(5000), "y": []any{"z"}})
	b, _ := Marshal(map[string]any{"y": []any{"z"}, "x": 5000.0})
	if string(a) != string(b) {
		t.Fatalf("equal values, different bytes: %s vs %s", a, b)
	}
}

func FuzzTransform(f *testing.F) {
	f.Add(`{"a":1,"b":[1.5,"x",null]}`)
	f.Add(`"\u0000"`)
	f.Fuzz(func(t *testing.T, in string) {
		out, err := Transform([]byte(in))
		if err != nil {
			return
		}
		again, err := Transform(out)
		if err != nil || string(again) != string(out) {
			t.Fatalf("canonical form is not stable: %s -> %s (%v)", out, again, err)
		}
	})
}

// writeStringByRune is the plain rune-by-rune statement of the escaping
// rules; writeString copies unescaped runs in bulk and must agree with it.
func writeStringByRune(buf *bytes.Buffer, s string) {
	buf.WriteByte('"')
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			buf.WriteString("\ufffd")
		case r == '"':
			buf.WriteString(`\"`)
		case r == '\\':
			buf.WriteString(`\\`)
		case r == '\b':
			buf.WriteString(`\b`)
		case r == '\f':
			buf.WriteString(`\f`)
		case r == '\n':
			buf.WriteString(`\n`)
		case r == '\r':
			buf.WriteString(`\r`)
		case r == '\t':
			buf.WriteString(`\t`)
		case r < 0x20:
			fmt.Fprintf(buf, `\u%04x`, r)
		default:
			buf.WriteString(s[i : i+size])
		}
		i += size
	}
	buf.WriteByte('"')
}

func FuzzWriteString(f *testing.F) {
	for _, s := range []string{"", "plain", "quote\" back\\slash", "\x00\x01\x1f\x7f", "tab\tnl\ncr\r\b\f", "é€😀", "bad\xffutf8\xc3", "\xe2\x82", "mixed \"é\" \x02 end"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var got, want bytes.Buffer
		writeString(&got, s)
		writeStringByRune(&want, s)
		if got.String() != want.String() {
			t.Fatalf("writeString(%q) = %q, want %q", s, got.String(), want.String())
		}
	})
}

// Integers are written with all their digits: above 2^53 RFC 8785's double
// would give two account numbers one form (and one digest). Up to 2^53 the
// bytes are RFC 8785's; numbers that are not integer literals still take
// the double's form.
func TestIntegersKeepEveryDigit(t *testing.T) {
	for _, c := range []struct {
		in   any
		want string
	}{
		{int64(12345678901234567), "12345678901234567"},
		{int64(12345678901234568), "12345678901234568"},
		{int64(-9007199254740993), "-9007199254740993"},
		{int64(9007199254740992), "9007199254740992"},
		{uint64(18446744073709551615), "18446744073709551615"},
		{int64(100), "100"},
		{json.Number("12345678901234567"), "12345678901234567"},
		{json.Number("-0"), "0"},
		{json.Number("1e2"), "100"},
		{json.Number("12345678901234567.0"), "12345678901234568"},
		{json.Number("123456789012345678901234567890"), "1.2345678901234568e+29"},
		{12345678901234567.0, "12345678901234568"},
	} {
		got, err := Marshal(c.in)
		if err != nil || string(got) != c.want {
			t.Errorf("Marshal(%v) = %s, %v; want %s", c.in, got, err, c.want)
		}
		slow, err := marshalSlow(c.in)
		if err != nil || string(slow) != c.want {
			t.Errorf("marshalSlow(%v) = %s, %v; want %s", c.in, slow, err, c.want)
		}
	}
}
