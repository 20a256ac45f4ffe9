package budget

import (
	"context"
	"errors"
	"time"
)

// Store keeps budget configs, counters and reservations. Counters and
// reservations change only inside UpdateBudgets, whose transaction is what makes a
// check-and-reserve atomic: the backend must serialise these transactions on the same
// data across every process that shares it (SQLite: BEGIN IMMEDIATE;
// PostgreSQL: SERIALIZABLE with retries, or row locks).
type Store interface {
	PutBudget(ctx context.Context, c Config) error
	// DeleteBudget removes the config and its counters; ErrNotFound if absent.
	DeleteBudget(ctx context.Context, id string) error
	ListBudgets(ctx context.Context) ([]Config, error)
	// UpdateBudgets runs fn in one read-write transaction and commits it if fn
	// returns nil. fn may run more than once when the backend retries a
	// serialisation failure, so it must not act outside tx until
	// UpdateBudgets returns.
	UpdateBudgets(ctx context.Context, fn func(tx Tx) error) error
	// ViewBudgets runs fn in a read-only snapshot.
	ViewBudgets(ctx context.Context, fn func(tx Tx) error) error
	// DecisionParty returns who a logged decision was for, and the model
	// it named, as the audit log keeps them; ok is false when the log
	// holds no such decision.
	DecisionParty(ctx context.Context, decisionID string) (p Party, ok bool, err error)
	// Spend returns the spend q asks for, one row per group (one row for
	// the total when q groups by nothing; none when nothing matched).
	Spend(ctx context.Context, q SpendQuery) ([]SpendRow, error)
}

// Tx is the view of the store inside one transaction.
type Tx interface {
	// Counters returns the counters of budget under keys; keys without a row
	// are left out.
	Counters(ctx context.Context, budget string, keys []string) ([]Counter, error)
	// CountersWithPrefix returns up to limit counters of budget whose key
	// starts with prefix, most recently changed first.
	CountersWithPrefix(ctx context.Context, budget, prefix string, limit int) ([]Counter, error)
	// AddCounter adds spent and reserved to the counter (creating it), and
	// sets its alerted flag when alerted is true. Reserved never goes below
	// zero. A budget that no longer exists is skipped without error.
	AddCounter(ctx context.Context, budget, key string, spent, reserved Amounts, alerted bool, at time.Time) error
	// InsertReservation records a reservation; ErrDuplicate if its decision
	// id already has one.
	InsertReservation(ctx context.Context, r Reservation) error
	// Reservation returns the reservation of a decision, ok false if none.
	Reservation(ctx context.Context, decisionID string) (r Reservation, ok bool, err error)
	DeleteReservation(ctx context.Context, decisionID string) error
	// DueReservations returns up to limit held (not yet expired)
	// reservations whose ExpiresAt is at or before now.
	DueReservations(ctx context.Context, now time.Time, limit int) ([]Reservation, error)
	// MarkExpired records that a reservation's hold was given back.
	MarkExpired(ctx context.Context, decisionID string) error
	// PurgeExpired deletes expired reservations whose ExpiresAt is before
	// cutoff, and rate counters older than it; it returns how many
	// reservations went.
	PurgeExpired(ctx context.Context, cutoff time.Time) (int, error)
	// AddSpend adds a to what p spent on day (a UTC date, 2006-01-02).
	AddSpend(ctx context.Context, p Party, day string, a Amounts) error
}

// Counter is what one budget has counted in one period (or rolling bucket,
// or session).
type Counter struct {
	Budget   string
	Key      string
	Spent    Amounts
	Reserved Amounts
	// Alerted is set once the soft alert has fired for this counter.
	Alerted bool
}

// Reservation is what a decision holds against its budgets until its
// outcome settles it, it is released, or it expires.
type Reservation struct {
	DecisionID string
	ExpiresAt  time.Time
	// Expired is set once the hold was given back by expiry. The row stays
	// for a while so that a late outcome is still counted as spent.
	Expired bool
	Holds   []Hold
}

// Hold is one budget's share of a reservation.
type Hold struct {
	Budget string  `json:"budget"`
	Key    string  `json:"key"`
	Amount Amounts `json:"amount"`
}

var (
	// ErrNotFound is returned for a budget id that does not exist.
	ErrNotFound = errors.New("budget not found")
	// ErrDuplicate is returned when a decision id is reserved twice.
	ErrDuplicate = errors.New("decision already has a reservation")
)
