package activities

import (
	"context"
	"fmt"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/sink"
)

// Discover lists the topic's partitions and resolves where each new one
// starts: the sink's own state first (OSS meta and data objects, the
// MaxCompute ledger table; the sink is the source of truth), then the
// connect-<name> group's committed offset, then — on the connector's first
// discovery only — the spec's initial position. A partition that appears
// later starts at its earliest offset, so nothing produced before it was
// noticed is skipped (V2). It also creates the dead-letter and error-data
// topics if they are missing and checks the sink is reachable, so
// configuration mistakes fail here, once, with a clear error.
func (a *Activities) Discover(ctx context.Context, in DiscoverInput) (DiscoverResult, error) {
	spec, err := a.spec(ctx, in.SpecInput)
	if err != nil {
		return DiscoverResult{}, err
	}
	defer keepAlive(ctx)()
	kc, err := a.kafka.For(spec)
	if err != nil {
		return DiscoverResult{}, classify(err)
	}
	known := map[int32]bool{}
	for _, p := range in.Known {
		known[p] = true
	}
	began := time.Now()
	var (
		fresh []int32
		res   DiscoverResult
	)
	for {
		parts, err := kc.Partitions(ctx, spec.Kafka.Topic)
		if err != nil {
			return DiscoverResult{}, classify(err)
		}
		fresh = fresh[:0]
		for _, p := range parts {
			if !known[p] && in.Shard.Owns(p) {
				fresh = append(fresh, p)
			}
		}
		if in.Version >= V2 {
			if res.TopicID, err = kc.TopicID(ctx, spec.Kafka.Topic); err != nil {
				return DiscoverResult{}, classify(err)
			}
		}
		if in.ListOnly {
			for _, p := range fresh {
				res.Partitions = append(res.Partitions, PartitionStart{Partition: p})
			}
			return res, nil
		}
		if len(fresh) > 0 || len(in.Known) == 0 {
			break
		}
		if in.Every <= 0 || time.Since(began)+in.Every > in.Wait {
			return res, nil
		}
		select {
		case <-ctx.Done():
			return DiscoverResult{}, ctx.Err()
		case <-time.After(in.Every):
		}
	}
	for _, t := range []string{spec.Errors.DeadLetterTopic, spec.Errors.ErrorDataTopic} {
		if err := kc.EnsureDeadLetterTopic(ctx, t, int64(spec.Errors.MaxRecordBytes)); err != nil {
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
		return DiscoverResult{}, classify(err)
	}
	committed, err := kc.CommittedOffsets(ctx, spec.Group(), spec.Kafka.Topic)
	if err != nil {
		return DiscoverResult{}, err
	}
	initial := in.Initial || in.Version < V2
	// A sink that resumes many partitions in one read (a MaxCompute group
	// ledger) is asked once for all of them.
	var many map[int32]sink.ResumePoint
	r, bulk := s.(sink.BulkResumer)
	bulk = bulk && len(fresh) > 0
	if bulk {
		if many, err = r.ResumeMany(ctx, spec.Name, spec.Kafka.Topic, fresh, in.Writer); err != nil {
			return DiscoverResult{}, classify(fmt.Errorf("resume partitions %v: %w", shortList(fresh), err))
		}
	}
	for _, p := range fresh {
		ps := PartitionStart{Partition: p}
		var ok bool
		if r, isResumer := s.(sink.Resumer); isResumer {
			var (
				rp    sink.ResumePoint
				found bool
				err   error
			)
			if bulk {
				rp, found = many[p]
			} else {
				rp, found, err = r.Resume(ctx, spec.Name, spec.Kafka.Topic, p, in.Writer)
			}
			if err != nil {
				return DiscoverResult{}, classify(fmt.Errorf("resume partition %d: %w", p, err))
			}
			if in.Version < V2 && rp.Pending != nil && len(rp.Pending.Group) > 0 {
				return DiscoverResult{}, nonRetryable("InvalidSpec", fmt.Errorf("resume partition %d: its pending range is a group batch's, which a first-build run cannot finish", p))
			}
			if found {
				ps.Start, ps.Next, ps.Pending, ps.Epoch, ok = rp.Start, rp.Next, rp.Pending, rp.Epoch, true
				ps.From = "sink"
				if in.Version < V2 && rp.Pending != nil {
					// A first-build run cannot finish a pending range with its
					// sessions, and names objects differently: an OSS object
					// found past the meta counts as written (as that build
					// did); MaxCompute prepares the range anew.
					ps.Next, ps.Pending = rp.Pending.First, nil
					if spec.Sink.Type == connector.SinkOSS {
						ps.Next = rp.Pending.End
					}
				}
			}
		}
		if c, has := committed[p]; !ok && has {
			ps.Next, ps.Start, ps.From, ok = c.Offset, c.Start, "group", true
			if ps.Start < 0 {
				ps.Start = c.Offset
			}
		}
		if !ok {
			b := bounds[p]
			if b.Err != nil {
				return DiscoverResult{}, fmt.Errorf("offsets of partition %d: %w", p, b.Err)
			}
			ps.Next, ps.From = b.Start, "earliest"
			if initial && spec.Kafka.InitialPosition == "latest" {
				ps.Next, ps.From = b.End, "latest"
			}
			ps.Start = ps.Next
		}
		activity.GetLogger(ctx).Info("partition start resolved", "partition", p, "next", ps.Next, "start", ps.Start, "from", ps.From)
		res.Partitions = append(res.Partitions, ps)
	}
	return res, nil
}

// shortList renders partitions for a message, eliding the middle of a long
// list.
func shortList(ps []int32) string {
	if len(ps) <= 8 {
		return fmt.Sprint(ps)
	}
	return fmt.Sprintf("%v … %v (%d)", ps[:4], ps[len(ps)-2:], len(ps))
}
