package mcp

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/mcp/pin"
	"github.com/agentgov/agentgov/mcp/wire"
)

// Two credentials of one agent: its own, for alice, and a delegation
// from another agent bounding it to reading, for bob.
func twoCredentialsIdentify(r *http.Request) (action.Agent, action.Principal, error) {
	switch r.Header.Get("Authorization") {
	case "Bearer wide":
		return action.Agent{ID: "shared", Credential: &action.Credential{Kind: "token", Subject: "wide"}}, action.Principal{User: "alice"}, nil
	case "Bearer narrow":
		return action.Agent{ID: "shared", Credential: &action.Credential{Kind: "delegation", Subject: "narrow"},
				Delegation: []action.Delegation{{ID: "del_1", Agent: "boss", Delegate: "shared", Tools: []string{"hand/read_*"}, ExpiresAt: time.Now().Add(time.Hour)}}},
			action.Principal{User: "bob"}, nil
	}
	return action.Agent{}, action.Principal{}, errors.New("unknown token")
}

func twoCredentialsGateway(t *testing.T) (string, *testDecider) {
	t.Helper()
	up := &handUpstream{tools: []map[string]any{{"name": "delete_all", "inputSchema": map[string]any{"type": "object"}}}}
	dec := newTestDecider()
	g, err := New(Config{Server: "hand", Dial: wire.URL(handServer(t, up), nil), Decider: dec, Recorder: &memRecorder{},
		Detector: pin.Detectors(), Pins: pin.MemoryPins(nil), TrustOnFirstUse: true})
	if err != nil {
		t.Fatal(err)
	}
	h := g.HTTPHandler(context.Background(), twoCredentialsIdentify)
	ts := httptest.NewServer(h)
	t.Cleanup(func() { ts.Close(); h.Close() })
	return ts.URL, dec
}

func postAs(t *testing.T, url, token, sid, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if sid != "" {
		req.Header.Set(sessionHeader, sid)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// calledAs is the identity the decider saw on the last pre-call decision
// of tool.
func calledAs(dec *testDecider, tool string) (action.Agent, action.Principal, bool) {
	dec.mu.Lock()
	defer dec.mu.Unlock()
	for i := len(dec.actions) - 1; i >= 0; i-- {
		if a := dec.actions[i]; a.Point == action.PreToolCall && a.Tool.Name == tool {
			return a.Agent, a.Principal, true
		}
	}
	return action.Agent{}, action.Principal{}, false
}

// A session is bound to the credential that opened it, not only to its
// agent: another credential of the same agent (another principal, a
// delegation that bounds it) that learns the session id must not act
// under the opener's identity, escaping its own bounds.
func TestASessionActsOnlyForTheCredentialThatOpenedIt(t *testing.T) {
	url, dec := twoCredentialsGateway(t)
	sid, status, body := open(t, url, "wide")
	if status != http.StatusOK || sid == "" {
		t.Fatalf("open: %d %s", status, body)
	}
	postAs(t, url, "wide", sid, `{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	call := `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"delete_all","arguments":{}}}`
	if status, body := postAs(t, url, "narrow", sid, call); status != http.StatusNotFound {
		agent, principal, _ := calledAs(dec, "delete_all")
		t.Fatalf("the narrower credential used the wide one's session: %d %s; decided as %s for %q with delegation %v", status, body, agent.ID, principal.User, agent.Delegation)
	}
	if status, _ := postAs(t, url, "wide", sid, call); status != http.StatusOK {
		t.Fatalf("the opener's own call: %d", status)
	}
	// Nor may the other credential end it.
	req, _ := http.NewRequest("DELETE", url, nil)
	req.Header.Set("Authorization", "Bearer narrow")
	req.Header.Set(sessionHeader, sid)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("DELETE by the other credential: %d", resp.StatusCode)
	}
}

// The stateless revision has no session id to learn: the gateway keeps
// one session per caller, which must be per credential, or the second
// credential's calls are decided as the first's.
func TestStatelessCallsAreDecidedForTheirOwnCredential(t *testing.T) {
	url, dec := twoCredentialsGateway(t)
	wide := &statelessClient{t: t, url: url, token: "wide"}
	narrow := &statelessClient{t: t, url: url, token: "narrow"}
	if status, m := wide.post(methodToolsCall, map[string]any{"name": "delete_all", "arguments": map[string]any{}}); status != http.StatusOK {
		t.Fatalf("wide: %d %v", status, m)
	}
	if status, m := narrow.post(methodToolsCall, map[string]any{"name": "delete_all", "arguments": map[string]any{}}); status != http.StatusOK {
		t.Fatalf("narrow: %d %v", status, m)
	}
	agent, principal, ok := calledAs(dec, "delete_all")
	if !ok || principal.User != "bob" || len(agent.Delegation) != 1 || agent.Delegation[0].ID != "del_1" {
		t.Fatalf("the narrow credential's call was decided for %q with delegation %v", principal.User, agent.Delegation)
	}
}
