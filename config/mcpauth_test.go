package config

import (
	"strings"
	"testing"
)

// mcp.authorization: every part is checked up front, the error naming the
// key; nothing is guessed (the resource is never taken from a request's
// Host, which the client chooses).
func TestMCPAuthorizationKeys(t *testing.T) {
	c, err := Parse("agentgov.yaml", []byte("mcp:\n  authorization:\n    public_url: https://gw.example.com/\n    authorization_servers: [https://idp.example.com]\n    scopes: [mcp:tools]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.MCP.Authorization.Resource("/mcp/fs"); got != "https://gw.example.com/mcp/fs" {
		t.Errorf("resource = %q", got)
	}
	for _, tc := range []struct{ src, want string }{
		{"mcp:\n  authorization: {authorization_servers: [https://idp]}\n", "mcp.authorization.public_url: required"},
		{"mcp:\n  authorization: {public_url: gw.example.com, authorization_servers: [https://idp]}\n", "mcp.authorization.public_url: want an absolute http or https URL"},
		{"mcp:\n  authorization: {public_url: 'https://gw?x=1', authorization_servers: [https://idp]}\n", "mcp.authorization.public_url: want an absolute"},
		{"mcp:\n  authorization: {public_url: https://gw}\n", "mcp.authorization.authorization_servers: name at least one"},
		{"mcp:\n  authorization: {public_url: https://gw, authorization_servers: [idp]}\n", "mcp.authorization.authorization_servers[0]: want an issuer's absolute"},
		{"mcp:\n  authorization: {public_url: https://gw, authorization_servers: [https://idp], scopes: ['a b']}\n", "mcp.authorization.scopes[0]: a scope is a word"},
		{"mcp:\n  authorization: {public_url: https://gw, authorization_servers: [https://idp], audience: x}\n", "field audience is not a known key"},
	} {
		_, err := Parse("agentgov.yaml", []byte(tc.src))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want it to contain %q", tc.src, err, tc.want)
		}
	}
}
