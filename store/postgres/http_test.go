package postgres_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/agentgov/agentgov/config"
	"github.com/agentgov/agentgov/server"
	"github.com/agentgov/agentgov/store/postgres"
)

// serveReplica puts a replica's API on an httptest server, with an agent
// token for a1 and one for a2.
func serveReplica(t *testing.T, r *replica) string {
	t.Helper()
	cfg := &config.Config{Tokens: []config.Token{
		{Name: "a1", Role: config.AgentRole, Agent: "a1", SHA256: server.HashToken("a1-tok")},
		{Name: "a2", Role: config.AgentRole, Agent: "a2", SHA256: server.HashToken("a2-tok")},
	}}
	cfg.Fill()
	srv, err := server.New(server.Options{Config: cfg, Engine: r.eng, Audit: r.log, Idempotency: r.db, Decisions: r.db,
		Store: r.db, Sessions: r.sessions, Kill: r.kill, Approvals: r.approvals, Budgets: r.budgets,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	return hs.URL
}

func call(t *testing.T, method, url, token, body string, headers ...string) (int, http.Header, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	json.Unmarshal(raw, &m)
	return resp.StatusCode, resp.Header, m
}

// Through the API: a retry with the same Idempotency-Key landing on
// another replica gets the first answer; any replica shows any replica's
// decision to its agent (and to no other), and takes its outcome once.
func TestAPIAcrossReplicas(t *testing.T) {
	dsn, _ := freshSchema(t)
	u1 := serveReplica(t, startReplica(t, dsn, "r1", postgres.Options{}))
	u2 := serveReplica(t, startReplica(t, dsn, "r2", postgres.Options{}))
	body := `{"tool":{"name":"read_file"},"session":"s-1","args":{"path":"/tmp/x"}}`

	code, _, first := call(t, "POST", u1+"/v1/decide", "a1-tok", body, "Idempotency-Key", "k-1")
	if code != 200 || first["effect"] != "allow" {
		t.Fatalf("decide on r1: %d %v", code, first)
	}
	id := first["id"].(string)
	code, h, again := call(t, "POST", u2+"/v1/decide", "a1-tok", body, "Idempotency-Key", "k-1")
	if code != 200 || again["id"] != id || h.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("retry on r2: %d %v %v", code, h, again)
	}

	code, _, got := call(t, "GET", u2+"/v1/decisions/"+id, "a1-tok", "")
	if code != 200 || got["id"] != id || got["audit_index"] != first["audit_index"] {
		t.Fatalf("r2 shows r1's decision: %d %v", code, got)
	}
	if code, _, _ := call(t, "GET", u2+"/v1/decisions/"+id, "a2-tok", ""); code != 404 {
		t.Fatalf("another agent sees the decision: %d", code)
	}
	if code, _, m := call(t, "POST", u2+"/v1/decisions/"+id+"/outcome", "a1-tok", `{"status":"ok"}`); code != 200 {
		t.Fatalf("outcome on r2: %d %v", code, m)
	}
	if code, _, _ := call(t, "POST", u1+"/v1/decisions/"+id+"/outcome", "a1-tok", `{"status":"ok"}`); code != 409 {
		t.Fatalf("second outcome on r1: %d", code)
	}
}
