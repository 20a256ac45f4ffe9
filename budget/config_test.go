package budget

import (
	"encoding/json"
	"testing"
)

// FuzzDecodeConfig feeds untrusted bodies to the config parser: it must
// never panic, and whatever it accepts must survive encoding and decoding
// unchanged (so what is stored is what was validated).
func FuzzDecodeConfig(f *testing.F) {
	for _, s := range []string{
		`{"id":"acme-monthly","scope":{"org":"acme"},"period":"monthly","timezone":"UTC","limits":{"cost_usd":5000,"tokens":0,"input_tokens":0,"output_tokens":0,"calls":0},"thresholds":{"soft":0.8,"throttle":0.85,"hard":1.0,"kill":0},"throttle":"require_approval"}`,
		`{"id":"r","period":"5h","limits":{"cost_usd":1e-6,"calls":3},"thresholds":{"throttle":0.5},"throttle":"rate:2/1m"}`,
		`{"id":"s","scope":{"session":"x","agent":"a"},"period":"session","limits":{"tokens":10}}`,
		`{"id":"x","period":"daily","limits":{"cost_usd":-1}}`,
		`{"id":"x","period":"7d","timezone":"Asia/Tokyo"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := DecodeConfig(data)
		if err != nil {
			return
		}
		raw, err := json.Marshal(c)
		if err != nil {
			t.Fatalf("encode accepted config %+v: %v", c, err)
		}
		back, err := DecodeConfig(raw)
		if err != nil || back != c {
			t.Fatalf("%s: accepted as %+v, re-read from %s as %+v, %v", data, c, raw, back, err)
		}
	})
}
