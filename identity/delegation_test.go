package identity_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/identity"
)

// A chain of depth 3: planner → coder → tester → reader, each link
// narrower; the last token carries the whole chain, and every widening on
// the way is refused.
func TestDelegationOnlyNarrows(t *testing.T) {
	f := newFixture(t, identity.Options{})
	planner := f.register(t, "planner")
	for _, id := range []string{"coder", "tester", "reader", "outsider"} {
		f.register(t, id)
	}
	top, err := f.v.Verify(bg, planner.sign(t, f.now, nil))
	if err != nil {
		t.Fatal(err)
	}
	tok1, d1, err := f.v.Delegate(bg, top, identity.DelegationRequest{Agent: "coder", Tools: []string{"fs/*", "search"}, ExpiresIn: 3600, MaxDepth: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(d1.Chain) != 1 || d1.Last().Agent != "planner" || d1.Principal.User != "alice" {
		t.Fatalf("%+v", d1)
	}
	coder, err := f.v.Verify(bg, tok1)
	if err != nil {
		t.Fatal(err)
	}
	if coder.Agent.ID != "coder" || coder.Agent.Credential.Kind != action.CredentialDelegation || coder.Principal.User != "alice" {
		t.Fatalf("%+v", coder)
	}

	widenings := []struct {
		name string
		req  identity.DelegationRequest
		want string
	}{
		{"a tool outside the parent's", identity.DelegationRequest{Agent: "tester", Tools: []string{"shell"}, ExpiresIn: 60, MaxDepth: 1}, `"shell" is not within`},
		{"a wider glob", identity.DelegationRequest{Agent: "tester", Tools: []string{"*"}, ExpiresIn: 60, MaxDepth: 1}, `"*" is not within`},
		{"another server's glob", identity.DelegationRequest{Agent: "tester", Tools: []string{"f*/read"}, ExpiresIn: 60}, `is not within`},
		{"a longer life", identity.DelegationRequest{Agent: "tester", Tools: []string{"fs/read_file"}, ExpiresIn: 7200, MaxDepth: 1}, "expires_in"},
		{"as deep as the parent", identity.DelegationRequest{Agent: "tester", Tools: []string{"fs/read_file"}, ExpiresIn: 60, MaxDepth: 2}, "max_depth 2"},
	}
	for _, w := range widenings {
		t.Run("refused: "+w.name, func(t *testing.T) {
			_, _, err := f.v.Delegate(bg, coder, w.req)
			if !errors.Is(err, identity.ErrWidening) || !strings.Contains(err.Error(), w.want) {
				t.Fatalf("got %v, want a widening naming %q", err, w.want)
			}
		})
	}

	tok2, _, err := f.v.Delegate(bg, coder, identity.DelegationRequest{Agent: "tester", Tools: []string{"fs/read_file", "search"}, Points: []action.Point{action.PreToolCall}, ExpiresIn: 1800, MaxDepth: 1})
	if err != nil {
		t.Fatal(err)
	}
	tester, err := f.v.Verify(bg, tok2)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.v.Delegate(bg, tester, identity.DelegationRequest{Agent: "reader", Points: []action.Point{action.PostToolCall}, ExpiresIn: 60}); !errors.Is(err, identity.ErrWidening) {
		t.Fatalf("a point outside the parent's: %v", err)
	}
	tok3, d3, err := f.v.Delegate(bg, tester, identity.DelegationRequest{Agent: "reader", Tools: []string{"fs/read_file"}, ExpiresIn: 600})
	if err != nil {
		t.Fatal(err)
	}
	if got := d3.Last(); got.Points[0] != action.PreToolCall || got.MaxDepth != 0 {
		t.Fatalf("an empty list inherits the parent's: %+v", got)
	}
	reader, err := f.v.Verify(bg, tok3)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(reader.Agent.Delegation); n != 3 || reader.Agent.Delegation[0].Agent != "planner" || reader.Agent.Delegation[2].Delegate != "reader" {
		t.Fatalf("chain %+v", reader.Agent.Delegation)
	}
	if _, _, err := f.v.Delegate(bg, reader, identity.DelegationRequest{Agent: "outsider", ExpiresIn: 60}); !errors.Is(err, identity.ErrWidening) {
		t.Fatalf("a delegation with max_depth 0 delegated again: %v", err)
	}
	// The chain bounds the reader's actions.
	a := action.Action{Agent: reader.Agent, Tool: action.Tool{Server: "fs", Name: "write_file"}}
	if why := action.DelegationDenies(&a, f.now); !strings.Contains(why, "does not cover tool fs/write_file") {
		t.Fatalf("write_file: %q", why)
	}

	t.Run("a revoked link refuses the tokens under it", func(t *testing.T) {
		if _, err := f.reg.Revoke(bg, "coder"); err != nil {
			t.Fatal(err)
		}
		_, err := f.v.Verify(bg, tok3)
		wantRefusal(t, err, identity.Revoked)
	})
	t.Run("expired", func(t *testing.T) {
		f.now = f.now.Add(2 * time.Hour)
		_, err := f.v.Verify(bg, tok1)
		wantRefusal(t, err, identity.Expired)
	})
	t.Run("unknown token", func(t *testing.T) {
		_, err := f.v.Verify(bg, identity.DelegationPrefix+"nothing")
		wantRefusal(t, err, identity.UnknownToken)
	})
}

func TestDelegationRequestsAreValidated(t *testing.T) {
	f := newFixture(t, identity.Options{})
	k := f.register(t, "planner")
	f.register(t, "coder")
	top, _ := f.v.Verify(bg, k.sign(t, f.now, nil))
	for _, req := range []identity.DelegationRequest{
		{Agent: "", ExpiresIn: 60},
		{Agent: "unregistered", ExpiresIn: 60},
		{Agent: "planner", ExpiresIn: 60},
		{Agent: "coder", ExpiresIn: 0},
		{Agent: "coder", ExpiresIn: 1 << 40},
		{Agent: "coder", ExpiresIn: 60, MaxDepth: -1},
		{Agent: "coder", ExpiresIn: 60, Points: []action.Point{"nowhere"}},
	} {
		if _, _, err := f.v.Delegate(bg, top, req); !errors.Is(err, identity.ErrInvalid) {
			t.Errorf("%+v: %v, want ErrInvalid", req, err)
		}
	}
	if _, _, err := f.v.Delegate(bg, top, identity.DelegationRequest{Agent: "coder", ExpiresIn: 60, MaxDepth: 99}); !errors.Is(err, identity.ErrWidening) {
		t.Errorf("max_depth over the cap: %v", err)
	}
}
