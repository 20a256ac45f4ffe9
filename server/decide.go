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
	"net/http"
	"regexp"
	"time"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/config"
	"github.com/agentgov/agentgov/govern"
	"github.com/agentgov/agentgov/store/sqlite"
)

// readBody reads a size-limited body.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.maxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, errorf(codeTooLarge, fmt.Sprintf("request body larger than %d bytes", s.maxBody))
		}
		return nil, errorf(codeBadRequest, "could not read the request body: "+err.Error())
	}
	return b, nil
}

// decodeStrict decodes one JSON object, refusing unknown fields.
func decodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return errorf(codeBadRequest, fmt.Sprintf("%s: cannot be a JSON %s", te.Field, te.Value))
		}
		return errorf(codeBadRequest, "malformed JSON: "+err.Error())
	}
	if dec.More() {
		return errorf(codeBadRequest, "unexpected data after the JSON object")
	}
	return nil
}

// bindIdentity makes the credential the only source of who acts. A body
// that names another agent or principal is refused rather than corrected,
// so that a confused or malicious caller learns it at once.
func bindIdentity(c *caller, a *action.Action) error {
	if c.role != config.AgentRole {
		// Admins decide on behalf of any agent (what-if checks, tests).
		if a.Agent.ID == "" {
			return errorf(codeBadRequest, "agent.id: an admin deciding must name the agent")
		}
		return nil
	}
	if a.Agent.ID != "" && a.Agent.ID != c.agent.ID {
		return errorf(codeForbidden, fmt.Sprintf("agent.id: this token acts as %q and cannot claim %q", c.agent.ID, a.Agent.ID))
	}
	if a.Agent.Type != "" && a.Agent.Type != c.agent.Type {
		return errorf(codeForbidden, "agent.type comes from the credential and differs from it")
	}
	if len(a.Agent.Labels) > 0 && !sameLabels(a.Agent.Labels, c.agent.Labels) {
		return errorf(codeForbidden, "agent.labels come from the credential and differ from it")
	}
	if a.Principal != (action.Principal{}) && a.Principal != c.principal {
		return errorf(codeForbidden, "principal comes from the credential and differs from it")
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
		return errorf(codeBadRequest, "Idempotency-Key: use 1 to 128 letters, digits and . _ : -")
	}
	c := callerOf(r.Context())
	scope := c.name + " " + r.Method + " " + r.URL.Path
	sum := sha256.Sum256(body)
	digest := hex.EncodeToString(sum[:])

	unlock := s.lockKey(scope + "\x00" + key)
	defer unlock()
	ctx := r.Context()
	prev, ok, err := s.opt.DB.IdempotencyGet(ctx, scope, key)
	if err != nil {
		return &apiError{code: codeUnavailable, msg: "idempotency store unavailable", cause: err}
	}
	if ok {
		if prev.Request != digest {
			return errorf(codeUnprocessable, "Idempotency-Key was already used with a different request")
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Idempotent-Replayed", "true")
		w.WriteHeader(prev.Status)
		_, _ = w.Write(prev.Body)
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
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := s.opt.DB.IdempotencyPut(sctx, scope, key, sqlite.Replay{Request: digest, Status: status, Body: out}, s.clock()); err != nil {
		s.log.Error("idempotency record lost", "key", key, "err", err)
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

func (s *Server) decide(w http.ResponseWriter, r *http.Request) error {
	body, err := s.readBody(w, r)
	if err != nil {
		return err
	}
	a, err := action.Decode(body)
	if err != nil {
		return errorf(codeBadRequest, err.Error())
	}
	if err := bindIdentity(callerOf(r.Context()), &a); err != nil {
		return err
	}
	return s.idempotent(w, r, body, func() (int, any, error) {
		start := time.Now()
		d, err := s.opt.Engine.Decide(traced(r), a)
		s.metrics.observe(&d, time.Since(start))
		if err != nil {
			return 0, nil, errorf(codeBadRequest, err.Error())
		}
		return http.StatusOK, d, nil
	})
}

// loggedDecision finds a decision and the action it answered in the audit log.
func (s *Server) loggedDecision(ctx context.Context, id string) (action.Decision, action.Action, error) {
	if _, err := action.ParseID(id); err != nil {
		return action.Decision{}, action.Action{}, errorf(codeBadRequest, err.Error())
	}
	idx, err := s.opt.DB.DecisionEntry(ctx, id)
	if errors.Is(err, sqlite.ErrNoDecision) {
		return action.Decision{}, action.Action{}, errorf(codeNotFound, "no decision "+id)
	}
	if err != nil {
		return action.Decision{}, action.Action{}, err
	}
	entries, err := s.opt.Audit.Entries(ctx, int64(idx)-1, 1)
	if err != nil || len(entries) != 1 {
		return action.Decision{}, action.Action{}, fmt.Errorf("read decision %s at %d: %v", id, idx, err)
	}
	var rec struct {
		Decision action.Decision `json:"decision"`
		Action   action.Action   `json:"action"`
	}
	if err := json.Unmarshal(entries[0].Record, &rec); err != nil {
		return action.Decision{}, action.Action{}, fmt.Errorf("decode decision %s: %w", id, err)
	}
	rec.Decision.AuditIndex = &idx
	return rec.Decision, rec.Action, nil
}

// ownDecision returns a decision the caller may see: an agent sees only its
// own, and another agent's id answers 404, not 403, so that ids of others
// are not confirmed to exist.
func (s *Server) ownDecision(r *http.Request) (action.Decision, action.Action, error) {
	id := r.PathValue("id")
	d, a, err := s.loggedDecision(r.Context(), id)
	if err != nil {
		return d, a, err
	}
	if c := callerOf(r.Context()); c.role == config.AgentRole && a.Agent.ID != c.agent.ID {
		return action.Decision{}, action.Action{}, errorf(codeNotFound, "no decision "+id)
	}
	return d, a, nil
}

func (s *Server) getDecision(w http.ResponseWriter, r *http.Request) error {
	d, _, err := s.ownDecision(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, d)
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
		return errorf(codeBadRequest, err.Error())
	}
	d, _, err := s.ownDecision(r)
	if err != nil {
		return err
	}
	if d.Effect != action.Allow {
		return errorf(codeConflict, fmt.Sprintf("decision %s was %s: there is no outcome to record", d.ID, d.Effect))
	}
	return s.idempotent(w, r, body, func() (int, any, error) {
		if err := s.opt.Engine.Outcome(traced(r), d.ID, o); err != nil {
			return 0, nil, err
		}
		s.metrics.outcome(o)
		return http.StatusOK, map[string]any{"decision": d.ID, "recorded": true}, nil
	})
}
