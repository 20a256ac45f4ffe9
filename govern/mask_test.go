package govern_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/audit"
	"github.com/agentgov/agentgov/govern"
)

// Secrets and personal data a hostile or careless agent puts wherever it
// can. Each is found by one of the detectors.
var leaks = map[string]string{
	"github token": "ghp_u8jzPde0IgxLd6GncfBAepfJBd0Kh8oOOL8d",
	"aws key":      "AKIAIOSFODNN7EXAMPLE",
	"stripe key":   "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
	"e-mail":       "jane.doe@example.com",
	"card":         "4111111111111111",
	"other card":   "5555555555554444",
	"iban":         "DE89370400440532013000",
}

// logText is every record in the audit log, as stored.
func logText(t *testing.T, log *audit.Log) string {
	t.Helper()
	entries, err := log.Entries(context.Background(), -1, 10_000)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, e := range entries {
		b.Write(e.Record)
		b.WriteByte('\n')
	}
	return b.String()
}

func assertNoLeaks(t *testing.T, where, text string) {
	t.Helper()
	for name, secret := range leaks {
		if strings.Contains(text, secret) {
			t.Errorf("the %s %s is stored in clear in %s", name, secret, where)
		}
	}
}

// An agent puts secrets in argument keys, in numbers (a card number sent as
// a JSON number, not a string), in resource.id, tool annotations, the
// session, destination and model, in the trace headers it sends, and in the
// error of the outcome it reports. None of it reaches the audit log.
func TestNothingAnAgentSendsIsAuditedInClear(t *testing.T) {
	log, _ := openAudit(t)
	eng := govern.New(mustSet(t, "version: agentgov/v1\nname: open\ndefault: allow\nrules: []\n"), govern.WithAudit(log))
	ctx := govern.WithTrace(context.Background(), govern.Trace{TraceParent: "00-" + leaks["aws key"], CorrelationID: leaks["e-mail"]})
	args := map[string]any{
		leaks["github token"]: "the key is the name",
		"card":                int64(4111111111111111),
		"card_as_float":       float64(5555555555554444),
		"card_as_number":      json.Number(leaks["card"]),
		"nested":              []any{map[string]any{"to " + leaks["e-mail"]: leaks["iban"]}},
		"amount":              int64(1250),
	}
	a := action.Action{
		Agent:       action.Agent{ID: "a1"},
		Session:     "s-" + leaks["stripe key"],
		Tool:        action.Tool{Name: "pay", Annotations: map[string]any{"owner": leaks["e-mail"]}},
		Args:        args,
		Resource:    action.Resource{Type: "customer", ID: leaks["e-mail"]},
		Destination: leaks["github token"] + ".example.com",
		Model:       "m-" + leaks["aws key"],
		Content:     "card " + leaks["card"],
	}
	d, err := eng.Decide(ctx, a)
	if err != nil || d.Effect != action.Allow {
		t.Fatalf("decide: %+v %v", d, err)
	}
	if err := eng.Outcome(ctx, d.ID, action.Outcome{Status: "error", Error: "upstream said: bad token " + leaks["github token"] + " for " + leaks["e-mail"]}); err != nil {
		t.Fatal(err)
	}
	stored := logText(t, log)
	assertNoLeaks(t, "the audit log", stored)
	// What is masked says what it was; what is not stays readable.
	for _, want := range []string{`"amount":1250`, "[REDACTED:credit_card]", "[REDACTED:github_token]", "[REDACTED:email]", "the key is the name", "upstream said: bad token"} {
		if !strings.Contains(stored, want) {
			t.Errorf("the audit log lacks %s:\n%s", want, stored)
		}
	}
	// The caller's action is not touched.
	if args["card"] != int64(4111111111111111) || a.Resource.ID != leaks["e-mail"] {
		t.Errorf("masking changed the caller's action: %v %v", args, a.Resource)
	}
}

// The variant: the agent's values come back in the engine's own words. An
// invalid action's reason quotes the field it rejects, and two argument
// keys that mask to the same text must both survive as distinct keys.
func TestReasonsQuotingAnAgentAreMaskedToo(t *testing.T) {
	log, _ := openAudit(t)
	eng := govern.New(mustSet(t, "version: agentgov/v1\nname: open\ndefault: allow\nrules: []\n"), govern.WithAudit(log))
	ctx := context.Background()
	bad := action.Action{Agent: action.Agent{ID: "a1"}, Tool: action.Tool{Name: "t"}, Resource: action.Resource{Permission: "read " + leaks["github token"]}}
	if d, err := eng.Decide(ctx, bad); err == nil || d.Effect != action.Deny {
		t.Fatalf("invalid action: %+v %v", d, err)
	}
	two := action.Action{Agent: action.Agent{ID: "a1"}, Tool: action.Tool{Name: "t"}, Args: map[string]any{
		"alice@example.com": int64(1), "bob@example.com": int64(2), "[REDACTED:email]": int64(3),
	}}
	d, _ := eng.Decide(ctx, two)
	stored := logText(t, log)
	assertNoLeaks(t, "the audit log", stored)
	for _, l := range []string{"alice@example.com", "bob@example.com"} {
		if strings.Contains(stored, l) {
			t.Errorf("%s stored in clear", l)
		}
	}
	rec := allowedEntry(t, log, d)
	var entry struct {
		Record struct {
			Action struct{ Args map[string]int64 } `json:"action"`
		} `json:"record"`
	}
	json.Unmarshal([]byte(rec), &entry)
	args := entry.Record.Action.Args
	got := map[int64]bool{}
	for _, v := range args {
		got[v] = true
	}
	if len(args) != 3 || !got[1] || !got[2] || !got[3] {
		t.Errorf("masked keys collided: %v", args)
	}
}
