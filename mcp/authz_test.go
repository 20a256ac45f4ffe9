package mcp

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	neturl "net/url"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/mcp/pin"
	"github.com/agentgov/agentgov/mcp/wire"
)

// oauthToken is a fake OAuth access token of the tests: "oauth AUDIENCE
// SCOPE,SCOPE". The server's own agent tokens are those of testIdentify.
func oauthGrant(r *http.Request) (Grant, bool) {
	f := strings.Fields(strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))
	if len(f) < 2 || f[0] != "oauth" {
		return Grant{}, false
	}
	g := Grant{Audience: []string{f[1]}}
	if len(f) > 2 {
		g.Scopes = strings.Split(f[2], ",")
	}
	return g, true
}

func oauthIdentify(r *http.Request) (action.Agent, action.Principal, error) {
	if _, ok := oauthGrant(r); ok {
		return action.Agent{ID: "oauth-agent"}, action.Principal{User: "bob"}, nil
	}
	return testIdentify(r)
}

// protectedGateway serves a gateway, in front of an HTTP upstream that
// records what it is sent, as a protected resource at URL/mcp/test.
func protectedGateway(t *testing.T) (url string, up *upstreamRecorder) {
	url, up, _ = protectedGatewayOf(t, "https://idp.example.com")
	return url, up
}

func protectedGatewayOf(t *testing.T, issuer string) (url string, up *upstreamRecorder, rec *memRecorder) {
	t.Helper()
	srv := newTestUpstream("clean")
	up = &upstreamRecorder{h: sdk.NewStreamableHTTPHandler(func(*http.Request) *sdk.Server { return srv }, &sdk.StreamableHTTPOptions{JSONResponse: true})}
	upTS := httptest.NewServer(up)
	t.Cleanup(upTS.Close)

	mux := http.NewServeMux()
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	res := &ProtectedResource{
		Resource:             ts.URL + "/mcp/test",
		MetadataURL:          ts.URL + WellKnownPrefix + "/mcp/test",
		AuthorizationServers: []string{issuer},
		Scopes:               []string{"mcp:tools"},
		Grant:                oauthGrant,
	}
	rec = &memRecorder{}
	g, err := New(Config{Server: "test", Dial: wire.URL(upTS.URL, nil), Decider: newTestDecider(), Recorder: rec,
		Detector: pin.Detectors(), Pins: pin.MemoryPins(nil), TrustOnFirstUse: true, Resource: res})
	if err != nil {
		t.Fatal(err)
	}
	h := g.HTTPHandler(context.Background(), oauthIdentify)
	t.Cleanup(func() { h.Close() })
	mux.Handle("/mcp/test", h)
	mux.Handle(WellKnownPrefix+"/mcp/test", h.MetadataHandler())
	return ts.URL, up, rec
}

func TestProtectedResourceMetadata(t *testing.T) {
	base, _ := protectedGateway(t)
	resp, err := http.Get(base + WellKnownPrefix + "/mcp/test")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil || resp.StatusCode != 200 {
		t.Fatalf("metadata: %d %v", resp.StatusCode, err)
	}
	if doc["resource"] != base+"/mcp/test" {
		t.Errorf("resource = %v, want the endpoint's URL", doc["resource"])
	}
	if as, _ := doc["authorization_servers"].([]any); len(as) != 1 || as[0] != "https://idp.example.com" {
		t.Errorf("authorization_servers = %v", doc["authorization_servers"])
	}
	if sc, _ := doc["scopes_supported"].([]any); len(sc) != 1 || sc[0] != "mcp:tools" {
		t.Errorf("scopes_supported = %v", doc["scopes_supported"])
	}
	if r, _ := http.Post(base+WellKnownPrefix+"/mcp/test", "application/json", strings.NewReader("{}")); r == nil || r.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST to the metadata: want 405")
	}
}

