package identity

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Registry is the agent registry: the store's records, with a copy in
// memory that every credential check reads. The copy is read again when
// the store announces a change (Reload, wired to the store's change feed
// where several replicas share it), and changed at once by this process's
// own writes, so that a revocation is in force on the next request here and
// as soon as the other replicas hear of it.
type Registry struct {
	store Store
	clock func() time.Time
	mu    sync.Mutex // serialises reloads and writes
	snap  atomic.Pointer[snapshot]
}

type snapshot struct {
	byID     map[string]*Agent
	bySPIFFE map[string]*Agent
}

// NewRegistry loads the registry from st.
func NewRegistry(ctx context.Context, st Store, clock func() time.Time) (*Registry, error) {
	if clock == nil {
		clock = time.Now
	}
	r := &Registry{store: st, clock: clock}
	if err := r.Reload(ctx); err != nil {
		return nil, err
	}
	return r, nil
}

// Reload reads the registry from the store again.
func (r *Registry) Reload(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	all, err := r.store.ListAgents(ctx)
	if err != nil {
		return fmt.Errorf("load agent registry: %w", err)
	}
	s := &snapshot{byID: make(map[string]*Agent, len(all)), bySPIFFE: map[string]*Agent{}}
	for i := range all {
		a := &all[i]
		s.byID[a.ID] = a
		if a.SPIFFEID != "" {
			s.bySPIFFE[a.SPIFFEID] = a
		}
	}
	r.snap.Store(s)
	return nil
}

// Get returns the agent id, revoked or not.
func (r *Registry) Get(id string) (Agent, bool) {
	a, ok := r.snap.Load().byID[id]
	if !ok {
		return Agent{}, false
	}
	return *a, true
}

// RevokedAt says whether agent id is registered and revoked, and when.
func (r *Registry) RevokedAt(id string) (time.Time, bool) {
	if a := r.get(id); a != nil && a.RevokedAt != nil {
		return *a.RevokedAt, true
	}
	return time.Time{}, false
}

func (r *Registry) get(id string) *Agent { return r.snap.Load().byID[id] }

// Ring is the ring agent id is registered in, read from memory on every
// decision. A revoked agent is in the least privileged ring: wherever its
// id still turns up, it gets the least. ok is false for an agent the
// registry does not know.
func (r *Registry) Ring(id string) (ring int, ok bool) {
	a := r.get(id)
	switch {
	case a == nil:
		return 0, false
	case a.Revoked():
		return MaxRing, true
	}
	return a.Ring, true
}

func (r *Registry) bySPIFFE(id string) *Agent { return r.snap.Load().bySPIFFE[id] }

// List returns every agent by id.
func (r *Registry) List() []Agent {
	s := r.snap.Load()
	out := make([]Agent, 0, len(s.byID))
	for _, a := range s.byID {
		out = append(out, *a)
	}
	slices.SortFunc(out, func(a, b Agent) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// Register validates and stores a new agent.
func (r *Registry) Register(ctx context.Context, a Agent, owner string) (Agent, error) {
	a.Owner = owner
	a.CreatedAt = r.clock().UTC()
	a.RevokedAt = nil
	if err := a.Validate(); err != nil {
		return Agent{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if a.SPIFFEID != "" {
		if o := r.bySPIFFE(a.SPIFFEID); o != nil && o.ID != a.ID {
			return Agent{}, fmt.Errorf("%w: spiffe_id %s already acts as agent %s", ErrExists, a.SPIFFEID, o.ID)
		}
	}
	if err := r.store.CreateAgent(ctx, a); err != nil {
		return Agent{}, err
	}
	r.put(&a)
	return a, nil
}

// Revoke revokes an agent: every credential of it is refused from the
// next request on.
func (r *Registry) Revoke(ctx context.Context, id string) (Agent, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	a, err := r.store.RevokeAgent(ctx, id, r.clock().UTC())
	if err != nil {
		return Agent{}, err
	}
	r.put(&a)
	return a, nil
}

// put installs a in a new snapshot; r.mu is held.
func (r *Registry) put(a *Agent) {
	old := r.snap.Load()
	s := &snapshot{byID: make(map[string]*Agent, len(old.byID)+1), bySPIFFE: make(map[string]*Agent, len(old.bySPIFFE)+1)}
	for k, v := range old.byID {
		s.byID[k] = v
	}
	for k, v := range old.bySPIFFE {
		s.bySPIFFE[k] = v
	}
	s.byID[a.ID] = a
	if a.SPIFFEID != "" {
		s.bySPIFFE[a.SPIFFEID] = a
	}
	r.snap.Store(s)
}
