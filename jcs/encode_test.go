package jcs

import (
	"encoding/json"
	"math"
	"testing"
	"time"
)

type inner struct {
	Z string            `json:"z"`
	A int64             `json:"a,omitempty"`
	M map[string]string `json:"m,omitempty"`
}

type stamp struct{ s string }

func (s stamp) MarshalText() ([]byte, error) { return []byte("t:" + s.s), nil }

// ptrStamp marshals itself only through a pointer: encoding/json uses that
// when the value is addressable (reached through a pointer), not otherwise.
type ptrStamp struct{ S string }

func (s *ptrStamp) MarshalText() ([]byte, error) { return []byte("p:" + s.S), nil }

// both is a TextMarshaler whose pointer is also a json.Marshaler.
type both struct{ s string }

func (b both) MarshalText() ([]byte, error)  { return []byte("text:" + b.s), nil }
func (b *both) MarshalJSON() ([]byte, error) { return []byte(`{"json":"` + b.s + `"}`), nil }

type record struct {
	Name    string          `json:"name"`
	Skip    string          `json:"-"`
	Args    map[string]any  `json:"args,omitempty"`
	Inner   inner           `json:"inner,omitzero"`
	Ptr     *inner          `json:"ptr,omitempty"`
	When    time.Time       `json:"when"`
	Later   time.Time       `json:"later,omitzero"`
	Stamp   stamp           `json:"stamp"`
	PStamp  ptrStamp        `json:"pstamp"`
	NoStamp *stamp          `json:"no_stamp"`
	Both    both            `json:"both"`
	List    []string        `json:"list"`
	Raw     json.RawMessage `json:"raw,omitempty"`
	Bytes   []byte          `json:"bytes,omitempty"`
	F       float64         `json:"f"`
	U       uint64          `json:"u"`
	NoTag   bool
	private int
	Any     any            `json:"any"`
	IntKeys map[int]string `json:"int_keys,omitempty"`
}

func TestEncoderMatchesRoundTrip(t *testing.T) {
	values := []any{
		nil, true, "a<b>&\u2028\xff", int64(math.MaxInt64), int64(9007199254740993), 1e21, 1e-7, math.Copysign(0, -1), 5000.5,
		map[string]any{"€": 1, "\r": 2, "😀": []any{nil, false, map[string]any{}}, "b": json.Number("1.50")},
		[]any{}, []string(nil), map[string]string(nil),
		record{Name: "n", Args: map[string]any{"path": "/tmp", "n": int64(3)}, When: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC),
			Stamp: stamp{"x"}, Raw: json.RawMessage(`{"b": 1, "a": [2, 3.0]}`), Bytes: []byte{1, 2, 3}, F: 0.1, U: math.MaxUint64,
			Ptr: &inner{Z: "p", M: map[string]string{"k": "v"}}, Any: map[string]any{"x": []any{1.5}}, IntKeys: map[int]string{2: "b", 10: "a"}},
		&record{Name: "pointer", PStamp: ptrStamp{"addressable"}, Both: both{"addressable"}},
		record{Name: "value", PStamp: ptrStamp{"not addressable"}, Both: both{"not addressable"}, NoStamp: &stamp{"set"}},
		struct {
			inner
			X int `json:"x"`
		}{inner{Z: "embedded"}, 1},
	}
	for _, v := range values {
		want, werr := marshalSlow(v)
		got, gerr := Marshal(v)
		if (werr == nil) != (gerr == nil) || string(got) != string(want) {
			t.Errorf("Marshal(%#v)\n got %s (%v)\nwant %s (%v)", v, got, gerr, want, werr)
		}
	}
	for _, bad := range []any{math.NaN(), math.Inf(1), map[string]any{"x": math.Inf(-1)}} {
		if _, err := Marshal(bad); err == nil {
			t.Errorf("Marshal(%v) succeeded", bad)
		}
	}
}

func FuzzEncoderMatchesRoundTrip(f *testing.F) {
	f.Add(`{"a":[1,2.5,"x",null,true,{"b":{}}],"\u00e9":"\ud83d\ude00"}`)
	f.Fuzz(func(t *testing.T, in string) {
		var v any
		if err := json.Unmarshal([]byte(in), &v); err != nil {
			return
		}
		want, werr := marshalSlow(v)
		got, gerr := Marshal(v)
		if (werr == nil) != (gerr == nil) || string(got) != string(want) {
			t.Fatalf("Marshal(%s)\n got %s (%v)\nwant %s (%v)", in, got, gerr, want, werr)
		}
	})
}
