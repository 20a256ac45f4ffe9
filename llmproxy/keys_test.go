package llmproxy

import (
	"bytes"
	"encoding/json"
	"io"
	"strconv"
	"strings"
	"testing"
)

// duplicateKeysByDecoder is checkKeys the slow way, with encoding/json's
// tokens: the reference the byte scan must agree with.
func duplicateKeysByDecoder(body []byte) bool {
	type frame struct {
		keys map[string]bool
		key  bool
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err == io.EOF || err != nil {
			return false
		}
		if n := len(stack); n > 0 && stack[n-1].keys != nil && stack[n-1].key {
			if k, ok := tok.(string); ok {
				f := foldKey(k)
				if stack[n-1].keys[f] {
					return true
				}
				stack[n-1].keys[f], stack[n-1].key = true, false
				continue
			}
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &frame{keys: map[string]bool{}, key: true})
			continue
		case json.Delim('['):
			stack = append(stack, &frame{})
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
		if n := len(stack); n > 0 && stack[n-1].keys != nil {
			stack[n-1].key = true
		}
	}
}

func FuzzCheckKeysMatchesADecoder(f *testing.F) {
	for _, s := range []string{
		`{"a":1,"b":{"c":[1,{"d":2,"D":3}]}}`,
		`{"model":"m","messages":[{"role":"user","content":"x","content":"y"}]}`,
		`{"a\\"b":1,"A\\"B":2}`,
		`{"k":1,"\u212a":2}`,
		`{"s":"a,\"b\":{","b":[]}`,
		`[{"x":1},{"x":1}]`,
		`{"` + strings.Repeat("k", 40) + `":{}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var v any
		if json.Unmarshal(body, &v) != nil {
			return
		}
		got := checkKeys(body) != nil
		if want := duplicateKeysByDecoder(body); got != want {
			t.Fatalf("checkKeys says duplicate=%v, the decoder %v, for %s", got, want, body)
		}
	})
}

// An object of many keys costs linear time: past a few, keys are kept
// folded in a map.
func TestManyKeysAreCheckedInOnePass(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{`)
	for i := range 5000 {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(`"k` + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + `_` + strconv.Itoa(i) + `":1`)
	}
	b.WriteString(`}`)
	if f := checkKeys([]byte(b.String())); f != nil {
		t.Fatalf("distinct keys refused: %v", f)
	}
	if f := checkKeys([]byte(strings.TrimSuffix(b.String(), "}") + `,"KA_0":3}`)); f == nil {
		t.Fatal("a key named again, in upper case, after 5000 others was not found")
	}
}
