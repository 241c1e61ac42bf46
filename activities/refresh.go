package activities

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dumpflow/dumpflow/kafka"
)

// RefreshBoundsName is RefreshBounds's registered name.
const RefreshBoundsName = "RefreshBounds"

// RefreshBoundsInput lists partitions that no loop plans right now
// (paused, stopped, data-lost), with their cursors and why they wait.
type RefreshBoundsInput struct {
	SpecInput
	Partitions []ParkedPartition `json:"partitions"`
}

// ParkedPartition is a partition that waits, and why.
type ParkedPartition struct {
	Partition int32 `json:"partition"`
	Next      int64 `json:"next"`
	// Reason is one of metrics.Reasons: paused, poison, stopped-error,
	// data-lost.
	Reason string `json:"reason"`
}

// RefreshBoundsResult is each partition's current offsets.
type RefreshBoundsResult struct {
	Partitions []PartitionBounds `json:"partitions"`
}

// PartitionBounds is a partition's log start, high watermark and last
// stable offset now; Error is why they could not be read.
type PartitionBounds struct {
	Partition     int32  `json:"partition"`
	HighWatermark int64  `json:"highWatermark"`
	LogStart      int64  `json:"logStart"`
	Stable        int64  `json:"stable,omitempty"`
	Error         string `json:"error,omitempty"`
}

// refreshReadTimeout bounds the read of the record at a cursor (for its
// timestamp): RefreshBounds is a light, frequent step.
const refreshReadTimeout = 5 * time.Second

// RefreshBounds reads the current offsets of partitions that wait
// (paused, stopped or data-lost), so the connector's status and lag stay
// true while nothing is written, and reports their lag and state to the
// worker's metrics: lag in records, the age of the record at the cursor
// (the oldest not yet written) and the stopped gauge with its reason. It
// reads one record per lagging partition and writes nothing.
func (a *Activities) RefreshBounds(ctx context.Context, in RefreshBoundsInput) (RefreshBoundsResult, error) {
	spec, err := a.spec(ctx, in.SpecInput)
	if err != nil {
		return RefreshBoundsResult{}, err
	}
	kc, err := a.kafka.For(spec)
	if err != nil {
		return RefreshBoundsResult{}, classify(err)
	}
	bounds, err := kc.SharedBounds(ctx, spec.Kafka.Topic) // status and metrics: a shared answer will do
	if err != nil {
		return RefreshBoundsResult{}, classify(err)
	}
	var res RefreshBoundsResult
	for _, p := range in.Partitions {
		b, ok := bounds[p.Partition]
		pb := PartitionBounds{Partition: p.Partition, HighWatermark: b.End, LogStart: b.Start, Stable: b.Stable}
		switch {
		case !ok:
			pb.Error = "partition not found"
		case b.Err != nil:
			pb.Error = errorText(b.Err)
		}
		res.Partitions = append(res.Partitions, pb)
		if pb.Error != "" {
			continue
		}
		mp := partition(spec, p.Partition)
		a.metrics.Observed(mp, p.Next, b.End, p.Reason)
		if a.metrics == nil || p.Next >= b.End {
			continue
		}
		// The oldest record not yet written is the first at or after the
		// cursor that Kafka still holds.
		from := max(p.Next, b.Start)
		if from >= b.End {
			continue
		}
		rctx, cancel := context.WithTimeout(ctx, refreshReadTimeout)
		_ = kc.ReadRange(rctx, spec.Kafka.Topic, p.Partition, from, min(from+1, b.End), kafka.ReadOptions{StallTimeout: refreshReadTimeout, FetchMaxPartitionBytes: 64 << 10}, func(r *kgo.Record) (bool, error) {
			a.metrics.Oldest(mp, p.Next, r.Timestamp)
			return false, nil
		})
		cancel()
	}
	return res, nil
}
