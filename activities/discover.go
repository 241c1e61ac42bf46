package activities

import (
	"context"
	"fmt"

	"go.temporal.io/sdk/activity"

	"github.com/dumpflow/dumpflow/sink"
)

// Discover lists the topic's partitions and resolves where each new one
// starts: the sink's own meta state first (OSS meta objects), then the
// connect-<name> group's committed offset, then the spec's initial
// position. It also creates the dead-letter and error-data topics if they
// are missing and checks the sink is reachable, so configuration mistakes
// fail here, once, with a clear error.
func (a *Activities) Discover(ctx context.Context, in DiscoverInput) (DiscoverResult, error) {
	spec := &in.Spec
	if err := checkSpec(spec); err != nil {
		return DiscoverResult{}, err
	}
	kc, err := a.kafka.For(spec)
	if err != nil {
		return DiscoverResult{}, classify(err)
	}
	parts, err := kc.Partitions(ctx, spec.Kafka.Topic)
	if err != nil {
		return DiscoverResult{}, classify(err)
	}
	for _, t := range []string{spec.Errors.DeadLetterTopic, spec.Errors.ErrorDataTopic} {
		if err := kc.EnsureTopic(ctx, t, 1); err != nil {
			return DiscoverResult{}, err
		}
	}
	s, err := a.sink(ctx, spec)
	if err != nil {
		return DiscoverResult{}, classify(err)
	}
	if c, ok := s.(sink.Checker); ok {
		if err := c.Check(ctx); err != nil {
			return DiscoverResult{}, classify(err)
		}
	}
	bounds, err := kc.Bounds(ctx, spec.Kafka.Topic)
	if err != nil {
		return DiscoverResult{}, err
	}
	committed, err := kc.CommittedOffsets(ctx, spec.Group(), spec.Kafka.Topic)
	if err != nil {
		return DiscoverResult{}, err
	}
	known := map[int32]bool{}
	for _, p := range in.Known {
		known[p] = true
	}
	var res DiscoverResult
	for _, p := range parts {
		if known[p] {
			continue
		}
		ps := PartitionStart{Partition: p}
		var ok bool
		if r, isResumer := s.(sink.Resumer); isResumer {
			ps.Start, ps.Next, ok, err = r.Resume(ctx, spec.Name, spec.Kafka.Topic, p)
			if err != nil {
				return DiscoverResult{}, classify(fmt.Errorf("resume partition %d: %w", p, err))
			}
			ps.From = "sink-meta"
		}
		if c, has := committed[p]; !ok && has {
			ps.Next, ps.Start, ps.From, ok = c.Offset, c.Start, "group", true
			if ps.Start < 0 {
				ps.Start = c.Offset
			}
		}
		if !ok {
			b := bounds[p]
			ps.Next, ps.From = b.Start, "earliest"
			if spec.Kafka.InitialPosition == "latest" {
				ps.Next, ps.From = b.End, "latest"
			}
			ps.Start = ps.Next
		}
		activity.GetLogger(ctx).Info("partition start resolved", "partition", p, "next", ps.Next, "start", ps.Start, "from", ps.From)
		res.Partitions = append(res.Partitions, ps)
	}
	return res, nil
}
