package config

import (
	"fmt"
	"net/url"
	"strings"
)

func (a *MCPAuthorization) validate() error {
	if a == nil {
		return nil
	}
	const key = "mcp.authorization"
	u, err := url.Parse(a.PublicURL)
	if a.PublicURL == "" {
		return badKey(key+".public_url", "required: the URL clients reach the server at, which names each endpoint's resource")
	}
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return badKey(key+".public_url", "want an absolute http or https URL without query or fragment, got %q", a.PublicURL)
	}
	if len(a.AuthorizationServers) == 0 {
		return badKey(key+".authorization_servers", "name at least one issuer clients get tokens from")
	}
	for i, s := range a.AuthorizationServers {
		if u, err := url.Parse(s); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return badKey(fmt.Sprintf("%s.authorization_servers[%d]", key, i), "want an issuer's absolute http or https URL, got %q", s)
		}
	}
	for i, s := range a.Scopes {
		if s == "" || strings.ContainsAny(s, " \t\"\\") {
			return badKey(fmt.Sprintf("%s.scopes[%d]", key, i), "a scope is a word without spaces, quotes or backslashes, got %q", s)
		}
	}
	return nil
}

// Resource is the OAuth resource of the endpoint at path (/mcp/fs).
func (a *MCPAuthorization) Resource(path string) string {
	return strings.TrimSuffix(a.PublicURL, "/") + path
}

func badKey(key, format string, args ...any) error {
	return &Error{Key: key, Msg: fmt.Sprintf(format, args...)}
}
