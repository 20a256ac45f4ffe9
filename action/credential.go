package action

import (
	"path"
	"slices"
	"strings"
	"time"
)

// Credential kinds: how a caller proved who it is (DESIGN §9).
const (
	CredentialToken  = "token"  // a static bearer token of the configuration
	CredentialJWT    = "jwt"    // a JWT the agent signed with its registered key
	CredentialOIDC   = "oidc"   // a token of a configured OpenID Connect issuer
	CredentialSPIFFE = "spiffe" // a SPIFFE JWT-SVID
	// CredentialDelegation is a token the server issued to a sub-agent
	// for a delegation.
	CredentialDelegation = "delegation"
)

// Credential is the verified subject of a request: what the audit log
// records of who made it.
type Credential struct {
	Kind string `json:"kind"`
	// Subject is the token's subject: the configured token's name, a JWT's
	// sub, a SPIFFE ID.
	Subject string `json:"subject,omitempty"`
	// Issuer is the issuer that vouched for it (an OIDC issuer, a SPIFFE
	// trust domain, the agent itself for a self-signed JWT).
	Issuer string `json:"issuer,omitempty"`
	// Thumbprint is the RFC 7638 thumbprint of the key that signed it.
	Thumbprint string `json:"thumbprint,omitempty"`
}

// Delegation is one link of a delegation chain: Agent let Delegate act
// within these bounds until ExpiresAt. An empty list bounds nothing by
// itself (the links before it still do).
type Delegation struct {
	ID           string    `json:"id"`
	Agent        string    `json:"agent"`
	Delegate     string    `json:"delegate"`
	Tools        []string  `json:"tools,omitempty"`
	Points       []Point   `json:"points,omitempty"`
	Destinations []string  `json:"destinations,omitempty"`
	ExpiresAt    time.Time `json:"expires_at"`
	MaxDepth     int       `json:"max_depth"`
}

// Covers says why the delegation does not cover a at now, or "" when it
// does.
func (d *Delegation) Covers(a *Action, now time.Time) string {
	name := "delegation " + d.ID + " (" + d.Agent + " to " + d.Delegate + ")"
	if !now.Before(d.ExpiresAt) {
		return name + " expired at " + d.ExpiresAt.UTC().Format(time.RFC3339)
	}
	if len(d.Points) > 0 && !slices.Contains(d.Points, a.PointOrDefault()) {
		return name + " does not cover point " + string(a.PointOrDefault())
	}
	if len(d.Tools) > 0 && a.Tool.Name != "" && !ToolMatchesAny(d.Tools, a.Tool) {
		return name + " does not cover tool " + toolName(a.Tool)
	}
	if len(d.Destinations) > 0 && a.Destination != "" && !globAny(d.Destinations, a.Destination) {
		return name + " does not cover destination " + a.Destination
	}
	return ""
}

// DelegationDenies says why the agent's delegation chain does not cover
// a, naming the first link that does not, or "" when every link does.
func DelegationDenies(a *Action, now time.Time) string {
	for i := range a.Agent.Delegation {
		if why := a.Agent.Delegation[i].Covers(a, now); why != "" {
			return why
		}
	}
	return ""
}

func toolName(t Tool) string {
	if t.Server != "" {
		return t.Server + "/" + t.Name
	}
	return t.Name
}

// ToolMatchesAny reports whether t matches one of the patterns: "name" or
// "server/name", with * and ? globs, as policy documents write them.
func ToolMatchesAny(patterns []string, t Tool) bool {
	for _, p := range patterns {
		if strings.Contains(p, "/") {
			if t.Server != "" && globMatch(p, t.Server+"/"+t.Name) {
				return true
			}
			continue
		}
		if globMatch(p, t.Name) {
			return true
		}
	}
	return false
}

func globAny(patterns []string, s string) bool {
	for _, p := range patterns {
		if globMatch(p, s) {
			return true
		}
	}
	return false
}

func globMatch(p, s string) bool {
	if p == "*" {
		return true
	}
	ok, err := path.Match(p, s)
	return err == nil && ok
}

// GlobNarrows reports whether every string that pattern p matches is
// matched by one of the patterns of within: p is one of them, one of them
// is "*", or p is a literal that one of them matches. A glob is never
// taken to narrow another glob it differs from: that is refused rather
// than reasoned about.
func GlobNarrows(p string, within []string) bool {
	for _, q := range within {
		if q == p || q == "*" {
			return true
		}
		if !strings.ContainsAny(p, "*?[\\") && globMatch(q, p) {
			return true
		}
		// A bare name pattern covers that name on any server.
		if s, n, ok := strings.Cut(p, "/"); ok && !strings.Contains(q, "/") && !strings.ContainsAny(n, "*?[\\") && s != "" && globMatch(q, n) {
			return true
		}
	}
	return false
}
