package mcp

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/agentgov/agentgov/errcode"
)

// WellKnownPrefix is where the protected-resource metadata of an endpoint
// is served: the prefix followed by the endpoint's path (RFC 9728 §3.1), so
// /mcp/fs has its metadata at /.well-known/oauth-protected-resource/mcp/fs.
const WellKnownPrefix = "/.well-known/oauth-protected-resource"

// ProtectedResource makes an HTTP endpoint of the gateway an OAuth 2.1
// protected resource, as the MCP authorization specification asks: its
// metadata (RFC 9728) names the authorization servers a client gets a
// token from; a request without a usable token is answered 401 with a
// WWW-Authenticate header pointing at that metadata; an OAuth token is
// accepted only when it was issued for this endpoint (its audience holds
// Resource) and holds Scopes, and otherwise 401 or 403 insufficient_scope
// so that the client can ask for the scope it lacks (step-up).
//
// The client's token authenticates it to the gateway alone: the upstream
// is spoken to with the gateway's own connection and credentials, never
// with the client's Authorization header.
type ProtectedResource struct {
	// Resource is the endpoint's public URL, the audience its tokens carry.
	Resource string
	// MetadataURL is the public URL of the endpoint's metadata.
	MetadataURL string
	// AuthorizationServers are the issuers a client may get a token from.
	AuthorizationServers []string
	// Scopes are those every OAuth token must hold here; they are the
	// metadata's scopes_supported too.
	Scopes []string
	// Grant tells the audience and scopes of the request's bearer token when
	// it is an OAuth token (ok true), and ok false for the server's own
	// credentials (an agent token), which are accepted as on /v1. Nil when
	// the server accepts no OAuth token.
	Grant func(r *http.Request) (Grant, bool)
}

// Grant is what an OAuth access token says it is good for.
type Grant struct {
	Audience []string
	Scopes   []string
}

// metadata is the RFC 9728 document of the endpoint.
func (p *ProtectedResource) metadata() []byte {
	doc := struct {
		Resource               string   `json:"resource"`
		AuthorizationServers   []string `json:"authorization_servers,omitempty"`
		ScopesSupported        []string `json:"scopes_supported,omitempty"`
		BearerMethodsSupported []string `json:"bearer_methods_supported"`
	}{p.Resource, p.AuthorizationServers, p.Scopes, []string{"header"}}
	b, _ := json.Marshal(doc)
	return b
}

// MetadataHandler serves the endpoint's protected-resource metadata. It
// needs no credential: a client reads it to learn where to get one.
func (h *HTTPHandler) MetadataHandler() http.Handler {
	p := h.g.cfg.Resource
	if p == nil {
		return nil
	}
	doc := p.metadata()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			httpError(w, errcode.Errorf(errcode.MethodNotAllowed, "%s takes GET, not %s", r.URL.Path, r.Method))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "max-age=300")
		w.Write(doc)
	})
}

// challenge is the WWW-Authenticate header of a refusal: the metadata's
// URL always, and the RFC 6750 error when a token was presented.
func (p *ProtectedResource) challenge(errCode, desc string, scopes []string) string {
	var b strings.Builder
	b.WriteString("Bearer ")
	if errCode != "" {
		b.WriteString("error=" + strconv.Quote(errCode) + ", ")
		if desc != "" {
			b.WriteString("error_description=" + strconv.Quote(desc) + ", ")
		}
	}
	if len(scopes) > 0 {
		b.WriteString("scope=" + strconv.Quote(strings.Join(scopes, " ")) + ", ")
	}
	b.WriteString("resource_metadata=" + strconv.Quote(p.MetadataURL))
	return b.String()
}

// unauthorized adds the challenge to a 401 of the authentication.
func (p *ProtectedResource) unauthorized(w http.ResponseWriter, r *http.Request, e *errcode.Error) {
	if p == nil || e.Code.Status() != http.StatusUnauthorized {
		return
	}
	code := ""
	if r.Header.Get("Authorization") != "" {
		code = "invalid_token"
	}
	w.Header().Set("WWW-Authenticate", p.challenge(code, e.Message, nil))
}

// check refuses an OAuth token not issued for this endpoint (401) or
// lacking a scope it needs (403 insufficient_scope, naming every scope
// needed, so that the client asks for them all at once). The server's own
// credentials pass: they were checked as on /v1.
func (p *ProtectedResource) check(w http.ResponseWriter, r *http.Request) *errcode.Error {
	if p == nil || p.Grant == nil {
		return nil
	}
	g, ok := p.Grant(r)
	if !ok {
		return nil
	}
	if !slices.Contains(g.Audience, p.Resource) {
		e := errcode.Errorf(errcode.Unauthorized, "the token was not issued for %s (its audience is %s)", p.Resource, audienceText(g.Audience))
		w.Header().Set("WWW-Authenticate", p.challenge("invalid_token", "the token's audience is not this resource", nil))
		return e
	}
	var missing []string
	for _, s := range p.Scopes {
		if !slices.Contains(g.Scopes, s) {
			missing = append(missing, s)
		}
	}
	if len(missing) > 0 {
		w.Header().Set("WWW-Authenticate", p.challenge("insufficient_scope", "the token lacks scope "+strings.Join(missing, " "), p.Scopes))
		return errcode.Errorf(errcode.Forbidden, "insufficient_scope: the token lacks scope %s", strings.Join(missing, " "))
	}
	return nil
}

func audienceText(aud []string) string {
	if len(aud) == 0 {
		return "empty"
	}
	return strconv.Quote(strings.Join(aud, " "))
}

// IssuerGrant reads the grant of a bearer token that is a JWT issued by
// one of issuers (the endpoint's authorization servers): its aud and its
// scope (RFC 9068 "scope", space-separated, or "scp", a list). Any other
// credential (an agent token, a JWT of another issuer, such as an agent's
// own signed token) is not an OAuth token of this resource: ok is false,
// and it is accepted as on /v1.
//
// It reads the claims without checking the signature: it runs only after
// the server's authentication accepted the same token, which verified it.
// What it adds is the binding to this endpoint, which a token verified for
// the server as a whole does not have.
func IssuerGrant(issuers []string) func(r *http.Request) (Grant, bool) {
	return func(r *http.Request) (Grant, bool) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok {
			return Grant{}, false
		}
		parts := strings.Split(strings.TrimSpace(tok), ".")
		if len(parts) != 3 {
			return Grant{}, false
		}
		payload, err := base64.RawURLEncoding.DecodeString(parts[1])
		if err != nil {
			return Grant{}, false
		}
		var c struct {
			Iss   string          `json:"iss"`
			Aud   json.RawMessage `json:"aud"`
			Scope string          `json:"scope"`
			Scp   []string        `json:"scp"`
		}
		if json.Unmarshal(payload, &c) != nil || !slices.Contains(issuers, c.Iss) {
			return Grant{}, false
		}
		g := Grant{Scopes: append(strings.Fields(c.Scope), c.Scp...)}
		var one string
		if json.Unmarshal(c.Aud, &one) == nil {
			g.Audience = []string{one}
		} else {
			json.Unmarshal(c.Aud, &g.Audience)
		}
		return g, true
	}
}
