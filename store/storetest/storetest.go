// Package storetest is the conformance suite every backend of agentgov's
// state passes: one set of tests written against the storage interfaces
// the consuming packages declare (audit.Store, approval.Store, budget.Store,
// session.Store, killswitch.Store, govern.OutcomeLedger and the server's
// Idempotency and Decisions), run by each backend's own tests with a
// constructor of its stores. store/sqlite runs it always; store/postgres
// runs it when AGENTGOV_TEST_POSTGRES names a server.
package storetest

import (
	"context"
	"crypto/rand"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/agentgov/agentgov/approval"
	"github.com/agentgov/agentgov/audit"
	"github.com/agentgov/agentgov/budget"
	"github.com/agentgov/agentgov/govern"
	"github.com/agentgov/agentgov/identity"
	"github.com/agentgov/agentgov/killswitch"
	"github.com/agentgov/agentgov/server"
	"github.com/agentgov/agentgov/session"
	"github.com/agentgov/agentgov/trust"
)

// Store is every storage interface a backend implements.
type Store interface {
	audit.Store
	approval.Store
	budget.Store
	session.Store
	killswitch.Store
	trust.Store
	govern.OutcomeLedger
	identity.Store
	server.Idempotency
	server.Decisions
	server.Pinger
	// Close releases the handle (for store/postgres, its replica id);
	// closing twice is harmless.
	Close() error
}

// Opener opens a handle on one test's database, as replica, whose audit
// log is signed by the key that auditKey (a note verifier key) verifies.
// Each call opens a new handle on the same database; the handle is closed
// when the test ends. A backend with one log per database ignores both.
type Opener func(t *testing.T, replica, auditKey string) Store

// Backend is what a backend gives the suite.
type Backend struct {
	// Fresh makes an empty database for one test, removed when it ends.
	Fresh func(t *testing.T) Opener
	// Exec runs a statement on the database of the last Fresh, as an
	// administrator of it could, bypassing the store.
	Exec func(t *testing.T, stmt string) error
	// Replicas is set when several processes share one database, each
	// with its own audit log, and every other state shared.
	Replicas bool
}

// Key is a test signing key of a replica's audit log.
type Key struct {
	Signer   note.Signer
	Verifier note.Verifier
	// Text is the verifier key, as stores record it.
	Text string
}

// NewKey makes a fresh audit key named name.
func NewKey(t testing.TB, name string) Key {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return Key{Signer: s, Verifier: v, Text: vkey}
}

// Run runs the suite.
func Run(t *testing.T, b Backend) {
	tests := []struct {
		name string
		fn   func(t *testing.T, b Backend)
	}{
		{"AuditAppendAndRead", testAuditAppendAndRead},
		{"AuditAppendIsAllOrNothing", testAuditAppendIsAllOrNothing},
		{"AuditTablesAreAppendOnly", testAuditTablesAreAppendOnly},
		{"AuditCheckpoints", testAuditCheckpoints},
		{"AuditSurvivesReopen", testAuditSurvivesReopen},
		{"AuditAppendBatchSizes", testAuditAppendBatchSizes},
		{"AuditLogVerifiesAcrossRestart", testAuditLogVerifiesAcrossRestart},
		{"DecisionsAreFoundByID", testDecisionsAreFoundByID},
		{"TicketRoundTrip", testTicketRoundTrip},
		{"CountPendingTickets", testCountPendingTickets},
		{"DecideTicketOnlyApprovesOrDenies", testDecideTicketOnlyApprovesOrDenies},
		{"TicketRedeemedOnce", testTicketRedeemedOnce},
		{"BudgetConfigsRoundTrip", testBudgetConfigsRoundTrip},
		{"BudgetCounters", testBudgetCounters},
		{"BudgetTransactionRollsBackOnError", testBudgetTransactionRollsBackOnError},
		{"BudgetReservations", testBudgetReservations},
		{"BudgetsExactUnderConcurrency", testBudgetsExactUnderConcurrency},
		{"Sessions", testSessions},
		{"SessionTransitionsOneWins", testSessionTransitionsOneWins},
		{"KillSwitches", testKillSwitches},
		{"OutcomeClaimedOnce", testOutcomeClaimedOnce},
		{"IdempotencyFirstAnswerWins", testIdempotencyFirstAnswerWins},
		{"Spend", testSpend},
		{"TrustScores", testTrustScores},
		{"TrustStreak", testTrustStreak},
		{"TrustExactUnderConcurrency", testTrustExactUnderConcurrency},
		{"TrustDecay", testTrustDecay},
		{"TrustElevations", testTrustElevations},
		{"TrustRiseCap", testTrustRiseCap},
		{"ReplicasKeepTheirOwnLogs", testReplicasKeepTheirOwnLogs},
		{"ReplicasShareState", testReplicasShareState},
		{"AgentRegistry", testAgentRegistry},
		{"JTIUsedOnce", testJTIUsedOnce},
		{"Delegations", testDelegations},
		{"ReplicasShareRegistry", testReplicasShareRegistry},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, b) })
	}
}

// open makes a fresh database and opens replica r1 on it.
func open(t *testing.T, b Backend) Store {
	t.Helper()
	return b.Fresh(t)(t, "r1", NewKey(t, "agentgov-test/r1").Text)
}

var bg = context.Background()
