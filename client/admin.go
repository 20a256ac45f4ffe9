package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/agentgov/agentgov/approval"
	"github.com/agentgov/agentgov/budget"
	"github.com/agentgov/agentgov/killswitch"
	"github.com/agentgov/agentgov/session"
)

// --- approvals ---

// Approvals lists the approval tickets the caller may decide (GET
// /v1/approvals), those with the given status, or all of them when status
// is empty.
func (c *Client) Approvals(ctx context.Context, status approval.Status) ([]approval.Ticket, error) {
	if status != "" && !status.Valid() {
		return nil, fmt.Errorf("client: unknown approval status %q", status)
	}
	var q url.Values
	if status != "" {
		q = url.Values{"status": {string(status)}}
	}
	var out struct {
		Approvals []approval.Ticket `json:"approvals"`
	}
	if err := c.do(ctx, request{method: http.MethodGet, path: "/v1/approvals", query: q, out: &out}); err != nil {
		return nil, err
	}
	return out.Approvals, nil
}

// Approval fetches one ticket (GET /v1/approvals/{id}).
func (c *Client) Approval(ctx context.Context, ticketID string) (approval.Ticket, error) {
	id, err := segment("approval id", ticketID)
	if err != nil {
		return approval.Ticket{}, err
	}
	var t approval.Ticket
	err = c.do(ctx, request{method: http.MethodGet, path: "/v1/approvals/" + id, out: &t})
	return t, err
}

// Approve approves a pending ticket; the agent may then retry the exact
// action once, with the ticket's id as its approval_id.
func (c *Client) Approve(ctx context.Context, ticketID, note string) (approval.Ticket, error) {
	return c.decideTicket(ctx, ticketID, "approve", note)
}

// DenyApproval denies a pending ticket.
func (c *Client) DenyApproval(ctx context.Context, ticketID, note string) (approval.Ticket, error) {
	return c.decideTicket(ctx, ticketID, "deny", note)
}

func (c *Client) decideTicket(ctx context.Context, ticketID, verb, note string) (approval.Ticket, error) {
	id, err := segment("approval id", ticketID)
	if err != nil {
		return approval.Ticket{}, err
	}
	var t approval.Ticket
	err = c.do(ctx, request{method: http.MethodPost, path: "/v1/approvals/" + id + "/" + verb,
		body: map[string]string{"note": note}, out: &t})
	return t, err
}

// --- sessions ---

// CreateSession opens a session of the token's own agent (POST
// /v1/sessions). An empty id lets the server choose one.
func (c *Client) CreateSession(ctx context.Context, id string) (session.Session, error) {
	return c.createSession(ctx, "", id)
}

// CreateSessionFor opens a session for the named agent; only an admin token
// may do that.
func (c *Client) CreateSessionFor(ctx context.Context, agentID, id string) (session.Session, error) {
	if agentID == "" {
		return session.Session{}, fmt.Errorf("client: empty agent id")
	}
	return c.createSession(ctx, agentID, id)
}

func (c *Client) createSession(ctx context.Context, agentID, id string) (session.Session, error) {
	body := map[string]string{}
	if id != "" {
		body["id"] = id
	}
	if agentID != "" {
		body["agent"] = agentID
	}
	var s session.Session
	err := c.do(ctx, request{method: http.MethodPost, path: "/v1/sessions", body: body, out: &s})
	return s, err
}

// Session fetches a session (GET /v1/sessions/{id}).
func (c *Client) Session(ctx context.Context, sessionID string) (session.Session, error) {
	id, err := segment("session id", sessionID)
	if err != nil {
		return session.Session{}, err
	}
	var s session.Session
	err = c.do(ctx, request{method: http.MethodGet, path: "/v1/sessions/" + id, out: &s})
	return s, err
}

// PauseSession stops every action in the session until it is resumed.
func (c *Client) PauseSession(ctx context.Context, sessionID string) (session.Session, error) {
	return c.moveSession(ctx, sessionID, "pause")
}

// ResumeSession lets a paused session act again.
func (c *Client) ResumeSession(ctx context.Context, sessionID string) (session.Session, error) {
	return c.moveSession(ctx, sessionID, "resume")
}

// CloseSession ends the session for good.
func (c *Client) CloseSession(ctx context.Context, sessionID string) (session.Session, error) {
	return c.moveSession(ctx, sessionID, "close")
}

func (c *Client) moveSession(ctx context.Context, sessionID, verb string) (session.Session, error) {
	id, err := segment("session id", sessionID)
	if err != nil {
		return session.Session{}, err
	}
	var s session.Session
	err = c.do(ctx, request{method: http.MethodPost, path: "/v1/sessions/" + id + "/" + verb, out: &s})
	return s, err
}

