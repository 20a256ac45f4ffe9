package budget

import (
	"context"
	"time"
)

// RunEvery is Run with the tick given, for tests.
func (b *Budgets) RunEvery(ctx context.Context, every time.Duration) error {
	return b.run(ctx, every)
}
