package server_test

import (
	"fmt"
	"testing"
)

// An agent reports the outcome of its own allowed call with token counts
// whose sum does not fit in 64 bits. Were it taken, the total would wrap
// negative and wipe what the agent's budget had counted. Such numbers are
// refused (400) before anything is recorded, and the budget still counts
// what was spent.
func TestOutcomeNumbersCannotWrapBudgets(t *testing.T) {
	e := start(t)
	e.budget(`{"id":"toks","scope":{"org":"acme"},"period":"none","limits":{"tokens":1000}}`)
	spend := func(body string) (int, map[string]any) {
		t.Helper()
		_, d := e.call("POST", "/v1/decide", "a1-tok", `{"tool":{"name":"read_file"},"estimate":{"tokens":10}}`)
		id, _ := d["id"].(string)
		if d["effect"] != "allow" {
			t.Fatalf("decide: %v", d)
		}
		return e.call("POST", "/v1/decisions/"+id+"/outcome", "a1-tok", body)
	}
	if code, m := spend(`{"status":"ok","tokens":900}`); code != 200 {
		t.Fatalf("honest outcome: %d %v", code, m)
	}
	before, entries := e.spent("acme"), e.log.Size()
	const half = 1 << 62
	for _, body := range []string{
		fmt.Sprintf(`{"status":"ok","input_tokens":%d,"output_tokens":%d}`, uint64(half), uint64(half)),
		fmt.Sprintf(`{"status":"ok","input_tokens":%d,"output_tokens":1}`, uint64(1<<63-1)),
		`{"status":"ok","tokens":9223372036854775807}`,
		`{"status":"ok","cost_usd":1e300}`,
		`{"status":"ok","output_tokens":10000000001}`,
	} {
		code, m := spend(body)
		if code != 400 {
			t.Errorf("%s: %d %v, want 400", body, code, m)
		}
		entries++ // the decision
	}
	if got := e.spent("acme"); got.Tokens != before.Tokens {
		t.Errorf("tokens spent %d after the hostile outcomes, want %d", got.Tokens, before.Tokens)
	}
	if n := e.log.Size(); n != entries {
		t.Errorf("the refused outcomes left %d audit entries", n-entries)
	}
}

// The same through a reservation: two decisions each estimating the
// largest token count would overflow the budget's reserved counter, and
// from then on every decision it covers, of any agent, is denied as
// "budget state unavailable". Such estimates are refused (400) and decide
// nothing; the budget keeps answering for everyone.
func TestEstimatesCannotBreakABudgetForEveryone(t *testing.T) {
	e := start(t)
	e.budget(`{"id":"cost","scope":{"org":"acme"},"period":"none","limits":{"cost_usd":10}}`)
	before := e.log.Size()
	for _, body := range []string{
		`{"tool":{"name":"read_file"},"estimate":{"tokens":9223372036854775807}}`,
		`{"tool":{"name":"read_file"},"estimate":{"tokens":9223372036854775807}}`,
		`{"tool":{"name":"read_file"},"estimate":{"cost_usd":1e300}}`,
		`{"tool":{"name":"read_file"},"estimate":{"tokens":10000000001}}`,
	} {
		if code, m := e.call("POST", "/v1/decide", "a1-tok", body); code != 400 {
			t.Errorf("%s: %d %v, want 400", body, code, m)
		}
	}
	if n := e.log.Size(); n != before {
		t.Errorf("the refused estimates left %d audit entries", n-before)
	}
	// Another agent of the same org is still decided on its merits.
	_, d := e.call("POST", "/v1/decide", "a2-tok", `{"tool":{"name":"read_file"},"estimate":{"tokens":10,"cost_usd":1}}`)
	if d["effect"] != "allow" {
		t.Fatalf("a2 after a1's estimates: %v", d)
	}
}