// --- kill switch ---

// Kill engages a kill switch (POST /v1/kill): every following decision in
// its scope is denied until it is released. The target is empty for
// killswitch.System, an agent or session id, or "user:NAME", "team:NAME" or
// "org:NAME" for killswitch.Principal.
func (c *Client) Kill(ctx context.Context, scope killswitch.Scope, target, reason string) (killswitch.Switch, error) {
	var sw killswitch.Switch
	err := c.do(ctx, request{method: http.MethodPost, path: "/v1/kill",
		body: map[string]string{"scope": string(scope), "target": target, "reason": reason}, out: &sw})
	return sw, err
}

// ReleaseKill releases an engaged switch (DELETE /v1/kill/{id}).
func (c *Client) ReleaseKill(ctx context.Context, switchID string) error {
	id, err := segment("kill switch id", switchID)
	if err != nil {
		return err
	}
	return c.do(ctx, request{method: http.MethodDelete, path: "/v1/kill/" + id})
}

// Kills lists the switches that are engaged now (GET /v1/kill).
func (c *Client) Kills(ctx context.Context) ([]killswitch.Switch, error) {
	return c.kills(ctx, nil)
}

// AllKills lists every switch ever engaged, released ones included.
func (c *Client) AllKills(ctx context.Context) ([]killswitch.Switch, error) {
	return c.kills(ctx, url.Values{"all": {"true"}})
}

func (c *Client) kills(ctx context.Context, q url.Values) ([]killswitch.Switch, error) {
	var out struct {
		Switches []killswitch.Switch `json:"switches"`
	}
	if err := c.do(ctx, request{method: http.MethodGet, path: "/v1/kill", query: q, out: &out}); err != nil {
		return nil, err
	}
	return out.Switches, nil
}

// --- audit log ---

// AuditEntry is one entry of the audit log: the record is the canonical
// JSON that was hashed, exactly as stored.
type AuditEntry struct {
	Index  uint64          `json:"index"`
	Kind   string          `json:"kind"`
	Time   time.Time       `json:"time"`
	Record json.RawMessage `json:"record"`
}

// AuditPage is a run of entries and the size of the whole log when it was
// read.
type AuditPage struct {
	Entries []AuditEntry `json:"entries"`
	Size    uint64       `json:"size"`
}

// AuditEntries reads up to limit (1 to 1000) entries whose index is greater
// than after (GET /v1/audit); after = -1 starts at the first entry.
func (c *Client) AuditEntries(ctx context.Context, after int64, limit int) (AuditPage, error) {
	if after < -1 {
		return AuditPage{}, fmt.Errorf("client: after must be -1 or an index, not %d", after)
	}
	if limit < 1 || limit > 1000 {
		return AuditPage{}, fmt.Errorf("client: limit must be between 1 and 1000, not %d", limit)
	}
	q := url.Values{"after": {strconv.FormatInt(after, 10)}, "limit": {strconv.Itoa(limit)}}
	var p AuditPage
	err := c.do(ctx, request{method: http.MethodGet, path: "/v1/audit", query: q, out: &p})
	return p, err
}

// Checkpoint is the log's latest signed head: a note in the format of
// golang.org/x/mod/sumdb/note, signed with the server's Ed25519 key.
type Checkpoint struct {
	Size uint64 `json:"size"`
	Note string `json:"checkpoint"`
}

// Checkpoint fetches the latest signed checkpoint (GET /v1/audit/checkpoint).
func (c *Client) Checkpoint(ctx context.Context) (Checkpoint, error) {
	var cp Checkpoint
	err := c.do(ctx, request{method: http.MethodGet, path: "/v1/audit/checkpoint", out: &cp})
	return cp, err
}

// Proof is an RFC 6962 inclusion proof of one entry in the tree of a signed
// checkpoint. Entry is the stored entry whose leaf hash is proved.
type Proof struct {
	Index      uint64          `json:"index"`
	TreeSize   uint64          `json:"tree_size"`
	LeafHash   []byte          `json:"leaf_hash"`
	Hashes     [][]byte        `json:"proof"`
	Checkpoint string          `json:"checkpoint"`
	Entry      json.RawMessage `json:"entry"`
}

// Proof fetches the inclusion proof of entry index against the latest
// checkpoint (GET /v1/audit/proof/{index}).
func (c *Client) Proof(ctx context.Context, index uint64) (Proof, error) {
	var p Proof
	err := c.do(ctx, request{method: http.MethodGet, path: "/v1/audit/proof/" + strconv.FormatUint(index, 10), out: &p})
	return p, err
}