const initBody = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`

func postInit(t *testing.T, url, token string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("POST", url, strings.NewReader(initBody))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// An attacker's token is refused before anything reaches the upstream: a
// token for another resource (one the client got for some other server,
// replayed here), one without the scope, none at all.
func TestProtectedResourceRefusals(t *testing.T) {
	base, up, rec := protectedGatewayOf(t, "https://idp.example.com")
	endpoint := base + "/mcp/test"
	meta := `resource_metadata="` + base + WellKnownPrefix + `/mcp/test"`
	for _, tc := range []struct {
		name, token string
		status      int
		challenge   []string
	}{
		{"no token", "", 401, []string{"Bearer ", meta}},
		{"unknown token", "nonsense", 401, []string{`error="invalid_token"`, meta}},
		{"token of another resource", "oauth https://other.example.com/mcp mcp:tools", 401, []string{`error="invalid_token"`, meta}},
		{"token of this resource's prefix", "oauth " + base + "/mcp mcp:tools", 401, []string{`error="invalid_token"`}},
		{"token without the scope", "oauth " + endpoint + " mcp:read", 403, []string{`error="insufficient_scope"`, `scope="mcp:tools"`, meta}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := postInit(t, endpoint, tc.token)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			ch := resp.Header.Get("WWW-Authenticate")
			for _, want := range tc.challenge {
				if !strings.Contains(ch, want) {
					t.Errorf("WWW-Authenticate %q lacks %q", ch, want)
				}
			}
		})
	}
	if methods, _ := up.seen(); len(methods) != 0 {
		t.Errorf("refused requests reached the upstream: %v", methods)
	}
	// The tokens that authenticated but did not belong here are audited.
	if got := len(refusals(rec, sideClient, "not issued for")) + len(refusals(rec, sideClient, "insufficient_scope")); got != 3 {
		t.Errorf("%d audited refusals of misplaced tokens, want 3", got)
	}
}

// The client's token, OAuth or the server's own, authenticates it to the
// gateway alone: the upstream never sees it.
func TestClientTokenNeverReachesTheUpstream(t *testing.T) {
	base, up := protectedGateway(t)
	endpoint := base + "/mcp/test"
	for _, token := range []string{"oauth " + endpoint + " mcp:tools,extra", "agent-token"} {
		resp := postInit(t, endpoint, token)
		if resp.StatusCode != 200 || resp.Header.Get(sessionHeader) == "" {
			t.Fatalf("%q: status %d, want a session", token, resp.StatusCode)
		}
	}
	methods, headers := up.seen()
	if len(methods) == 0 {
		t.Fatal("the upstream saw nothing")
	}
	for _, h := range headers {
		for k, vs := range h {
			for _, v := range vs {
				if strings.Contains(v, "oauth") || strings.Contains(v, "agent-token") || strings.EqualFold(k, "Authorization") {
					t.Errorf("the upstream got %s: %s", k, v)
				}
			}
		}
	}
}

func TestNoProtectedResourceWithoutConfiguration(t *testing.T) {
	g, err := New(Config{Server: "test", Dial: func(context.Context) (sdk.Connection, error) { return nil, errors.New("unused") },
		Decider: newTestDecider(), Recorder: &memRecorder{}, Detector: pin.Detectors(), Pins: pin.MemoryPins(nil)})
	if err != nil {
		t.Fatal(err)
	}
	h := g.HTTPHandler(context.Background(), testIdentify)
	defer h.Close()
	if h.MetadataHandler() != nil {
		t.Fatal("metadata served for an endpoint with no authorization configured")
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/mcp/test", strings.NewReader(initBody)))
	if rec.Code != 401 || rec.Header().Get("WWW-Authenticate") != "" {
		t.Fatalf("status %d, challenge %q: want 401 without a challenge", rec.Code, rec.Header().Get("WWW-Authenticate"))
	}
}

// The official TypeScript SDK client, told only the endpoint's URL, finds
// its way to the authorization server through the gateway's 401 and
// metadata, and asks for a token for exactly this endpoint (the resource
// indicator of RFC 8707) with the scope the metadata lists.
func TestTypeScriptClientDiscoversTheProtectedResource(t *testing.T) {
	needNode(t)
	var asked atomic.Int32
	as := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/.well-known/") {
			http.NotFound(w, r)
			return
		}
		asked.Add(1)
		base := "http://" + r.Host
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"issuer": base, "authorization_endpoint": base + "/authorize", "token_endpoint": base + "/token",
			"response_types_supported": []string{"code"}, "code_challenge_methods_supported": []string{"S256"},
		})
	}))
	defer as.Close()
	base, up, _ := protectedGatewayOf(t, as.URL)
	endpoint := base + "/mcp/test"

	out, err := exec.Command("node", filepath.Join(nodeDir, "oauth_probe.mjs"), endpoint).Output()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, out)
	}
	var got struct {
		AuthURL   string         `json:"authURL"`
		Error     string         `json:"error"`
		Discovery map[string]any `json:"discovery"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if asked.Load() == 0 {
		t.Fatal("the client never asked the authorization server for its metadata")
	}
	u, err := neturl.Parse(got.AuthURL)
	if err != nil || !strings.HasPrefix(got.AuthURL, as.URL+"/authorize") {
		t.Fatalf("authorization URL %q, want the configured server's (error %s)", got.AuthURL, got.Error)
	}
	if r := u.Query().Get("resource"); r != endpoint {
		t.Errorf("the client asks for a token for %q, want %q", r, endpoint)
	}
	if s := u.Query().Get("scope"); s != "mcp:tools" {
		t.Errorf("the client asks for scope %q, want the metadata's mcp:tools", s)
	}
	if rm, _ := got.Discovery["resourceMetadata"].(map[string]any); rm["resource"] != endpoint {
		t.Errorf("discovered metadata = %v", got.Discovery["resourceMetadata"])
	}
	if methods, _ := up.seen(); len(methods) != 0 {
		t.Errorf("the unauthenticated client reached the upstream: %v", methods)
	}
}

