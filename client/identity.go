package client

import (
	"context"
	"net/http"
	"time"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/identity"
)

// --- agent registry and delegations ---

// AgentKey is a key to register: a name and the raw Ed25519 public key in
// unpadded base64url.
type AgentKey struct {
	KID       string `json:"kid"`
	PublicKey string `json:"public_key"`
}

// AgentRegistration is what POST /v1/agents takes.
type AgentRegistration struct {
	ID        string            `json:"id"`
	Type      string            `json:"type,omitempty"`
	Labels    map[string]string `json:"labels,omitempty"`
	Principal action.Principal  `json:"principal,omitzero"`
	// Ring is the agent's ring, 0 to 3; nil registers it in ring 3, the
	// least privileged.
	Ring      *int       `json:"ring,omitempty"`
	Keys      []AgentKey `json:"keys,omitempty"`
	SPIFFEID  string     `json:"spiffe_id,omitempty"`
	Audiences []string   `json:"audiences,omitempty"`
}

// RegisterAgent registers an agent (admin); the answer carries each key's
// thumbprint.
func (c *Client) RegisterAgent(ctx context.Context, a AgentRegistration) (identity.Agent, error) {
	var out identity.Agent
	err := c.do(ctx, request{method: http.MethodPost, path: "/v1/agents", body: a, out: &out})
	return out, err
}

// Agents lists the registered agents, revoked ones included (admin).
func (c *Client) Agents(ctx context.Context) ([]identity.Agent, error) {
	var out struct {
		Agents []identity.Agent `json:"agents"`
	}
	err := c.do(ctx, request{method: http.MethodGet, path: "/v1/agents", out: &out})
	return out.Agents, err
}

// RevokeAgent revokes an agent (admin): every credential of it is refused
// from the next request on.
func (c *Client) RevokeAgent(ctx context.Context, agentID string) (identity.Agent, error) {
	id, err := segment("agent id", agentID)
	if err != nil {
		return identity.Agent{}, err
	}
	var out identity.Agent
	err = c.do(ctx, request{method: http.MethodDelete, path: "/v1/agents/" + id, out: &out})
	return out, err
}

// Delegation is what POST /v1/delegations answers: the sub-agent's token
// and the chain it acts under.
type Delegation struct {
	Token      string              `json:"token"`
	ExpiresAt  time.Time           `json:"expires_at"`
	Delegation []action.Delegation `json:"delegation"`
}

// Delegate asks for a delegation to a registered sub-agent, narrower than
// what the calling agent holds.
func (c *Client) Delegate(ctx context.Context, req identity.DelegationRequest) (Delegation, error) {
	var out Delegation
	err := c.do(ctx, request{method: http.MethodPost, path: "/v1/delegations", body: req, out: &out})
	return out, err
}
