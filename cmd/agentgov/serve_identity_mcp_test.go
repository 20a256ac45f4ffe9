package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// freshJWT is an MCP client's transport that signs a new agent JWT for
// every HTTP request, as an agent holding its own key does (each jti is
// taken once).
type freshJWT struct {
	id   string
	priv ed25519.PrivateKey
}

func (f freshJWT) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+f.token())
	return http.DefaultTransport.RoundTrip(r)
}

func (f freshJWT) token() string {
	now := time.Now()
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.MapClaims{"iss": f.id, "sub": f.id, "aud": identityAudience,
		"iat": now.Unix(), "exp": now.Add(time.Minute).Unix(), "jti": rand.Text()})
	tok.Header["kid"] = "k1"
	s, _ := tok.SignedString(f.priv)
	return s
}

// The MCP gateway's HTTP endpoint takes the credentials /v1 takes: an
// OIDC token of a configured issuer (served by the test, its JWKS too)
// and agent-signed JWTs; the calls are recorded with the credential that
// made them, and a bad one is refused before the gateway.
func TestServeMCPGatewayTakesOIDCAndAgentJWTs(t *testing.T) {
	fs := fsServer(t)
	files := t.TempDir()
	os.WriteFile(filepath.Join(files, "notes.txt"), []byte("governed hello"), 0o644)

	idpKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &idpKey.PublicKey, KeyID: "idp1", Algorithm: "RS256", Use: "sig"}}})
	}))
	defer idp.Close()
	in := startWithConfig(t, fmt.Sprintf(`mcp:
  trust_on_first_use: true
  servers:
    fs: {command: [node, %q, %q]}
identity:
  audience: %q
  oidc:
    - {issuer: "https://idp.mcp.test", jwks_url: %q, audience: agentgov, claims: {agent: agent_id, user: email}}
`, fs, files, identityAudience, idp.URL))
	ctx := context.Background()

	oidcTok := func(aud string) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{"iss": "https://idp.mcp.test", "sub": "svc-42", "aud": aud,
			"agent_id": "platform-bot", "email": "bob@example.test", "exp": time.Now().Add(time.Hour).Unix()})
		tok.Header["kid"] = "idp1"
		s, err := tok.SignedString(idpKey)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	// An OIDC token on /v1 first.
	if code, d := in.call("POST", "/v1/decide", oidcTok("agentgov"), `{"tool":{"name":"read_notes"}}`); code != 200 || d["effect"] != "allow" {
		t.Fatalf("OIDC on /v1: %d %v", code, d)
	}
	if code, m := in.call("POST", "/v1/decide", oidcTok("another-service"), `{"tool":{"name":"read_notes"}}`); code != 401 || reasonOf(m) != "audience" {
		t.Fatalf("OIDC token for another audience: %d %v", code, m)
	}

	call := func(name string, rt http.RoundTripper) {
		t.Helper()
		client := sdk.NewClient(&sdk.Implementation{Name: "e2e", Version: "1"}, nil)
		cs, err := client.Connect(ctx, &sdk.StreamableClientTransport{Endpoint: in.url + "/mcp/fs", HTTPClient: &http.Client{Transport: rt}}, nil)
		if err != nil {
			t.Fatalf("%s: connect: %v\n%s", name, err, in.output())
		}
		defer cs.Close()
		res, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: "read_text_file", Arguments: map[string]any{"path": filepath.Join(files, "notes.txt")}})
		if err != nil || res.IsError || !strings.Contains(fmt.Sprint(res.Content[0]), "governed hello") {
			t.Fatalf("%s: call: %v %+v", name, err, res)
		}
	}
	call("OIDC", bearer{oidcTok("agentgov")})

	// An agent with its own key, registered, signing per request.
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	body := `{"id":"mcp-agent","keys":[{"kid":"k1","public_key":"` + base64.RawURLEncoding.EncodeToString(pub) + `"}]}`
	if code, m := in.call("POST", "/v1/agents", "admin-tok", body); code != 201 {
		t.Fatalf("register: %d %v", code, m)
	}
	call("agent JWT", freshJWT{id: "mcp-agent", priv: priv})

	// A forged JWT is refused at the endpoint, with its reason.
	_, rogue, _ := ed25519.GenerateKey(rand.Reader)
	req, _ := http.NewRequest("POST", in.url+"/mcp/fs", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`))
	freshJWT{id: "mcp-agent", priv: rogue}.sign(req)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("a forged JWT on /mcp/fs: %d", resp.StatusCode)
	}

	// Every call through the gateway is recorded with its credential.
	creds := map[string]bool{}
	for _, e := range in.auditEntries() {
		if e["kind"] != "decision" {
			continue
		}
		ag := e["record"].(map[string]any)["action"].(map[string]any)["agent"].(map[string]any)
		if c, ok := ag["credential"].(map[string]any); ok {
			creds[fmt.Sprint(ag["id"], " ", c["kind"])] = true
		}
	}
	for _, want := range []string{"platform-bot oidc", "mcp-agent jwt"} {
		if !creds[want] {
			t.Errorf("no decision recorded for %s (have %v)", want, creds)
		}
	}
}

func (f freshJWT) sign(r *http.Request) {
	r.Header.Set("Authorization", "Bearer "+f.token())
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Accept", "application/json, text/event-stream")
}