// Consistency fetches the RFC 6962 consistency proof between the trees of
// sizes from and to (GET /v1/audit/consistency).
func (c *Client) Consistency(ctx context.Context, from, to uint64) ([][]byte, error) {
	if from < 1 || to < from {
		return nil, fmt.Errorf("client: want 1 <= from <= to, got from %d, to %d", from, to)
	}
	q := url.Values{"from": {strconv.FormatUint(from, 10)}, "to": {strconv.FormatUint(to, 10)}}
	var out struct {
		Proof [][]byte `json:"proof"`
	}
	if err := c.do(ctx, request{method: http.MethodGet, path: "/v1/audit/consistency", query: q, out: &out}); err != nil {
		return nil, err
	}
	return out.Proof, nil
}

// --- policies ---

// Policies is the policy set in force.
type Policies struct {
	// Digest identifies the set; audit entries and approval tickets name it.
	Digest    string           `json:"digest"`
	Documents []PolicyDocument `json:"documents"`
}

// PolicyDocument summarises one loaded policy document.
type PolicyDocument struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	Rules       int    `json:"rules"`
	RateLimits  int    `json:"rate_limits"`
	Default     string `json:"default"`
}

// Policies describes what is loaded (GET /v1/policies).
func (c *Client) Policies(ctx context.Context) (Policies, error) {
	var p Policies
	err := c.do(ctx, request{method: http.MethodGet, path: "/v1/policies", out: &p})
	return p, err
}

// ReloadPolicies makes the server read its policy source again (POST
// /v1/policies/reload) and returns the digest of the set now in force. A set
// with errors is refused with CodeUnprocessable, its file:line messages in
// the error, and the previous set stays.
func (c *Client) ReloadPolicies(ctx context.Context) (digest string, err error) {
	var out struct {
		Digest string `json:"digest"`
	}
	err = c.do(ctx, request{method: http.MethodPost, path: "/v1/policies/reload", out: &out})
	return out.Digest, err
}

// --- budgets ---

// CreateBudget adds a budget (POST /v1/budgets); one with the same id
// already there is a CodeConflict.
func (c *Client) CreateBudget(ctx context.Context, b budget.Config) (budget.Config, error) {
	var out budget.Config
	err := c.do(ctx, request{method: http.MethodPost, path: "/v1/budgets", body: b, out: &out})
	return out, err
}

// PutBudget creates or replaces the budget b.ID (PUT /v1/budgets/{id}).
func (c *Client) PutBudget(ctx context.Context, b budget.Config) (budget.Config, error) {
	id, err := segment("budget id", b.ID)
	if err != nil {
		return budget.Config{}, err
	}
	var out budget.Config
	err = c.do(ctx, request{method: http.MethodPut, path: "/v1/budgets/" + id, body: b, out: &out})
	return out, err
}

// Budget fetches one budget (GET /v1/budgets/{id}).
func (c *Client) Budget(ctx context.Context, budgetID string) (budget.Config, error) {
	id, err := segment("budget id", budgetID)
	if err != nil {
		return budget.Config{}, err
	}
	var out budget.Config
	err = c.do(ctx, request{method: http.MethodGet, path: "/v1/budgets/" + id, out: &out})
	return out, err
}

// Budgets lists every budget (GET /v1/budgets).
func (c *Client) Budgets(ctx context.Context) ([]budget.Config, error) {
	var out struct {
		Budgets []budget.Config `json:"budgets"`
	}
	if err := c.do(ctx, request{method: http.MethodGet, path: "/v1/budgets", out: &out}); err != nil {
		return nil, err
	}
	return out.Budgets, nil
}

// DeleteBudget removes a budget (DELETE /v1/budgets/{id}).
func (c *Client) DeleteBudget(ctx context.Context, budgetID string) error {
	id, err := segment("budget id", budgetID)
	if err != nil {
		return err
	}
	return c.do(ctx, request{method: http.MethodDelete, path: "/v1/budgets/" + id})
}

// Usage reports, for every budget that applies to an actor with the
// identity in scope, what has been spent and reserved in its current period
// (GET /v1/usage). The zero scope lists every budget.
func (c *Client) Usage(ctx context.Context, scope budget.Scope) ([]budget.Usage, error) {
	q := url.Values{}
	for k, v := range map[string]string{"org": scope.Org, "team": scope.Team, "user": scope.User, "agent": scope.Agent, "session": scope.Session} {
		if v != "" {
			q.Set(k, v)
		}
	}
	var out struct {
		Usage []budget.Usage `json:"usage"`
	}
	if err := c.do(ctx, request{method: http.MethodGet, path: "/v1/usage", query: q, out: &out}); err != nil {
		return nil, err
	}
	return out.Usage, nil
}