// jwtOf is an unsigned token with claims: IssuerGrant reads what the
// server's authentication already verified, so no signature is needed here.
func jwtOf(claims map[string]any) string {
	b, _ := json.Marshal(claims)
	return "eyJhbGciOiJub25lIn0." + base64.RawURLEncoding.EncodeToString(b) + ".sig"
}

// IssuerGrant tells the authorization servers' tokens from every other
// credential, and reads their audience and scope in both spellings.
func TestIssuerGrant(t *testing.T) {
	grant := IssuerGrant([]string{"https://idp.example.com"})
	for _, tc := range []struct {
		name  string
		token string
		ok    bool
		want  Grant
	}{
		{"agent token", "agent-token", false, Grant{}},
		{"another issuer's JWT", jwtOf(map[string]any{"iss": "agent-7", "aud": "https://gw/mcp/fs"}), false, Grant{}},
		{"audience string, scope", jwtOf(map[string]any{"iss": "https://idp.example.com", "aud": "https://gw/mcp/fs", "scope": "a b"}), true,
			Grant{Audience: []string{"https://gw/mcp/fs"}, Scopes: []string{"a", "b"}}},
		{"audience list, scp", jwtOf(map[string]any{"iss": "https://idp.example.com", "aud": []string{"x", "https://gw/mcp/fs"}, "scp": []string{"a"}}), true,
			Grant{Audience: []string{"x", "https://gw/mcp/fs"}, Scopes: []string{"a"}}},
		{"no audience", jwtOf(map[string]any{"iss": "https://idp.example.com"}), true, Grant{Scopes: []string{}}},
	} {
		r := httptest.NewRequest("POST", "/mcp/fs", nil)
		r.Header.Set("Authorization", "Bearer "+tc.token)
		g, ok := grant(r)
		if ok != tc.ok || fmt.Sprint(g.Audience) != fmt.Sprint(tc.want.Audience) || strings.Join(g.Scopes, " ") != strings.Join(tc.want.Scopes, " ") {
			t.Errorf("%s: %+v %v, want %+v %v", tc.name, g, ok, tc.want, tc.ok)
		}
	}
}

// With the authorization servers' grant, a token of theirs that the
// server's authentication accepted still needs this endpoint as audience.
func TestIssuerTokenBoundToTheEndpoint(t *testing.T) {
	srv := newTestUpstream("clean")
	upTS := httptest.NewServer(sdk.NewStreamableHTTPHandler(func(*http.Request) *sdk.Server { return srv }, &sdk.StreamableHTTPOptions{JSONResponse: true}))
	t.Cleanup(upTS.Close)
	mux := http.NewServeMux()
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	issuer := "https://idp.example.com"
	g, err := New(Config{Server: "test", Dial: wire.URL(upTS.URL, nil), Decider: newTestDecider(), Recorder: &memRecorder{},
		Detector: pin.Detectors(), Pins: pin.MemoryPins(nil), TrustOnFirstUse: true,
		Resource: &ProtectedResource{Resource: ts.URL + "/mcp/test", MetadataURL: ts.URL + WellKnownPrefix + "/mcp/test",
			AuthorizationServers: []string{issuer}, Scopes: []string{"mcp"}, Grant: IssuerGrant([]string{issuer})}})
	if err != nil {
		t.Fatal(err)
	}
	// The server's authentication, as it would accept any verified JWT.
	h := g.HTTPHandler(context.Background(), func(r *http.Request) (action.Agent, action.Principal, error) {
		if strings.Count(r.Header.Get("Authorization"), ".") == 2 {
			return action.Agent{ID: "oidc-agent"}, action.Principal{}, nil
		}
		return testIdentify(r)
	})
	t.Cleanup(func() { h.Close() })
	mux.Handle("/mcp/test", h)
	endpoint := ts.URL + "/mcp/test"
	for _, tc := range []struct {
		name   string
		token  string
		status int
	}{
		{"for the server as a whole", jwtOf(map[string]any{"iss": issuer, "aud": ts.URL, "scope": "mcp"}), 401},
		{"for another endpoint", jwtOf(map[string]any{"iss": issuer, "aud": ts.URL + "/mcp/other", "scope": "mcp"}), 401},
		{"without the scope", jwtOf(map[string]any{"iss": issuer, "aud": endpoint}), 403},
		{"for this endpoint", jwtOf(map[string]any{"iss": issuer, "aud": endpoint, "scope": "mcp"}), 200},
		{"an agent's own JWT, as on /v1", jwtOf(map[string]any{"iss": "agent-7", "aud": "agentgov"}), 200},
		{"an agent token", "agent-token", 200},
	} {
		if resp := postInit(t, endpoint, tc.token); resp.StatusCode != tc.status {
			t.Errorf("%s: status %d, want %d", tc.name, resp.StatusCode, tc.status)
		}
	}
}
