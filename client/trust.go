package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// TrustEvent is one observation that moved an agent's trust score.
type TrustEvent struct {
	At       time.Time `json:"at"`
	Kind     string    `json:"kind"`
	Delta    int       `json:"delta"`
	Decision string    `json:"decision,omitempty"`
	Detail   string    `json:"detail,omitempty"`
	Score    int       `json:"score"`
}

// RingState is the ring an agent holds and why; Elevation is the
// elevation it holds, as the server shows it, if any.
type RingState struct {
	Base      int            `json:"base"`
	Ring      int            `json:"ring"`
	Demoted   bool           `json:"demoted,omitempty"`
	Elevation map[string]any `json:"elevation,omitempty"`
}

// Trust is an agent's trust score, tier, ring and latest events.
type Trust struct {
	Agent  string       `json:"agent"`
	Score  int          `json:"score"`
	Tier   string       `json:"tier"`
	Streak int          `json:"streak"`
	Rings  *RingState   `json:"rings,omitempty"`
	Events []TrustEvent `json:"events"`
}

// Trust reads an agent's trust (GET /v1/agents/{id}/trust), with up to
// limit events (0: the server's default).
func (c *Client) Trust(ctx context.Context, agentID string, limit int) (Trust, error) {
	id, err := segment("agent id", agentID)
	if err != nil {
		return Trust{}, err
	}
	var q url.Values
	if limit > 0 {
		q = url.Values{"limit": {strconv.Itoa(limit)}}
	}
	var out Trust
	err = c.do(ctx, request{method: http.MethodGet, path: "/v1/agents/" + id + "/trust", query: q, out: &out})
	return out, err
}

// Elevation is the answer to an elevation request: the approval ticket an
// approver decides.
type Elevation struct {
	Agent    string `json:"agent"`
	Ring     int    `json:"ring"`
	TTL      string `json:"ttl"`
	Approval struct {
		ID        string `json:"id"`
		Status    string `json:"status"`
		ExpiresAt string `json:"expires_at"`
	} `json:"approval"`
}

// Elevate asks for ring for ttl on behalf of an agent (POST
// /v1/agents/{id}/elevate); once an approver approves the ticket, the
// agent holds the ring until ttl has passed.
func (c *Client) Elevate(ctx context.Context, agentID string, ring int, ttl time.Duration, reason string) (Elevation, error) {
	id, err := segment("agent id", agentID)
	if err != nil {
		return Elevation{}, err
	}
	body := map[string]any{"ring": ring, "ttl": ttl.String(), "reason": reason}
	var out Elevation
	err = c.do(ctx, request{method: http.MethodPost, path: "/v1/agents/" + id + "/elevate", body: body, out: &out})
	return out, err
}
