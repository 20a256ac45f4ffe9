package server_test

import (
	"testing"
)

// A body is one JSON value and nothing after it. Go's decoder stops at the
// end of the first value and its More reports no more data when what
// follows is a closing bracket, so `{...}}` and `{...}]` slipped through
// where `{...} x` was refused. Each is refused (400) and changes nothing.
func TestBodiesWithTrailingDataAreRefused(t *testing.T) {
	e := start(t)
	for _, tail := range []string{"}", "]", "}}}", " ]", "{}", " x"} {
		for _, tc := range []struct{ method, path, token, body string }{
			{"POST", "/v1/decide", "a1-tok", `{"tool":{"name":"read_file"}}`},
			{"POST", "/v1/kill", "admin-tok", `{"scope":"agent","target":"a9","reason":"x"}`},
			{"POST", "/v1/sessions", "a1-tok", `{"id":"s-trail"}`},
			{"POST", "/v1/budgets", "admin-tok", `{"id":"b-trail","scope":{"org":"acme"},"period":"daily","limits":{"calls":5}}`},
			{"PUT", "/v1/budgets/b-trail", "admin-tok", `{"scope":{"org":"acme"},"period":"daily","limits":{"calls":5}}`},
			{"POST", "/v1/approvals/apr_x/approve", "admin-tok", `{"note":"ok"}`},
		} {
			before := e.log.Size()
			code, m := e.call(tc.method, tc.path, tc.token, tc.body+tail)
			if code != 400 {
				t.Errorf("%s %s %s: %d %v, want 400", tc.method, tc.path, tc.body+tail, code, m)
			}
			if n := e.log.Size(); n != before {
				t.Errorf("%s %s %s: refused, yet %d audit entries were written", tc.method, tc.path, tc.body+tail, n-before)
			}
		}
	}
	// Whitespace after the value is not data.
	if code, m := e.call("POST", "/v1/decide", "a1-tok", `{"tool":{"name":"read_file"}}`+" \n\t "); code != 200 {
		t.Errorf("trailing whitespace: %d %v", code, m)
	}
	if code, m := e.call("POST", "/v1/sessions", "a1-tok", `{"id":"s-ws"}`+"\n"); code != 201 {
		t.Errorf("trailing newline: %d %v", code, m)
	}
}

// A query flag is true or false: anything else is an error, not a quiet
// false that shows less than was asked for.
func TestKillListFlagIsTrueOrFalse(t *testing.T) {
	e := start(t)
	if code, m := e.call("POST", "/v1/kill", "admin-tok", `{"scope":"agent","target":"a9","reason":"x"}`); code != 201 {
		t.Fatalf("kill: %d %v", code, m)
	}
	for _, v := range []string{"maybe", "1", "TRUE", "yes"} {
		if code, m := e.call("GET", "/v1/kill?all="+v, "admin-tok", ""); code != 400 {
			t.Errorf("all=%s: %d %v, want 400", v, code, m)
		}
	}
	for _, v := range []string{"true", "false", ""} {
		if code, m := e.call("GET", "/v1/kill?all="+v, "admin-tok", ""); code != 200 || len(m["switches"].([]any)) != 1 {
			t.Errorf("all=%s: %d %v", v, code, m)
		}
	}
}
