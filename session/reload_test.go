package session_test

import (
	"context"
	"sort"
	"sync"
	"testing"

	"github.com/agentgov/agentgov/session"
	"github.com/agentgov/agentgov/store/sqlite"
)

// Without a change feed, Reload drops what is cached: a change another
// process made is read from the store at the next check.
func TestReloadWithoutFeedReadsSessionsAgain(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	a := session.New(openDB(t, dir), clock)
	b := session.New(openDB(t, dir), clock)
	reach(t, a, "s-1", session.Active)
	if ok, _, _ := b.Check(ctx, "s-1", "agent-1"); !ok {
		t.Fatal("b refuses an active session")
	}
	if _, err := a.Transition(ctx, "agent-1", "s-1", session.Paused, ops); err != nil {
		t.Fatal(err)
	}
	// b trusts its cache until told.
	if ok, _, _ := b.Check(ctx, "s-1", "agent-1"); !ok {
		t.Fatal("b read the store without being told to")
	}
	if err := b.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if ok, reason, _ := b.Check(ctx, "s-1", "agent-1"); ok || reason != "session s-1 is paused" {
		t.Fatalf("b after Reload: %v %q", ok, reason)
	}
}

// versioned is the real store with the change feed a shared store offers:
// each write through it takes the next version. get, when set, answers
// GetSession in its place (once), to hand back a read made earlier.
type versioned struct {
	*sqlite.DB
	mu       sync.Mutex
	version  uint64
	versions map[[2]string]uint64
	get      func() session.Session
}

func newVersioned(t *testing.T) *versioned {
	return &versioned{DB: openDB(t, t.TempDir()), versions: map[[2]string]uint64{}}
}

func (v *versioned) bump(se *session.Session) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.version++
	v.versions[[2]string{se.AgentID, se.ID}] = v.version
	se.Version = v.version
}

func (v *versioned) stamp(se session.Session) session.Session {
	v.mu.Lock()
	defer v.mu.Unlock()
	se.Version = v.versions[[2]string{se.AgentID, se.ID}]
	return se
}

func (v *versioned) InsertSession(ctx context.Context, s session.Session) (session.Session, bool, error) {
	got, inserted, err := v.DB.InsertSession(ctx, s)
	if inserted {
		v.bump(&got)
	}
	return v.stamp(got), inserted, err
}

func (v *versioned) UpdateSession(ctx context.Context, from, to session.Session) (bool, error) {
	changed, err := v.DB.UpdateSession(ctx, from, to)
	if changed {
		v.bump(&to)
	}
	return changed, err
}

func (v *versioned) GetSession(ctx context.Context, agentID, id string) (session.Session, error) {
	if get := v.get; get != nil {
		v.get = nil
		return get(), nil
	}
	got, err := v.DB.GetSession(ctx, agentID, id)
	return v.stamp(got), err
}

func (v *versioned) SessionVersion(context.Context) (uint64, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.version, nil
}

func (v *versioned) SessionsChangedAfter(ctx context.Context, after uint64, limit int) ([]session.Session, error) {
	v.mu.Lock()
	var keys [][2]string
	for k, ver := range v.versions {
		if ver > after {
			keys = append(keys, k)
		}
	}
	v.mu.Unlock()
	var out []session.Session
	for _, k := range keys {
		got, err := v.DB.GetSession(ctx, k[0], k[1])
		if err != nil {
			return nil, err
		}
		out = append(out, v.stamp(got))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// With a change feed, Reload applies the changes after the last it saw to
// the sessions cached, and leaves the others to be read when checked.
func TestReloadAppliesTheFeed(t *testing.T) {
	ctx := context.Background()
	st := newVersioned(t)
	a := session.New(st, clock) // the other process
	b := session.New(st, clock)
	if err := b.Reload(ctx); err != nil { // notes where the feed stands
		t.Fatal(err)
	}
	reach(t, a, "s-1", session.Active)
	reach(t, a, "s-2", session.Active)
	if ok, _, _ := b.Check(ctx, "s-1", "agent-1"); !ok {
		t.Fatal("b refuses s-1")
	}
	if _, err := a.Transition(ctx, "agent-1", "s-1", session.Paused, ops); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Transition(ctx, "agent-1", "s-2", session.Closed, ops); err != nil {
		t.Fatal(err)
	}
	if err := b.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"s-1", "s-2"} {
		if ok, _, err := b.Check(ctx, id, "agent-1"); ok || err != nil {
			t.Fatalf("b after Reload: %s ok=%v %v", id, ok, err)
		}
	}
}

// A session read from the store while Reload passes over its change is
// not cached: what was read may be older than the change.
func TestReadRacingReloadIsNotCached(t *testing.T) {
	ctx := context.Background()
	st := newVersioned(t)
	a := session.New(st, clock)
	b := session.New(st, clock)
	if err := b.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	reach(t, a, "s-1", session.Active)

	// b's read of s-1 is held until the session is paused and b has
	// applied that change, then returns what it read before.
	reading, release := make(chan struct{}), make(chan struct{})
	st.get = func() session.Session {
		got, _ := st.GetSession(ctx, "agent-1", "s-1")
		close(reading)
		<-release
		return got
	}
	var ok bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		ok, _, _ = b.Check(ctx, "s-1", "agent-1")
	}()
	<-reading
	if _, err := a.Transition(ctx, "agent-1", "s-1", session.Paused, ops); err != nil {
		t.Fatal(err)
	}
	if err := b.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	close(release)
	<-done
	if !ok {
		t.Fatal("the racing check did not answer with what it read (active)")
	}
	if ok, reason, _ := b.Check(ctx, "s-1", "agent-1"); ok {
		t.Fatalf("the stale read was cached: ok after the pause (%q)", reason)
	}
}
