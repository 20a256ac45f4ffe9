package server_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/agentgov/agentgov/config"
	"github.com/agentgov/agentgov/govern"
	"github.com/agentgov/agentgov/policy"
	"github.com/agentgov/agentgov/server"
	agstore "github.com/agentgov/agentgov/store"
)

type announcer struct {
	topics []agstore.Topic
	err    error
}

func (a *announcer) Announce(_ context.Context, t agstore.Topic) error {
	a.topics = append(a.topics, t)
	return a.err
}

// A reload is announced to the other replicas; one that cannot be says
// that it holds here only. Refresh, for a reload another replica made,
// announces nothing and loads nothing when the set is the one in force.
func TestReloadIsAnnouncedAndRefreshIsNot(t *testing.T) {
	e := start(t)
	src := testPolicy
	load := func() (*policy.Set, error) { return policy.Compile(mustDocs(t, src)) }
	peers := &announcer{}
	cfg := &config.Config{}
	cfg.Fill()
	srv, err := server.New(server.Options{Config: cfg, Engine: e.eng, Audit: e.log, Idempotency: e.db, Decisions: e.db,
		Peers: peers, LoadPolicy: load, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	before := e.eng.Policy().Digest()
	if err := srv.Refresh(ctx); err != nil || e.eng.Policy().Digest() != before || len(peers.topics) != 0 {
		t.Fatalf("refresh of the same set: %v, announced %v", err, peers.topics)
	}
	src = strings.Replace(testPolicy, "default: deny", "default: allow", 1)
	if _, err := srv.Reload(ctx); err != nil || len(peers.topics) != 1 || peers.topics[0] != agstore.Policy {
		t.Fatalf("reload: %v, announced %v", err, peers.topics)
	}
	peers.err = errors.New("database gone")
	src = testPolicy
	_, err = srv.Reload(ctx)
	if err == nil || !strings.Contains(err.Error(), "other replicas could not be told") {
		t.Fatalf("reload that cannot be announced: %v", err)
	}
	if e.eng.Policy().Digest() != before {
		t.Fatal("the set reloaded here is not in force")
	}
	src = strings.Replace(testPolicy, "default: deny", "default: allow", 1)
	if err := srv.Refresh(ctx); err != nil || e.eng.Policy().Digest() == before || len(peers.topics) != 2 {
		t.Fatalf("refresh of a new set: %v, announced %v", err, peers.topics)
	}
}

// A replica that hears of another's reload reads its shadow set again
// too: a new shadow is loaded even when the live set is unchanged, and
// one identical to the shadow in force is not loaded again.
func TestRefreshReloadsTheShadowSet(t *testing.T) {
	e := start(t)
	live, err := policy.Compile(mustDocs(t, testPolicy))
	if err != nil {
		t.Fatal(err)
	}
	shadowSrc := testPolicy
	loadShadow := func() (*policy.Set, error) {
		d, err := policy.Parse("shadow.yaml", []byte(shadowSrc))
		if err != nil {
			return nil, err
		}
		return policy.Compile([]*policy.Document{d})
	}
	first, _ := loadShadow()
	eng := govern.New(live, govern.WithAudit(e.log), govern.WithShadow(first, nil))
	cfg := &config.Config{}
	cfg.Fill()
	srv, err := server.New(server.Options{Config: cfg, Engine: eng, Audit: e.log, Idempotency: e.db, Decisions: e.db,
		LoadPolicy: func() (*policy.Set, error) { return live, nil }, LoadShadow: loadShadow, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := srv.Refresh(ctx); err != nil || eng.ShadowPolicy() != first {
		t.Fatalf("refresh with nothing changed: %v; the shadow was loaded again", err)
	}
	shadowSrc = strings.Replace(testPolicy, "default: deny", "default: allow", 1)
	if err := srv.Refresh(ctx); err != nil || eng.ShadowPolicy().Digest() == first.Digest() || eng.Policy() != live {
		t.Fatalf("refresh with a new shadow: %v, shadow %s", err, eng.ShadowPolicy().Digest())
	}
	shadowSrc = "version: agentgov/v1\nname: broken\ndefault: sometimes\n"
	if err := srv.Refresh(ctx); err == nil || !strings.Contains(err.Error(), "shadow") {
		t.Fatalf("refresh with a broken shadow: %v", err)
	}
}
