package wire

import (
	"encoding/json"
	"strings"
	"testing"
)

// The _meta traceparent becomes a header of the POST only when it has a
// traceparent's characters: a value built to split the header, or to be
// huge, is left out rather than sent or failing the request.
func TestRequestTraceparentTakesOnlyATraceparent(t *testing.T) {
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	for _, c := range []struct {
		params string
		want   string
	}{
		{`{"name":"echo","_meta":{"traceparent":"` + tp + `"}}`, tp},
		{`{"name":"echo"}`, ""},
		{`{"name":"echo","arguments":{"traceparent":"` + tp + `"}}`, ""},
		{`{"_meta":{"traceparent":"00-x\r\nX-Injected: 1"}}`, ""},
		{`{"_meta":{"traceparent":"` + strings.Repeat("0", 200) + `"}}`, ""},
		{`{"_meta":{"traceparent":{"a":1}}}`, ""},
		{`{"_meta":{"traceparent":"00-4BF9"}}`, ""},
		{`not json "traceparent"`, ""},
	} {
		if got := requestTraceparent(json.RawMessage(c.params)); got != c.want {
			t.Errorf("%.60s: %q, want %q", c.params, got, c.want)
		}
	}
}
