package storetest

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/identity"
)

func testAgent(t *testing.T, id string) identity.Agent {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	a := identity.Agent{ID: id, Type: "assistant", Labels: map[string]string{"env": "prod"},
		Principal: action.Principal{User: "alice"}, Ring: 2, Owner: "ops",
		Keys:      []identity.Key{{KID: "k1", PublicKey: identity.EncodePublicKey(pub)}},
		CreatedAt: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	if err := a.Validate(); err != nil {
		t.Fatal(err)
	}
	return a
}

// The registry keeps what was registered; an id is taken once, revoked or
// not; revoking keeps the first time.
func testAgentRegistry(t *testing.T, b Backend) {
	st := open(t, b)
	a := testAgent(t, "researcher-1")
	if err := st.CreateAgent(bg, a); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateAgent(bg, testAgent(t, "researcher-1")); !errors.Is(err, identity.ErrExists) {
		t.Fatalf("registering a taken id: %v, want ErrExists", err)
	}
	coder := testAgent(t, "coder")
	coder.SPIFFEID = "spiffe://example.org/coder"
	if err := st.CreateAgent(bg, coder); err != nil {
		t.Fatal(err)
	}
	twin := testAgent(t, "twin")
	twin.SPIFFEID = coder.SPIFFEID
	if err := st.CreateAgent(bg, twin); !errors.Is(err, identity.ErrExists) {
		t.Fatalf("a second agent with coder's SPIFFE ID: %v, want ErrExists", err)
	}
	all, err := st.ListAgents(bg)
	if err != nil || len(all) != 2 || all[0].ID != "coder" || all[1].ID != "researcher-1" {
		t.Fatalf("list: %+v, %v", all, err)
	}
	got := all[1]
	if got.Keys[0] != a.Keys[0] || got.Principal != a.Principal || got.Ring != 2 || got.Labels["env"] != "prod" || !got.CreatedAt.Equal(a.CreatedAt) || got.Revoked() {
		t.Fatalf("round trip: got %+v, want %+v", got, a)
	}
	at := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	r, err := st.RevokeAgent(bg, "researcher-1", at)
	if err != nil || !r.Revoked() || !r.RevokedAt.Equal(at) {
		t.Fatalf("revoke: %+v, %v", r, err)
	}
	r, err = st.RevokeAgent(bg, "researcher-1", at.Add(time.Hour))
	if err != nil || !r.RevokedAt.Equal(at) {
		t.Fatalf("revoking again moved the time: %+v, %v", r, err)
	}
	if _, err := st.RevokeAgent(bg, "nobody", at); !errors.Is(err, identity.ErrNotFound) {
		t.Fatalf("revoking an unknown agent: %v", err)
	}
	if err := st.CreateAgent(bg, testAgent(t, "researcher-1")); !errors.Is(err, identity.ErrExists) {
		t.Fatalf("a revoked id was registered again: %v", err)
	}
}

// A JWT id is taken once, however many take it at the same time; once
// expired it may be forgotten.
func testJTIUsedOnce(t *testing.T, b Backend) {
	st := open(t, b)
	now := time.Date(2026, 3, 1, 12, 0, 0, 1, time.UTC)
	exp := now.Add(5 * time.Minute)
	var fresh atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			ok, err := st.UseJTI(bg, "agent-a", "j1", exp, now)
			if err != nil {
				t.Error(err)
			}
			if ok {
				fresh.Add(1)
			}
		})
	}
	wg.Wait()
	if fresh.Load() != 1 {
		t.Fatalf("%d of 8 took jti j1, want 1", fresh.Load())
	}
	if ok, err := st.UseJTI(bg, "agent-b", "j1", exp, now); err != nil || !ok {
		t.Fatalf("another issuer's j1: %v %v", ok, err)
	}
	if ok, err := st.UseJTI(bg, "agent-a", "j1", exp, now.Add(time.Minute)); err != nil || ok {
		t.Fatalf("a replay before expiry was fresh: %v %v", ok, err)
	}
}

// A delegation is found by its token's hash alone.
func testDelegations(t *testing.T, b Backend) {
	st := open(t, b)
	exp := time.Date(2026, 3, 1, 13, 0, 0, 0, time.UTC)
	d := identity.Delegation{Principal: action.Principal{User: "alice"}, Chain: []action.Delegation{
		{ID: "dlg_1", Agent: "planner", Delegate: "coder", Tools: []string{"fs/*"}, Points: []action.Point{action.PreToolCall}, ExpiresAt: exp, MaxDepth: 1},
	}}
	if err := st.PutDelegation(bg, "aa", d); err != nil {
		t.Fatal(err)
	}
	got, err := st.GetDelegation(bg, "aa")
	if err != nil || len(got.Chain) != 1 || got.Principal != d.Principal || got.Chain[0].Tools[0] != "fs/*" || !got.Chain[0].ExpiresAt.Equal(exp) || got.Chain[0].Points[0] != action.PreToolCall {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	if _, err := st.GetDelegation(bg, "bb"); !errors.Is(err, identity.ErrNotFound) {
		t.Fatalf("unknown hash: %v", err)
	}
}

// Replicas share the registry: one's revocation is the other's.
func testReplicasShareRegistry(t *testing.T, b Backend) {
	if !b.Replicas {
		t.Skip("one process per database")
	}
	opener := b.Fresh(t)
	st1 := opener(t, "r1", NewKey(t, "agentgov-test/r1").Text)
	st2 := opener(t, "r2", NewKey(t, "agentgov-test/r2").Text)
	if err := st1.CreateAgent(bg, testAgent(t, "a1")); err != nil {
		t.Fatal(err)
	}
	if _, err := st2.RevokeAgent(bg, "a1", time.Now()); err != nil {
		t.Fatal(err)
	}
	all, err := st1.ListAgents(bg)
	if err != nil || len(all) != 1 || !all[0].Revoked() {
		t.Fatalf("r1 after r2 revoked: %+v, %v", all, err)
	}
	now := time.Now()
	if ok, _ := st1.UseJTI(bg, "a1", "j", now.Add(time.Minute), now); !ok {
		t.Fatal("first use refused")
	}
	if ok, _ := st2.UseJTI(bg, "a1", "j", now.Add(time.Minute), now); ok {
		t.Fatal("a JWT id used on r1 was fresh on r2")
	}
}
