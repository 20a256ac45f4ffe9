package budget

import (
	"context"
	"sync"
	"time"
)

// maxBatch bounds how many operations share one transaction.
const maxBatch = 256

// Counter changes that arrive together share one store transaction (group
// commit): the first caller leads and commits everything queued so far;
// callers arriving meanwhile queue, and one of them leads the next batch.
// Inside the transaction the operations run one after another, each seeing
// the writes of those before it, so a batch decides exactly as the same
// operations one at a time would, for the price of one durable commit.
type batcher struct {
	mu      sync.Mutex
	busy    bool
	pending []*op
}

// op is one operation in a batch. run's error aborts the whole transaction;
// an outcome that concerns only this operation goes into run's closure.
type op struct {
	run  func(ctx context.Context, tx Tx, now time.Time) error
	err  error         // the transaction's error, when it failed
	done chan struct{} // closed when the batch is finished
	lead chan struct{} // closed when this op must lead the next batch
}

// do runs fn in a batch and returns the batch transaction's error.
func (b *Budgets) do(ctx context.Context, fn func(ctx context.Context, tx Tx, now time.Time) error) error {
	o := &op{run: fn, done: make(chan struct{}), lead: make(chan struct{})}
	q := &b.batch
	q.mu.Lock()
	q.pending = append(q.pending, o)
	if q.busy {
		q.mu.Unlock()
		select {
		case <-o.done:
			return o.err
		case <-o.lead:
		}
		q.mu.Lock()
	}
	q.busy = true
	n := min(len(q.pending), maxBatch)
	batch := q.pending[:n:n]
	q.pending = q.pending[n:]
	q.mu.Unlock()

	b.commit(ctx, batch)

	q.mu.Lock()
	if len(q.pending) > 0 {
		close(q.pending[0].lead)
	} else {
		q.busy = false
	}
	q.mu.Unlock()
	<-o.done // o is in this batch unless more than maxBatch were queued ahead of it
	return o.err
}

// commit runs one batch in one transaction, after giving back expired
// reservations. The leader's cancellation must not fail the others'
// operations, so the transaction runs without it.
func (b *Budgets) commit(ctx context.Context, batch []*op) {
	ctx = context.WithoutCancel(ctx)
	now := b.now()
	err := b.st.UpdateBudgets(ctx, func(tx Tx) error {
		if err := expireDue(ctx, tx, now); err != nil {
			return err
		}
		for _, o := range batch {
			if err := o.run(ctx, tx, now); err != nil {
				return err
			}
		}
		return nil
	})
	for _, o := range batch {
		o.err = err
		close(o.done)
	}
}
