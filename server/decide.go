package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"time"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/audit"
	"github.com/agentgov/agentgov/budget"
	"github.com/agentgov/agentgov/config"
	"github.com/agentgov/agentgov/detect"
	"github.com/agentgov/agentgov/errcode"
	"github.com/agentgov/agentgov/govern"
	"github.com/agentgov/agentgov/store"
)

// readBody reads a size-limited body; the connection's read deadline
// (bodyDeadline) bounds how long it may take to arrive.
// readOptional decodes a body that may be left out (a note, an optional
// field) strictly into v; an empty body leaves v as it is.
func (s *Server) readOptional(w http.ResponseWriter, r *http.Request, v any) error {
	body, err := s.readBody(w, r)
	if err != nil || len(body) == 0 {
		return err
	}
	return decodeStrict(body, v)
}

func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.maxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		var ne net.Error
		switch {
		case errors.As(err, &mbe):
			return nil, errorf(errcode.TooLarge, fmt.Sprintf("request body larger than %d bytes", s.maxBody))
		case errors.As(err, &ne) && ne.Timeout():
			return nil, errorf(errcode.Timeout, fmt.Sprintf("the request body did not arrive within %s (body_read_timeout)", s.bodyTimeout))
		}
		return nil, errorf(errcode.BadRequest, "could not read the request body: "+err.Error())
	}
	return b, nil
}

// decodeStrict decodes one JSON object, refusing unknown fields.
func decodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errorf(errcode.BadRequest, errcode.DescribeJSON(err))
	}
	// More says nothing of a closing bracket after the value: whatever
	// follows it must be whitespace.
	if len(bytes.TrimLeft(b[dec.InputOffset():], " \t\r\n")) > 0 {
		return errTrailing
	}
	return nil
}

var errTrailing = errorf(errcode.BadRequest, "unexpected data after the JSON object")

// oneValue refuses a body, which a decoder has read a value from, that
// holds more than that value: the decoders stop at the end of the first
// value and miss a stray closing bracket after it.
func oneValue(b []byte) error {
	if !json.Valid(b) {
		return errTrailing
	}
	return nil
}

// bindIdentity makes the credential the only source of who acts. A body
// that names another agent or principal is refused rather than corrected,
// so that a confused or malicious caller learns it at once.
func bindIdentity(c *caller, a *action.Action) error {
	if a.Agent.Credential != nil {
		return errorf(errcode.Forbidden, "agent.credential comes from the request's credential, never from its body")
	}
	if c.role != config.AgentRole {
		// Admins decide on behalf of any agent (what-if checks, tests),
		// and the record says it was their credential.
		if a.Agent.ID == "" {
			return errorf(errcode.BadRequest, "agent.id: an admin deciding must name the agent")
		}
		a.Agent.Credential = c.cred
		return nil
	}
	if len(a.Agent.Delegation) > 0 {
		return errorf(errcode.Forbidden, "agent.delegation comes from the credential (a delegation token), never from the body")
	}
	if a.Agent.ID != "" && a.Agent.ID != c.agent.ID {
		return errorf(errcode.Forbidden, fmt.Sprintf("agent.id: this token acts as %q and cannot claim %q", c.agent.ID, a.Agent.ID))
	}
	if a.Agent.Type != "" && a.Agent.Type != c.agent.Type {
		return errorf(errcode.Forbidden, "agent.type comes from the credential and differs from it")
	}
	if len(a.Agent.Labels) > 0 && !sameLabels(a.Agent.Labels, c.agent.Labels) {
		return errorf(errcode.Forbidden, "agent.labels come from the credential and differ from it")
	}
	if a.Principal != (action.Principal{}) && a.Principal != c.principal {
		return errorf(errcode.Forbidden, "principal comes from the credential and differs from it")
	}
	a.Agent, a.Principal = c.agent, c.principal
	return nil
}

