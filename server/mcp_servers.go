package server

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/agentgov/agentgov/errcode"
)

// MCPServers shows the MCP gateways' upstreams, their pins and drift, and
// re-pins a drifted tool after a person's review. The application wires
// one over its gateways (the server does not import the gateway).
type MCPServers interface {
	// MCPServers lists every configured upstream, sorted by name.
	MCPServers(ctx context.Context) []MCPServer
	// Repin pins tool of server as the upstream offers it now. Errors
	// carry an errcode: not_found for an unknown server or tool, conflict
	// when nothing drifted, the review is stale or the lock is signed.
	Repin(ctx context.Context, server string, req MCPRepin) (MCPRepinned, error)
}

// MCPServer is one upstream of GET /v1/mcp/servers.
type MCPServer struct {
	Name string `json:"name"`
	// Transport is "stdio" (a command the server starts) or "http".
	Transport string `json:"transport"`
	// Upstream is the command's program or the URL's scheme, host and
	// path: enough to recognise it, never its arguments or query, which
	// may carry credentials.
	Upstream string `json:"upstream"`
	Lock     string `json:"lock,omitempty"`
	// Signed says the lock is signed (policy_trust): re-pins are made
	// offline and signed again.
	Signed bool `json:"signed"`
	// ListedAt is when the gateway last listed the upstream's tools;
	// absent when it has not since it started.
	ListedAt    time.Time `json:"listed_at,omitzero"`
	Drift       bool      `json:"drift"`
	Quarantined int       `json:"quarantined"`
	Tools       []MCPTool `json:"tools"`
}

// MCPTool is one tool: pinned, offered, or both.
type MCPTool struct {
	Name string `json:"name"`
	// State is pinned, drifted, new, removed or unlisted.
	State         string `json:"state"`
	PinnedDigest  string `json:"pinned_digest,omitempty"`
	CurrentDigest string `json:"current_digest,omitempty"`
	// Quarantine says why the gateway refuses calls to the tool.
	Quarantine string        `json:"quarantine,omitempty"`
	Changes    []MCPChange   `json:"changes,omitempty"`
	Diff       []MCPDiffLine `json:"diff,omitempty"`
}

// MCPChange is one graded difference between a pin and the live tool.
type MCPChange struct {
	Level string `json:"level"`
	What  string `json:"what"`
}

// MCPDiffLine is a line of the definitions' difference: Op "-" pinned
// only, "+" offered only, " " both.
type MCPDiffLine struct {
	Op   string `json:"op"`
	Text string `json:"text"`
}

// MCPRepin is the body of POST /v1/mcp/servers/{name}/tools/{tool}/repin.
type MCPRepin struct {
	Tool string `json:"-"`
	By   string `json:"-"`
	// Reason is required, and recorded in the audit log.
	Reason string `json:"reason"`
	// Digest, optional, is the fingerprint of the definition the person
	// reviewed: the re-pin is refused when the upstream offers another.
	Digest string `json:"digest,omitempty"`
}

// MCPRepinned is the answer to a re-pin.
type MCPRepinned struct {
	Server    string `json:"server"`
	Tool      string `json:"tool"`
	OldDigest string `json:"old_digest,omitempty"`
	NewDigest string `json:"new_digest,omitempty"`
	Lock      string `json:"lock,omitempty"`
	By        string `json:"by"`
}

// mcpRoutes adds the MCP review endpoints.
func (s *Server) mcpRoutes(m *http.ServeMux) {
	m.Handle("GET /v1/mcp/servers", s.route(approvers, s.listMCPServers))
	m.Handle("POST /v1/mcp/servers/{name}/tools/{tool}/repin", s.route(admins, s.repinMCPTool))
}

func (s *Server) listMCPServers(w http.ResponseWriter, r *http.Request) error {
	out := []MCPServer{}
	if s.opt.MCP != nil {
		out = append(out, s.opt.MCP.MCPServers(r.Context())...)
	}
	writeJSON(w, http.StatusOK, map[string]any{"servers": out})
	return nil
}

func (s *Server) repinMCPTool(w http.ResponseWriter, r *http.Request) error {
	name, tool := r.PathValue("name"), r.PathValue("tool")
	var req MCPRepin
	body, err := s.readBody(w, r)
	if err != nil {
		return err
	}
	if err := decodeStrict(body, &req); err != nil {
		return err
	}
	req.Reason = strings.TrimSpace(req.Reason)
	switch {
	case req.Reason == "":
		return errorf(errcode.BadRequest, "reason: required: say why the new definition is safe to pin; it is recorded in the audit log")
	case len(req.Reason) > 4096:
		return errorf(errcode.BadRequest, "reason: at most 4096 bytes")
	case len(req.Digest) > 128:
		return errorf(errcode.BadRequest, "digest: at most 128 bytes")
	}
	if s.opt.MCP == nil {
		return errorf(errcode.NotFound, "no MCP server "+name+": this server has no MCP gateway")
	}
	req.Tool, req.By = tool, callerOf(r.Context()).name
	out, err := s.opt.MCP.Repin(r.Context(), name, req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
