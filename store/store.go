// Package store holds what every backend of agentgov's state shares and
// what consumers above the backends name without importing one: the
// answers kept for idempotent requests, a decision found in the audit log,
// and the topics a backend shared by several processes announces changes
// on. Each concept's storage interface is declared by the package that
// consumes it (audit.Store, budget.Store, server.Idempotency, ...);
// store/sqlite and store/postgres implement them.
package store

import (
	"context"
	"errors"
	"fmt"
	"regexp"
)

// Replay is a stored answer to an idempotent request.
type Replay struct {
	Request string // digest of the request it answered
	Status  int
	Body    []byte
}

// ErrNoDecision is returned for a decision id that no audit log holds.
var ErrNoDecision = errors.New("decision not found")

// Decision is a decision's entry, found by its id in whichever audit log
// holds it.
type Decision struct {
	// Log names the log: the replica that decided, "" for the one log of a
	// single-process store.
	Log string
	// Index is the entry's position in that log.
	Index uint64
	// Data is the entry's stored bytes, as hashed into the log.
	Data []byte
}

// Topic names a kind of state that processes sharing one store keep a copy
// of in memory, and must read again when another process changes it.
type Topic string

const (
	// Kill is the kill switches (engaged and released).
	Kill Topic = "kill"
	// Budgets is the budget configs (counters are never copied).
	Budgets Topic = "budget"
	// Sessions is the sessions' states.
	Sessions Topic = "session"
	// Policy is the policy set in force: announced by the process that
	// reloaded it, so that every other one reloads its own.
	Policy Topic = "policy"
	// Trust is the agents' trust scores and ring elevations.
	Trust Topic = "trust"
	// Agents is the agent registry (registrations and revocations).
	Agents Topic = "agent"
)

// Topics lists every topic, in the order their handlers run.
var Topics = []Topic{Kill, Sessions, Budgets, Policy, Trust, Agents}

// Watcher tells a process of the changes other processes sharing its store
// made. A store of one process (SQLite) has none; store/postgres is one.
type Watcher interface {
	// Watch registers fn to be called, from Run, whenever topic may have
	// changed; fn reads the state again. Register before Run. A failing fn
	// is called again at the next round until it succeeds.
	Watch(topic Topic, fn func(ctx context.Context) error)
	// Announce tells the other processes that topic changed, for changes
	// the store does not see itself (a policy reload). Changes written
	// through the store are announced by the store, in their transaction.
	Announce(ctx context.Context, topic Topic) error
	// Run delivers changes until ctx ends.
	Run(ctx context.Context) error
}

// replicaID is what a replica id may be: it names the replica's audit log
// in reports and in the database.
var replicaID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$`)

// ValidReplica reports why id cannot name a replica, or nil.
func ValidReplica(id string) error {
	if !replicaID.MatchString(id) {
		return fmt.Errorf("replica id %q: use 1 to 128 letters, digits and . _ : - (starting with a letter or digit)", id)
	}
	return nil
}
