package action

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
)

func TestDecodeRoundTrips(t *testing.T) {
	in := `{"agent":{"id":"researcher-1","type":"assistant","labels":{"env":"production"}},"principal":{"user":"alice","team":"search","org":"acme"},"session":"s-42","point":"pre_tool_call","tool":{"server":"github","name":"create_issue","annotations":{"destructiveHint":false}},"args":{"n":5000,"title":"x","x":5000.5},"resource":{"type":"customer_data","id":"c-9","permission":"read"},"destination":"api.github.com","model":"gpt-4o-mini","content":"text","estimate":{"tokens":1200,"cost_usd":0.004},"approval_id":"apr_1"}`
	a, err := Decode([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := a.Args["n"].(int64); !ok {
		t.Fatalf("integer argument decoded as %T", a.Args["n"])
	}
	out, _ := json.Marshal(a)
	if string(out) != in {
		t.Fatalf("round trip changed the action:\n in %s\nout %s", in, out)
	}
}

func TestDecodeNamesTheBadField(t *testing.T) {
	for _, c := range []struct{ in, field string }{
		{`{"tool":{"name":5}}`, "tool.name"},
		{`{"colour":"red"}`, "colour"},
		{`{"point":"pre_tool"}`, "point"},
		{`{"estimate":{"tokens":-1}}`, "estimate.tokens"},
		{`{"resource":{"permission":"own"}}`, "resource.permission"},
		{`{"args":{"a":1e999}}`, "args.a"},
		{`{"args":` + strings.Repeat(`{"a":`, 40) + `1` + strings.Repeat(`}`, 40) + `}`, "args"},
	} {
		_, err := Decode([]byte(c.in))
		var fe *FieldError
		if !errors.As(err, &fe) || !strings.HasPrefix(fe.Field, c.field) {
			t.Errorf("Decode(%.60s): %v, want a field error on %s", c.in, err, c.field)
		}
	}
	for _, in := range []string{`{`, `{"a":1} {}`, `[]`, ``} {
		if _, err := Decode([]byte(in)); err == nil {
			t.Errorf("Decode(%q) succeeded", in)
		}
	}
}

func TestIDsRoundTrip(t *testing.T) {
	id := NewID(1700000000123, 0xBEEF, 0x0123456789ABCDEF)
	s := id.String()
	if !strings.HasPrefix(s, "dec_") || len(s) != 30 {
		t.Fatalf("id text %q", s)
	}
	back, err := ParseID(s)
	if err != nil || back != id || back.Time() != 1700000000123 {
		t.Fatalf("ParseID(%s) = %v, %v", s, back, err)
	}
	if _, err := ParseID("dec_" + strings.Repeat("Z", 26)); err == nil {
		t.Fatal("an id overflowing 128 bits parsed")
	}
}

// FuzzDecode is the decoding of every /v1/decide body: it must never panic,
// and whatever it accepts must be valid and encode back to an equal action.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"agent":{"id":"a"},"tool":{"name":"read_file"},"args":{"path":"/tmp/x","n":[1,2.5,{"k":null}]}}`))
	f.Add([]byte(`{"point":"post_tool_call","content":"x","estimate":{"tokens":3}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := Decode(data)
		if err != nil {
			return
		}
		if err := a.Validate(); err != nil {
			t.Fatalf("accepted an invalid action: %v", err)
		}
		out, err := json.Marshal(a)
		if err != nil {
			t.Fatalf("accepted action does not encode: %v", err)
		}
		b, err := Decode(out)
		if err != nil {
			t.Fatalf("re-decoding %s: %v", out, err)
		}
		again, _ := json.Marshal(b)
		if string(again) != string(out) {
			t.Fatalf("not stable: %s vs %s", out, again)
		}
	})
}

func TestArgsDigestIsTheSameForEqualArguments(t *testing.T) {
	a, canon, err := ArgsDigest(map[string]any{"amount": int64(5000), "to": "bob"})
	if err != nil || !strings.HasPrefix(a, "sha256:") || len(a) != len("sha256:")+64 || string(canon) != `{"amount":5000,"to":"bob"}` {
		t.Fatalf("digest %q canonical %s err %v", a, canon, err)
	}
	b, _, _ := ArgsDigest(map[string]any{"to": "bob", "amount": 5000.0})
	if a != b {
		t.Fatal("equal arguments, different digests")
	}
	none, _, _ := ArgsDigest(nil)
	empty, _, _ := ArgsDigest(map[string]any{})
	if none != empty {
		t.Fatal("no arguments and empty arguments differ")
	}
	if _, _, err := ArgsDigest(map[string]any{"x": math.NaN()}); err == nil {
		t.Fatal("NaN digested")
	}
}
