package client

import (
	"context"
	"fmt"
	"net/http"
	"strings"
)

// PostJSON posts body as JSON to any endpoint of the API and reads the
// answer into out, for endpoints this package has no method for (incident
// closing, MCP re-pins). path must be escaped by the caller.
func (c *Client) PostJSON(ctx context.Context, path string, body, out any) error {
	if !strings.HasPrefix(path, "/v1/") || strings.Contains(path, "..") {
		return fmt.Errorf("client: %q is not an API path", path)
	}
	return c.do(ctx, request{method: http.MethodPost, path: path, body: body, out: out})
}