func sameLabels(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

var idemKey = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

// idempotent runs fn once per (caller, endpoint, Idempotency-Key): a retry
// gets the first answer and changes nothing; the same key with another
// request body is refused.
func (s *Server) idempotent(w http.ResponseWriter, r *http.Request, body []byte, fn func() (int, any, error)) error {
	return s.idempotentIf(w, r, body, nil, fn)
}

// idempotentIf is idempotent with a check on the stored answer: when stale
// says why it no longer holds, the request is answered afresh by fn rather
// than replayed (and the stored answer stays, for retries once it holds
// again).
//
// What is stored is no more than the client could be told again: the key
// is kept as its SHA-256, and the answer masked as the audit log is, since
// a key or a reason may hold what an agent sent.
func (s *Server) idempotentIf(w http.ResponseWriter, r *http.Request, body []byte, stale func(prev store.Replay) string, fn func() (int, any, error)) error {
	key := r.Header.Get("Idempotency-Key")
	if key == "" {
		status, v, err := fn()
		if err != nil {
			return err
		}
		writeJSON(w, status, v)
		return nil
	}
	if !idemKey.MatchString(key) {
		return errorf(errcode.BadRequest, "Idempotency-Key: use 1 to 128 letters, digits and . _ : -")
	}
	c := callerOf(r.Context())
	scope := c.name + " " + r.Method + " " + r.URL.Path
	sum := sha256.Sum256(body)
	digest := hex.EncodeToString(sum[:])
	ksum := sha256.Sum256([]byte(key))
	stored := hex.EncodeToString(ksum[:])

	unlock := s.lockKey(scope + "\x00" + stored)
	defer unlock()
	ctx := r.Context()
	prev, ok, err := s.opt.Idempotency.IdempotencyGet(ctx, scope, stored)
	if err != nil {
		return errcode.Wrap(errcode.Unavailable, "idempotency store unavailable", err)
	}
	if ok {
		if prev.Request != digest {
			return errorf(errcode.Unprocessable, "Idempotency-Key was already used with a different request")
		}
		why := ""
		if stale != nil {
			why = stale(prev)
		}
		if why == "" {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Idempotent-Replayed", "true")
			w.WriteHeader(prev.Status)
			_, _ = w.Write(prev.Body)
			return nil
		}
		s.log.Info("idempotent retry decided afresh", "scope", scope, "why", why)
		status, v, err := fn()
		if err != nil {
			return err
		}
		writeJSON(w, status, v)
		return nil
	}
	status, v, err := fn()
	if err != nil {
		return err
	}
	out, err := json.Marshal(v)
	if err != nil {
		return err
	}
	out = append(out, '\n')
	// Stored before answering, detached from the client: a retry after a
	// dropped connection must find it.
	keep := []byte(detect.Mask(string(out)))
	if !json.Valid(keep) {
		// Masking cut through JSON syntax: store nothing rather than the
		// answer in clear; a retry is then decided afresh.
		s.log.Error("idempotency record not kept: masking broke it", "scope", scope)
	} else {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := s.opt.Idempotency.IdempotencyPut(sctx, scope, stored, store.Replay{Request: digest, Status: status, Body: keep}, s.clock()); err != nil {
			s.log.Error("idempotency record lost", "scope", scope, "err", err)
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(out)
	return nil
}

func (s *Server) lockKey(k string) func() {
	s.keysMu.Lock()
	l := s.keys[k]
	if l == nil {
		l = &keyLock{}
		s.keys[k] = l
	}
	l.refs++
	s.keysMu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		s.keysMu.Lock()
		if l.refs--; l.refs == 0 {
			delete(s.keys, k)
		}
		s.keysMu.Unlock()
	}
}

// traced attaches the request's trace headers to the context, so that the
// audit entry carries them.
func traced(r *http.Request) context.Context {
	t := govern.Trace{TraceParent: r.Header.Get("Traceparent"), CorrelationID: r.Header.Get("X-Correlation-Id")}
	if len(t.TraceParent) > 128 {
		t.TraceParent = t.TraceParent[:128]
	}
	if len(t.CorrelationID) > 128 {
		t.CorrelationID = t.CorrelationID[:128]
	}
	return govern.WithTrace(r.Context(), t)
}

// withTraceHeaders has the decisions of a proxied call keep its trace
// headers in their audit entries, as /v1/decide's do. A request without
// them passes untouched.
func withTraceHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Traceparent") != "" || r.Header.Get("X-Correlation-Id") != "" {
			r = r.WithContext(traced(r))
		}
		h.ServeHTTP(w, r)
	})
}

