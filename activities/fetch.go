package activities

import (
	"context"
	"time"

	"go.temporal.io/sdk/activity"
)

// pollInterval is how often FetchRanges re-reads the high watermarks.
const pollInterval = 250 * time.Millisecond

// FetchRanges waits until one of the cursors' partitions has a full batch
// (spec.Batch.MaxRecords) past its cursor, or has a backlog (a cursor still
// behind the high watermark after its last write, as when catching up), or
// the flush interval elapses, and plans [next, planEnd) for each partition
// with data. It reads offsets
// only, never record bytes. It heartbeats while it waits.
func (a *Activities) FetchRanges(ctx context.Context, in FetchRangesInput) (FetchRangesResult, error) {
	spec := &in.Spec
	if err := checkSpec(spec); err != nil {
		return FetchRangesResult{}, err
	}
	kc, err := a.kafka.For(spec)
	if err != nil {
		return FetchRangesResult{}, classify(err)
	}
	maxRecords := int64(spec.Batch.MaxRecords)
	deadline := time.Now().Add(spec.Batch.FlushInterval.D())
	ticker := time.NewTicker(pollInterval)
	defer ticker.Stop()
	for {
		bounds, err := kc.Bounds(ctx, spec.Kafka.Topic)
		if err != nil {
			return FetchRangesResult{}, classify(err)
		}
		var res FetchRangesResult
		full := false
		for _, c := range in.Cursors {
			b := bounds[c.Partition]
			p := Plan{Partition: c.Partition, First: c.Next, PlanEnd: c.Next, HighWatermark: b.End, LogStart: b.Start}
			if avail := b.End - c.Next; avail > 0 {
				p.PlanEnd = c.Next + min(avail, maxRecords)
				full = full || avail >= maxRecords || c.Backlog
			}
			res.Plans = append(res.Plans, p)
		}
		if full || !time.Now().Before(deadline) {
			return res, nil
		}
		activity.RecordHeartbeat(ctx)
		select {
		case <-ctx.Done():
			return FetchRangesResult{}, ctx.Err()
		case <-ticker.C:
		}
	}
}
