package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// serve with mcp.authorization: each /mcp/{server} publishes its
// protected-resource metadata and challenges a client without a credential
// towards it; the server's agent tokens still work there.
func TestServeMCPProtectedResource(t *testing.T) {
	in := startServer(t)
	in.stop()
	cfg := filepath.Join(in.dir, "agentgov.yaml")
	b, _ := os.ReadFile(cfg)
	extra := fmt.Sprintf("mcp:\n  trust_on_first_use: true\n  servers:\n    fs: {command: [node, %q, %q]}\n  authorization:\n    public_url: %s\n    authorization_servers: [https://idp.example.com]\n    scopes: [mcp:tools]\n",
		fsServer(t), t.TempDir(), in.url)
	os.WriteFile(cfg, append(b, extra...), 0o644)
	in.start()

	resp, err := http.Get(in.url + "/.well-known/oauth-protected-resource/mcp/fs")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Resource             string   `json:"resource"`
		AuthorizationServers []string `json:"authorization_servers"`
		Scopes               []string `json:"scopes_supported"`
	}
	json.NewDecoder(resp.Body).Decode(&doc)
	resp.Body.Close()
	if resp.StatusCode != 200 || doc.Resource != in.url+"/mcp/fs" || len(doc.AuthorizationServers) != 1 || len(doc.Scopes) != 1 {
		t.Fatalf("metadata: %d %+v\n%s", resp.StatusCode, doc, in.output())
	}

	post := func(token string) *http.Response {
		req, _ := http.NewRequest("POST", in.url+"/mcp/fs", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"e2e","version":"1"}}}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	resp = post("")
	want := `resource_metadata="` + in.url + `/.well-known/oauth-protected-resource/mcp/fs"`
	if resp.StatusCode != 401 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), want) {
		t.Fatalf("no token: %d %q, want 401 with %s", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), want)
	}
	if resp = post("forged"); resp.StatusCode != 401 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
		t.Fatalf("unknown token: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	if resp = post("a1-tok"); resp.StatusCode != 200 || resp.Header.Get("Mcp-Session-Id") == "" {
		t.Fatalf("agent token: %d\n%s", resp.StatusCode, in.output())
	}
}