func (s *Server) decide(w http.ResponseWriter, r *http.Request) error {
	body, err := s.readBody(w, r)
	if err != nil {
		return err
	}
	a, err := action.Decode(body)
	if err != nil {
		return errorf(errcode.BadRequest, err.Error())
	}
	if err := oneValue(body); err != nil {
		return err
	}
	if err := amountsInBounds("estimate.", []int64{a.Estimate.Tokens}, []string{"tokens"}, a.Estimate.CostUSD); err != nil {
		return err
	}
	if err := bindIdentity(callerOf(r.Context()), &a); err != nil {
		return err
	}
	// Refused here, before the engine logs a decision: an action with
	// nothing to decide on is bad input, not an attempt worth recording.
	if err := a.Validate(); err != nil {
		return errorf(errcode.BadRequest, err.Error())
	}
	stale := func(prev store.Replay) string { return s.staleAllow(r.Context(), &a, prev) }
	return s.idempotentIf(w, r, body, stale, func() (int, any, error) {
		d, err := s.opt.Engine.Decide(traced(r), a)
		if err != nil {
			return 0, nil, errorf(errcode.BadRequest, err.Error())
		}
		w.Header().Set(HeaderDecision, d.ID.String())
		return http.StatusOK, d, nil
	})
}

// logged is a decision as its audit record keeps it.
type logged struct {
	Decision action.Decision `json:"decision"`
	Action   action.Action   `json:"action"`
	// SettledBy names the enforcement point that records the decision's
	// outcome itself.
	SettledBy string `json:"settled_by"`
}

// loggedDecision finds a decision and the action it answered in the audit log.
func (s *Server) loggedDecision(ctx context.Context, id string) (logged, error) {
	if _, err := action.ParseID(id); err != nil {
		return logged{}, errorf(errcode.BadRequest, err.Error())
	}
	e, err := s.decisionEntry(ctx, id)
	if errors.Is(err, store.ErrNoDecision) {
		return logged{}, errorf(errcode.NotFound, "no decision "+id)
	}
	if err != nil {
		return logged{}, err
	}
	var rec logged
	if err := json.Unmarshal(e.Record, &rec); err != nil {
		return logged{}, fmt.Errorf("decode decision %s: %w", id, err)
	}
	if rec.Decision.ID.String() != id {
		return logged{}, fmt.Errorf("decision %s: the entry found holds %s", id, rec.Decision.ID)
	}
	idx := e.Index
	rec.Decision.AuditIndex = &idx
	return rec, nil
}

// decisionEntry finds a decision's audit entry, in whichever replica's log
// holds it, and checks that it is the canonical entry of a decision.
func (s *Server) decisionEntry(ctx context.Context, id string) (audit.Entry, error) {
	ref, err := s.opt.Decisions.FindDecision(ctx, id)
	if err != nil {
		return audit.Entry{}, err
	}
	e, err := audit.DecodeEntry(ref.Data)
	if err != nil {
		return audit.Entry{}, fmt.Errorf("decision %s: entry %d: %w", id, ref.Index, err)
	}
	if e.Index != ref.Index || e.Kind != "decision" {
		return audit.Entry{}, fmt.Errorf("decision %s: entry %d is a %s entry stored at index %d", id, e.Index, e.Kind, ref.Index)
	}
	return e, nil
}

