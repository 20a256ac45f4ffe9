package server_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/agentgov/agentgov/identity"
	"github.com/agentgov/agentgov/server"
	"github.com/agentgov/agentgov/store/sqlite"
)

// withRegistry gives the server an agent registry and credential verifier
// on the test database.
func withRegistry(t *testing.T) func(*server.Options, *sqlite.DB) {
	return func(o *server.Options, db *sqlite.DB) {
		ctx := context.Background()
		reg, err := identity.NewRegistry(ctx, db, nil)
		if err != nil {
			t.Fatal(err)
		}
		v, err := identity.NewVerifier(ctx, reg, db, identity.Options{Audience: "server-test"})
		if err != nil {
			t.Fatal(err)
		}
		o.Identity = v
	}
}

func agentBody(id, spiffe string) string {
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	return fmt.Sprintf(`{"id":%q,"keys":[{"kid":"k1","public_key":%q}],"spiffe_id":%q}`, id, identity.EncodePublicKey(pub), spiffe)
}

// registrations returns, of the audit log, the registrations of agent that
// no agent.failed entry takes back.
func (e *env) registrations(agent string) int {
	e.t.Helper()
	es, err := e.log.Entries(context.Background(), -1, 1000)
	if err != nil {
		e.t.Fatal(err)
	}
	failed := map[float64]bool{}
	for _, m := range e.entries("agent.failed") {
		idx, _ := m["entry"].(float64)
		failed[idx] = true
	}
	n := 0
	for _, en := range es {
		if en.Kind != "agent" {
			continue
		}
		var rec struct{ Event, Agent string }
		if err := json.Unmarshal(en.Record, &rec); err != nil {
			e.t.Fatal(err)
		}
		if rec.Event == "register" && rec.Agent == agent && !failed[float64(en.Index)] {
			n++
		}
	}
	return n
}

// A registration the registry refuses after it was audited (a SPIFFE ID
// another agent already holds) left an entry claiming the agent was
// registered. The log must never claim a change that was not made: the
// refusal takes the entry back (agent.failed), or nothing is written.
func TestAgentRegistrationTheLogShowsHappened(t *testing.T) {
	e := start(t, withRegistry(t))
	if code, m := e.call("POST", "/v1/agents", "admin-tok", agentBody("first", "spiffe://example.org/a")); code != 201 {
		t.Fatalf("register: %d %v", code, m)
	}
	code, m := e.call("POST", "/v1/agents", "admin-tok", agentBody("second", "spiffe://example.org/a"))
	if code != 409 {
		t.Fatalf("a second agent on the same SPIFFE ID: %d %v, want 409", code, m)
	}
	if code, _ := e.call("GET", "/v1/agents/second", "admin-tok", ""); code != 404 {
		t.Fatalf("the refused agent is registered: %d", code)
	}
	if n := e.registrations("second"); n != 0 {
		t.Errorf("the audit log claims %d registrations of an agent that was refused", n)
	}
	if n := e.registrations("first"); n != 1 {
		t.Errorf("%d registrations of the agent that was registered, want 1", n)
	}
}

// The admin's client hangs up right after the registration is audited:
// the registration is made all the same, as the log says.
func TestAgentRegistrationSurvivesAClientHangingUp(t *testing.T) {
	e := start(t, withRegistry(t))
	e.hangUp(true, "POST", "/v1/agents", "admin-tok", agentBody("hung", ""))
	if code, m := e.call("GET", "/v1/agents/hung", "admin-tok", ""); code != 200 || e.registrations("hung") != 1 {
		t.Fatalf("after the hang-up: %d %v; %d registrations in the log", code, m, e.registrations("hung"))
	}
}
