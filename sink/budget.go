package sink

import (
	"context"
	"fmt"

	"golang.org/x/sync/semaphore"
)

// Budget caps the bytes a worker holds in batch buffers at once, across
// every connector it serves. A batch takes what it needs (its exact size,
// known from the plan) before it buffers, and gives it back when it is
// written, so buffers grow with the data and the worker's memory stays
// bounded however many partitions it writes in parallel.
//
// A nil *Budget is unlimited.
type Budget struct {
	total int64
	sem   *semaphore.Weighted
}

// NewBudget returns a budget of total bytes; total ≤ 0 means unlimited (nil).
func NewBudget(total int64) *Budget {
	if total <= 0 {
		return nil
	}
	return &Budget{total: total, sem: semaphore.NewWeighted(total)}
}

// Total is the budget's size in bytes (0 when unlimited).
func (b *Budget) Total() int64 {
	if b == nil {
		return 0
	}
	return b.total
}

// Acquire takes n bytes, waiting until they are free or ctx is done. A
// request larger than the whole budget takes the whole budget: such a batch
// runs alone. It returns the amount to pass to Release.
func (b *Budget) Acquire(ctx context.Context, n int64) (int64, error) {
	if b == nil || n <= 0 {
		return 0, nil
	}
	n = min(n, b.total)
	if err := b.sem.Acquire(ctx, n); err != nil {
		return 0, fmt.Errorf("wait for %d bytes of the worker's batch memory budget (%d bytes): %w", n, b.total, err)
	}
	return n, nil
}

// Release gives back what Acquire returned.
func (b *Budget) Release(n int64) {
	if b != nil && n > 0 {
		b.sem.Release(n)
	}
}