// ownDecision returns a decision the caller may see: an agent sees only its
// own, and another agent's id answers 404, not 403, so that ids of others
// are not confirmed to exist.
func (s *Server) ownDecision(r *http.Request) (logged, error) {
	id := r.PathValue("id")
	rec, err := s.loggedDecision(r.Context(), id)
	if err != nil {
		return rec, err
	}
	if c := callerOf(r.Context()); c.role == config.AgentRole && rec.Action.Agent.ID != c.agent.ID {
		return logged{}, errorf(errcode.NotFound, "no decision "+id)
	}
	return rec, nil
}

func (s *Server) getDecision(w http.ResponseWriter, r *http.Request) error {
	rec, err := s.ownDecision(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, rec.Decision)
	return nil
}

func (s *Server) outcome(w http.ResponseWriter, r *http.Request) error {
	body, err := s.readBody(w, r)
	if err != nil {
		return err
	}
	var o action.Outcome
	if err := decodeStrict(body, &o); err != nil {
		return err
	}
	if err := o.Validate(); err != nil {
		return errorf(errcode.BadRequest, err.Error())
	}
	if err := outcomeInBounds(&o); err != nil {
		return err
	}
	rec, err := s.ownDecision(r)
	if err != nil {
		return err
	}
	d := rec.Decision
	if d.Effect != action.Allow {
		return errorf(errcode.Conflict, fmt.Sprintf("decision %s was %s: there is no outcome to record", d.ID, d.Effect))
	}
	// The enforcement point that made the call measures and records what it
	// cost; an agent's word, posted first, would cancel that accounting.
	if rec.SettledBy != "" {
		return errorf(errcode.Forbidden, fmt.Sprintf("decision %s is settled by its enforcement point (%s), which records its outcome itself", d.ID, rec.SettledBy))
	}
	return s.idempotent(w, r, body, func() (int, any, error) {
		if err := s.opt.Engine.Outcome(govern.WithOutcomeAgent(traced(r), rec.Action.Agent.ID), d.ID, o); err != nil {
			switch {
			case errors.Is(err, govern.ErrOutcomeRecorded):
				return 0, nil, errorf(errcode.Conflict, fmt.Sprintf("decision %s: %s", d.ID, govern.ErrOutcomeRecorded))
			case errors.Is(err, govern.ErrNotAudited):
				return 0, nil, errcode.Wrap(errcode.Unavailable, "the outcome could not be written to the audit log, so it was not recorded", err)
			}
			return 0, nil, err
		}
		if rec.Action.Model != "" {
			// What the agent reports of a model call it made directly.
			s.metrics.ReportedUsage(rec.Action.Model, rec.Action.Agent.ID, &o)
		}
		return http.StatusOK, map[string]any{"decision": d.ID, "recorded": true}, nil
	})
}

// amountsInBounds refuses token counts or a cost beyond what one call may
// reserve or report (budget.MaxCallTokens, budget.MaxCallCostUSD), naming
// the field (under prefix): an agent's number beyond them is a mistake or
// an attack on the budgets' sums, and changes nothing.
func amountsInBounds(prefix string, tokens []int64, names []string, cost float64) error {
	for i, v := range tokens {
		if v > budget.MaxCallTokens {
			return errorf(errcode.BadRequest, fmt.Sprintf("%s%s: at most %d", prefix, names[i], int64(budget.MaxCallTokens)))
		}
	}
	if cost > budget.MaxCallCostUSD {
		return errorf(errcode.BadRequest, fmt.Sprintf("%scost_usd: at most %d", prefix, budget.MaxCallCostUSD))
	}
	return nil
}

func outcomeInBounds(o *action.Outcome) error {
	return amountsInBounds("", []int64{o.Tokens, o.InputTokens, o.OutputTokens},
		[]string{"tokens", "input_tokens", "output_tokens"}, o.CostUSD)
}
