package action

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/agentgov/agentgov/errcode"
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
// and whatever it accepts must have well-formed fields and encode back to an
// equal action.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"agent":{"id":"a"},"tool":{"name":"read_file"},"args":{"path":"/tmp/x","n":[1,2.5,{"k":null}]}}`))
	f.Add([]byte(`{"point":"post_tool_call","content":"x","estimate":{"tokens":3}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := Decode(data)
		if err != nil {
			return
		}
		if err := a.validateFields(); err != nil {
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

// An action with nothing to decide on is refused, naming the field that its
// point is decided on; it never reaches a policy whose default might allow
// it.
func TestActionsWithNothingToDecideOnAreRefused(t *testing.T) {
	for _, c := range []struct{ in, field string }{
		{`{}`, "tool.name"},
		{`null`, "tool.name"},
		{`{"point":"pre_tool_call","args":{"path":"/etc/shadow"}}`, "tool.name"},
		{`{"point":"post_tool_call","tool":{"server":"github"}}`, "tool.name"},
		{`{"point":"pre_model_call","content":"hi","destination":"api.openai.com"}`, "model"},
		{`{"point":"post_model_call"}`, "model"},
		{`{"point":"input"}`, "content"},
		{`{"point":"output","args":{"x":1}}`, "content"},
	} {
		a, err := Decode([]byte(c.in))
		if err != nil {
			t.Fatalf("Decode(%s): %v", c.in, err)
		}
		a.Agent.ID = "a1" // as the server sets it from the credential
		err = a.Validate()
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != c.field || !strings.Contains(fe.Problem, "nothing to decide on") {
			t.Errorf("Validate(%s): %v, want a field error on %s", c.in, err, c.field)
		}
	}
	// The agent comes from the credential over HTTP, but a library caller
	// must name it.
	a := Action{Tool: Tool{Name: "read_file"}}
	var fe *FieldError
	if err := a.Validate(); !errors.As(err, &fe) || fe.Field != "agent.id" {
		t.Errorf("action without an agent: %v", err)
	}
	for _, ok := range []Action{
		{Agent: Agent{ID: "a"}, Tool: Tool{Name: "read_file"}},
		{Agent: Agent{ID: "a"}, Point: PreModelCall, Model: "gpt-4o-mini"},
		{Agent: Agent{ID: "a"}, Point: Input, Content: "hello"},
		{Agent: Agent{ID: "a"}, Point: AgentStartup},
		{Agent: Agent{ID: "a"}, Point: AgentShutdown},
	} {
		if err := ok.Validate(); err != nil {
			t.Errorf("Validate(%+v): %v", ok, err)
		}
	}
}

// Every field a policy can read is in an action's digest; the approval id,
// which names a ticket, and the spelling of an absent point or empty map
// are not.
func TestDigestCoversEveryFieldAPolicyReads(t *testing.T) {
	base := func() Action {
		return Action{
			Agent: Agent{ID: "a", Type: "assistant", Labels: map[string]string{"env": "prod"}}, Principal: Principal{User: "u", Team: "t", Org: "o"},
			Session: "s", Point: PreToolCall, Tool: Tool{Server: "srv", Name: "pay", Annotations: map[string]any{"destructiveHint": true}},
			Args: map[string]any{"amount": int64(10)}, Resource: Resource{Type: "r", ID: "1", Permission: "write"},
			Destination: "api.example", Model: "m", Content: "for lunch", Estimate: Estimate{Tokens: 11, CostUSD: 0.01},
		}
	}
	d0 := base()
	want, err := Digest(&d0)
	if err != nil || !strings.HasPrefix(want, "sha256:") {
		t.Fatalf("Digest = %q, %v", want, err)
	}
	for name, change := range map[string]func(*Action){
		"agent.id": func(a *Action) { a.Agent.ID = "b" }, "agent.type": func(a *Action) { a.Agent.Type = "x" },
		"agent.labels": func(a *Action) { a.Agent.Labels = nil }, "principal": func(a *Action) { a.Principal.Org = "x" },
		"session": func(a *Action) { a.Session = "s2" }, "point": func(a *Action) { a.Point = PostToolCall },
		"tool.server": func(a *Action) { a.Tool.Server = "" }, "tool.name": func(a *Action) { a.Tool.Name = "refund" },
		"tool.annotations": func(a *Action) { a.Tool.Annotations = nil }, "args": func(a *Action) { a.Args["amount"] = int64(1000000) },
		"resource": func(a *Action) { a.Resource.ID = "2" }, "destination": func(a *Action) { a.Destination = "evil.example" },
		"model": func(a *Action) { a.Model = "m2" }, "content": func(a *Action) { a.Content = "to MALLORY" },
		"estimate.tokens": func(a *Action) { a.Estimate.Tokens = 90000 }, "estimate.cost_usd": func(a *Action) { a.Estimate.CostUSD = 9 },
	} {
		a := base()
		change(&a)
		if got, _ := Digest(&a); got == want {
			t.Errorf("changing %s keeps the digest", name)
		}
	}
	same := base()
	same.ApprovalID = "apr_1"
	same.Args = map[string]any{"amount": float64(10)}
	if got, _ := Digest(&same); got != want {
		t.Error("the approval id or the numeric form of an argument changed the digest")
	}
	x, y := Action{Agent: Agent{ID: "a"}, Tool: Tool{Name: "t"}}, Action{Agent: Agent{ID: "a", Labels: map[string]string{}}, Point: PreToolCall, Tool: Tool{Name: "t", Annotations: map[string]any{}}, Args: map[string]any{}}
	if dx, _ := Digest(&x); func() string { d, _ := Digest(&y); return d }() != dx {
		t.Error("an absent point or empty maps changed the digest")
	}
}

func TestRefusalCodeNamesWhatRefused(t *testing.T) {
	for _, tc := range []struct {
		d    Decision
		want errcode.Code
	}{
		{Decision{Effect: Allow}, ""},
		{Decision{Effect: Audit}, ""},
		{Decision{Effect: RequireApproval, Reasons: []string{"budget b: cost 9/10 USD (throttle at 80%: needs approval)"}}, errcode.ApprovalRequired},
		{Decision{Effect: Deny, Reasons: []string{"rule no-etc: system files are off limits"}}, errcode.PolicyDenied},
		{Decision{Effect: Deny, Reasons: []string{"rate limit api: more than 3 per 1m0s for agent \"a\""}}, errcode.RateLimited},
		{Decision{Effect: Deny, Reasons: []string{"rate limit api: more", "budget b: cost 11/10 USD (hard limit)"}}, errcode.BudgetExceeded},
		{Decision{Effect: Deny}, errcode.PolicyDenied},
	} {
		if got := tc.d.RefusalCode(); got != tc.want {
			t.Errorf("%s %q: %q, want %q", tc.d.Effect, tc.d.Reasons, got, tc.want)
		}
	}
}
