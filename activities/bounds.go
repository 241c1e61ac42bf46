package activities

import (
	"context"

	"github.com/dumpflow/dumpflow/kafka"
)

// pollBounds returns topic's offsets for a FetchRanges poll of cursors:
// the worker's shared look-up (kafka.Client.SharedBounds: one round of
// ListOffsets per topic per 200 ms, however many loops poll it), or a
// fresh one (Bounds) when the shared answer does not cover a cursor — a
// partition missing from it, or a cursor above its high watermark. Such a
// cursor came from a newer look-up than the shared answer (a write
// planned on another worker, a SetOffsets or Discover to latest), and the
// stale answer would report the partition as truncated.
func pollBounds(ctx context.Context, kc *kafka.Client, topic string, cursors []Cursor) (map[int32]kafka.Bounds, error) {
	bounds, err := kc.SharedBounds(ctx, topic)
	if err != nil {
		return bounds, err
	}
	for _, c := range cursors {
		if b, ok := bounds[c.Partition]; !ok || (b.Err == nil && c.Next > b.End) {
			return kc.Bounds(ctx, topic)
		}
	}
	return bounds, nil
}
