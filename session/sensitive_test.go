package session_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/agentgov/agentgov/session"
)

// Session ids are keys: they are stored in clear in the sessions table (and
// in budget counters kept per session), so they cannot be masked the way
// free text is. An agent that names a session after a credential is refused,
// and the refusal does not repeat it.
func TestSessionIDsHoldingSecretsAreRefused(t *testing.T) {
	const token = "ghp_u8jzPde0IgxLd6GncfBAepfJBd0Kh8oOOL8d"
	s := newSessions(t)
	ctx := context.Background()
	for _, id := range []string{token, "run-" + token} {
		_, err := s.Create(ctx, "agent-1", id, session.Actor{Name: "agent-1"})
		if !errors.Is(err, session.ErrInvalid) || strings.Contains(err.Error(), token) || !strings.Contains(err.Error(), "github_token") {
			t.Errorf("Create(%q) = %v; want ErrInvalid naming the rule, not the token", id, err)
		}
		ok, reason, err := s.Touch(ctx, id, "agent-1")
		if ok || err != nil || strings.Contains(reason, token) || !strings.Contains(reason, "github_token") {
			t.Errorf("Touch(%q) = %v, %q, %v; want a refusal naming the rule, not the token", id, ok, reason, err)
		}
		if _, err := s.Get(ctx, "agent-1", id); !errors.Is(err, session.ErrInvalid) {
			t.Errorf("Get(%q) = %v; the session must not exist", id, err)
		}
	}
}

// The variant: personal data rather than a credential, and an ordinary id
// still works.
func TestSessionIDsHoldingPersonalDataAreRefused(t *testing.T) {
	s := newSessions(t)
	ctx := context.Background()
	if _, err := s.Create(ctx, "agent-1", "jane.doe@example.com", session.Actor{Name: "agent-1"}); !errors.Is(err, session.ErrInvalid) || strings.Contains(err.Error(), "jane.doe") {
		t.Errorf("an e-mail address as session id: %v", err)
	}
	if ok, reason, err := s.Touch(ctx, "card:4111111111111111", "agent-1"); ok || err != nil || strings.Contains(reason, "4111111111111111") {
		t.Errorf("a card number in a session id: %v %q %v", ok, reason, err)
	}
	if _, err := s.Create(ctx, "agent-1", "conversation-2026-03-01-a7", session.Actor{Name: "agent-1"}); err != nil {
		t.Errorf("an ordinary id was refused: %v", err)
	}
}
