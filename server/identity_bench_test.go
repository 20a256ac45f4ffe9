package server_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/audit"
	"github.com/agentgov/agentgov/config"
	"github.com/agentgov/agentgov/govern"
	"github.com/agentgov/agentgov/identity"
	"github.com/agentgov/agentgov/policy"
	"github.com/agentgov/agentgov/server"
	"github.com/agentgov/agentgov/store/sqlite"
)

// identityBench is a server whose engine decides in process (policy only,
// so that the credential is what the benchmarks compare), with a static
// agent token, an OIDC issuer whose keys are in a file, and a delegation.
type identityBench struct {
	h           http.Handler
	srv         *server.Server
	eng         *govern.Engine
	oidcToken   string
	delegation  string
	staticToken string
}

func newIdentityBench(b *testing.B) *identityBench {
	b.Helper()
	ctx := context.Background()
	dir := b.TempDir()
	db, err := sqlite.OpenDir(ctx, dir)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	signer, verifier, err := audit.LoadOrCreateKey(dir, "bench")
	if err != nil {
		b.Fatal(err)
	}
	alog, err := audit.Open(ctx, db, signer, verifier, audit.Options{})
	if err != nil {
		b.Fatal(err)
	}
	docs, err := policy.Parse("p.yaml", []byte(testPolicy))
	if err != nil {
		b.Fatal(err)
	}
	set, err := policy.Compile([]*policy.Document{docs})
	if err != nil {
		b.Fatal(err)
	}
	eng := govern.New(set)

	// An OIDC issuer with an Ed25519 key in a JWKS file.
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	jwks, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: pub, KeyID: "o1", Algorithm: "EdDSA"}}})
	jwksFile := filepath.Join(dir, "jwks.json")
	if err := os.WriteFile(jwksFile, jwks, 0o644); err != nil {
		b.Fatal(err)
	}
	reg, err := identity.NewRegistry(ctx, db, nil)
	if err != nil {
		b.Fatal(err)
	}
	apub, _, _ := ed25519.GenerateKey(rand.Reader)
	for _, id := range []string{"a1", "worker"} {
		if _, err := reg.Register(ctx, identity.Agent{ID: id, Keys: []identity.Key{{KID: "k1", PublicKey: identity.EncodePublicKey(apub)}}}, "ops"); err != nil {
			b.Fatal(err)
		}
	}
	v, err := identity.NewVerifier(ctx, reg, db, identity.Options{Audience: "bench",
		OIDC: []identity.OIDCIssuer{{Issuer: "https://idp.bench", JWKSFile: jwksFile, Audience: "agentgov"}}})
	if err != nil {
		b.Fatal(err)
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.MapClaims{"iss": "https://idp.bench", "sub": "a1", "aud": "agentgov", "exp": time.Now().Add(time.Hour).Unix()})
	tok.Header["kid"] = "o1"
	oidcTok, err := tok.SignedString(priv)
	if err != nil {
		b.Fatal(err)
	}
	sub, err := v.Verify(ctx, oidcTok)
	if err != nil {
		b.Fatal(err)
	}
	dtok, _, err := v.Delegate(ctx, sub, identity.DelegationRequest{Agent: "worker", Tools: []string{"read_*"}, ExpiresIn: 3600})
	if err != nil {
		b.Fatal(err)
	}

	cfg := &config.Config{Tokens: []config.Token{{Name: "a1", Role: config.AgentRole, Agent: "a1", Principal: action.Principal{User: "alice"}, SHA256: hashOf("a1-static-token-of-realistic-length-0123456789")}}}
	cfg.Fill()
	srv, err := server.New(server.Options{Config: cfg, Engine: eng, Audit: alog, Idempotency: db, Decisions: db, Identity: v, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	return &identityBench{h: srv.Handler(), srv: srv, eng: eng, oidcToken: oidcTok, delegation: dtok, staticToken: "a1-static-token-of-realistic-length-0123456789"}
}

// BenchmarkDecideByCredential is one /v1/decide in process with each kind
// of credential: the difference to the static token is what verifying
// (from the cache, for tokens used again) adds to a decision.
func BenchmarkDecideByCredential(b *testing.B) {
	ib := newIdentityBench(b)
	body := `{"tool":{"name":"read_file"},"args":{"path":"/tmp/x"}}`
	for _, c := range []struct{ name, tok string }{
		{"bearer", ib.staticToken},
		{"cached-oidc-jwt", ib.oidcToken},
		{"cached-delegation", ib.delegation},
	} {
		b.Run(c.name, func(b *testing.B) {
			req := httptest.NewRequest("POST", "/v1/decide", strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+c.tok)
			for b.Loop() {
				req.Body = readerOf(body)
				w := httptest.NewRecorder()
				ib.h.ServeHTTP(w, req)
				if w.Code != 200 || !strings.Contains(w.Body.String(), `"effect":"allow"`) {
					b.Fatalf("%d %s", w.Code, w.Body)
				}
			}
		})
	}
}

type stringReader struct{ *strings.Reader }

func (stringReader) Close() error { return nil }

func readerOf(s string) stringReader { return stringReader{strings.NewReader(s)} }

// BenchmarkAuthenticateAndDecide is the in-process cost the issue bounds:
// authenticating a request's credential (as the MCP gateway and the model
// proxy do, through Identify) and deciding its action with the engine,
// without the HTTP and JSON around them.
func BenchmarkAuthenticateAndDecide(b *testing.B) {
	ib := newIdentityBench(b)
	ctx := context.Background()
	for _, c := range []struct{ name, tok string }{
		{"bearer", ib.staticToken},
		{"cached-oidc-jwt", ib.oidcToken},
		{"cached-delegation", ib.delegation},
	} {
		b.Run(c.name, func(b *testing.B) {
			req := httptest.NewRequest("POST", "/llm/v1/chat/completions", nil)
			req.Header.Set("Authorization", "Bearer "+c.tok)
			for b.Loop() {
				ag, pr, err := ib.srv.Identify(req)
				if err != nil {
					b.Fatal(err)
				}
				d, err := ib.eng.Decide(ctx, action.Action{Agent: ag, Principal: pr, Tool: action.Tool{Name: "read_file"}})
				if err != nil || d.Effect != action.Allow {
					b.Fatalf("%v %v", d, err)
				}
			}
		})
	}
}
