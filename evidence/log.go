// Package evidence reads what the audit log proves about past decisions,
// for the tools that answer questions from it: replay under another policy
// set, compliance reports, threat models weighed against the controls in
// force, and training rewards. It reads entries as the log stores them and
// never writes.
package evidence

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/audit"
)

// Decision is one decision entry of the log: the decision, the action as
// it was recorded (arguments masked or redacted as policy said), and the
// policy that decided it.
type Decision struct {
	Index    uint64          `json:"index"`
	Time     time.Time       `json:"time"`
	Decision action.Decision `json:"decision"`
	Action   action.Action   `json:"action"`
	Policy   string          `json:"policy,omitempty"`
	Bundle   string          `json:"bundle,omitempty"`
	// PolicyEffect is what the policy rules said, before rate limits,
	// budgets and approvals; empty when an earlier stage decided.
	PolicyEffect action.Effect `json:"policy_effect,omitempty"`
	// Anomaly is what the anomaly detector found for the agent, recorded
	// when it found something or the policy read it.
	Anomaly *Anomaly `json:"anomaly,omitempty"`
}

// Anomaly is the part of a recorded anomaly reading that policies read.
type Anomaly struct {
	RateZ            float64 `json:"rate_z"`
	NewTool          bool    `json:"new_tool"`
	Entropy          float64 `json:"entropy"`
	EntropyOutOfBand bool    `json:"entropy_out_of_band"`
	Warm             bool    `json:"warm"`
}

// Entries is a source of log entries, a page at a time: *audit.Log, or
// audit.Entries over a store opened read-only.
type Entries func(ctx context.Context, after int64, limit int) ([]audit.Entry, error)

// FromStore reads the entries of a store directly (offline tools).
func FromStore(st audit.Store) Entries {
	return func(ctx context.Context, after int64, limit int) ([]audit.Entry, error) {
		return audit.Entries(ctx, st, after, limit)
	}
}

// Walk calls f with every entry of the log, in order.
func Walk(ctx context.Context, src Entries, f func(audit.Entry) error) error {
	after := int64(-1)
	for {
		es, err := src(ctx, after, audit.MaxEntriesPage)
		if err != nil {
			return err
		}
		if len(es) == 0 {
			return nil
		}
		for _, e := range es {
			if err := f(e); err != nil {
				return err
			}
		}
		after = int64(es[len(es)-1].Index)
	}
}

// ParseDecision decodes a "decision" entry.
func ParseDecision(e audit.Entry) (Decision, error) {
	var d Decision
	if err := json.Unmarshal(e.Record, &d); err != nil {
		return d, fmt.Errorf("audit entry %d: decision record: %w", e.Index, err)
	}
	// The action again, keeping its numbers exact: replay must decide on
	// the account number the log holds, not the double nearest to it.
	var raw struct {
		Action json.RawMessage `json:"action"`
	}
	if err := json.Unmarshal(e.Record, &raw); err == nil && len(raw.Action) > 0 {
		a, err := action.DecodeStored(raw.Action)
		if err != nil {
			return d, fmt.Errorf("audit entry %d: decision record: action: %w", e.Index, err)
		}
		d.Action = a
	}
	d.Index, d.Time = e.Index, e.Time
	return d, nil
}

// Decisions returns the decisions of the log made at or after since (all
// when since is zero).
func Decisions(ctx context.Context, src Entries, since time.Time) ([]Decision, error) {
	var out []Decision
	err := Walk(ctx, src, func(e audit.Entry) error {
		if e.Kind != "decision" || (!since.IsZero() && e.Time.Before(since)) {
			return nil
		}
		d, err := ParseDecision(e)
		if err != nil {
			return err
		}
		out = append(out, d)
		return nil
	})
	return out, err
}
