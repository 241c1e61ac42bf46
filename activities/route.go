package activities

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dumpflow/dumpflow/kafka"
	"github.com/dumpflow/dumpflow/metrics"
	"github.com/dumpflow/dumpflow/sink"
)

// RouteRange copies the records of [First, End) to the error-data topic
// with context headers (stage "write", the reason as the error). The
// workflow calls it under tolerance continue when a range still fails after
// its retries, so the partition moves on and nothing is silently dropped.
//
// V2: records whose MaxCompute sessions are already committed are in the
// table and are not routed. The range is then recorded in the sink's
// ledger (an OSS marker object, a MaxCompute ledger row), so verify
// accounts for it from the sink. When the OSS sink turns out to hold the
// range (its write succeeded although the activity failed), the result
// says Written.
func (a *Activities) RouteRange(ctx context.Context, in RouteRangeInput) (RouteRangeResult, error) {
	spec, err := a.spec(ctx, in.SpecInput)
	if err != nil {
		return RouteRangeResult{}, err
	}
	kc, err := a.kafka.For(spec)
	if err != nil {
		return RouteRangeResult{}, classify(err)
	}
	a.retried(ctx, spec, in.Partition)
	defer keepAlive(ctx)()
	if in.TopicID != "" {
		if err := checkTopicID(ctx, kc, spec.Kafka.Topic, in.TopicID); err != nil {
			return RouteRangeResult{}, err
		}
	}
	var (
		s         sink.Sink
		committed = map[string]bool{}
		prep      sink.Preparer
	)
	if in.Version >= V2 {
		if s, err = a.sink(ctx, spec); err != nil {
			return RouteRangeResult{}, classify(err)
		}
		if p, ok := s.(sink.Preparer); ok && in.Prepared != nil {
			prep = p
			id := sink.BatchID{Connector: spec.Name, Topic: spec.Kafka.Topic, Partition: in.Partition, Start: in.Start, First: in.First, End: in.End, Writer: in.Writer, Epoch: in.Epoch}
			var parts []string
			for _, sess := range in.Prepared.Sessions {
				parts = append(parts, sess.Partition)
			}
			// Prepare with keep reports which sessions are committed; it
			// creates sessions only for expired ones, which stay unused.
			now, err := p.Prepare(ctx, id, parts, in.Prepared.Sessions)
			if err != nil {
				return RouteRangeResult{}, classify(err)
			}
			for _, sess := range now.Sessions {
				if sess.Committed {
					committed[sess.Partition] = true
				}
			}
		}
	}
	reason := errors.New(in.Reason)
	var (
		dls     []kafka.DeadLetter
		routed  int64
		firstTS time.Time
		seen    bool
	)
	id := sink.BatchID{Connector: spec.Name, Topic: spec.Kafka.Topic, Partition: in.Partition, Start: in.Start, First: in.First, End: in.End, Writer: in.Writer, Epoch: in.Epoch}
	if rc, ok := s.(sink.RouteChecker); ok {
		// A write that succeeded although its activity failed: the range is
		// in the sink, and is not routed too.
		err := kc.ReadRange(ctx, spec.Kafka.Topic, in.Partition, in.First, in.End, kafka.ReadOptions{}, func(r *kgo.Record) (bool, error) {
			firstTS, seen = r.Timestamp, true
			return false, nil
		})
		if err != nil {
			return RouteRangeResult{}, classify(err)
		}
		written, err := rc.Written(ctx, id, firstTS)
		if err != nil {
			return RouteRangeResult{}, classify(fmt.Errorf("look for the range [%d,%d) of partition %d in the sink: %w", in.First, in.End, in.Partition, err))
		}
		if written {
			return RouteRangeResult{Written: true}, nil
		}
	}
	flush := func() error {
		if len(dls) == 0 {
			return nil
		}
		if err := kc.ProduceDeadLetters(ctx, spec.Errors.ErrorDataTopic, dls, int64(spec.Errors.MaxRecordBytes)); err != nil {
			return err
		}
		routed += int64(len(dls))
		dls = dls[:0]
		return nil
	}
	err = kc.ReadRange(ctx, spec.Kafka.Topic, in.Partition, in.First, in.End, kafka.ReadOptions{}, func(r *kgo.Record) (bool, error) {
		if !seen {
			firstTS, seen = r.Timestamp, true
		}
		if prep != nil && len(committed) > 0 {
			tr := toRecord(r)
			if pt, err := prep.PartitionOf(&tr); err == nil && committed[pt] {
				return true, nil
			}
		}
		dls = append(dls, kafka.DeadLetter{Record: r, Connector: spec.Name, Stage: "write", Err: reason})
		if len(dls) >= deadLetterChunk {
			return true, flush()
		}
		return true, nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		return RouteRangeResult{}, classify(err)
	}
	a.metrics.Routed(partition(spec, in.Partition), metrics.StageWrite, routed)
	res := RouteRangeResult{Records: routed}
	if m, ok := s.(sink.Marker); ok {
		written, err := m.Mark(ctx, sink.Mark{
			ID:   id,
			Kind: sink.MarkRouted, Records: routed, Reason: shorten(in.Reason, 256), FirstTimestamp: firstTS, At: time.Now().UTC(),
		})
		if err != nil {
			return RouteRangeResult{}, classify(fmt.Errorf("record the routed range [%d,%d) of partition %d: %w", in.First, in.End, in.Partition, err))
		}
		res.Written = written
	}
	return res, nil
}

// DeclareGap records a declared gap after an operator acknowledged that the
// partition's records from From were deleted from Kafka before they were
// dumped: [From, log start) goes into the sink's ledger with who
// acknowledged it, and the partition continues at the log start.
func (a *Activities) DeclareGap(ctx context.Context, in DeclareGapInput) (DeclareGapResult, error) {
	spec, err := a.spec(ctx, in.SpecInput)
	if err != nil {
		return DeclareGapResult{}, err
	}
	defer keepAlive(ctx)()
	kc, err := a.kafka.For(spec)
	if err != nil {
		return DeclareGapResult{}, classify(err)
	}
	bounds, err := kc.Bounds(ctx, spec.Kafka.Topic)
	if err != nil {
		return DeclareGapResult{}, classify(err)
	}
	b, ok := bounds[in.Partition]
	if !ok || b.Err != nil {
		return DeclareGapResult{}, fmt.Errorf("log start of partition %d: %v", in.Partition, b.Err)
	}
	s, err := a.sink(ctx, spec)
	if err != nil {
		return DeclareGapResult{}, classify(err)
	}
	from := in.From
	if r, ok := s.(sink.Resumer); ok {
		// A write the workflow never learned of (its worker died after the
		// sink held the range) may have landed: the sink's own record says
		// where the partition's data ends, and the gap begins there.
		rp, found, err := r.Resume(ctx, spec.Name, spec.Kafka.Topic, in.Partition, in.Writer)
		if err != nil {
			return DeclareGapResult{}, classify(fmt.Errorf("read where partition %d's data ends: %w", in.Partition, err))
		}
		if found && rp.Next > from {
			from = rp.Next
		}
	}
	res := DeclareGapResult{From: from, To: max(from, b.Start)}
	if res.To == res.From {
		return res, nil
	}
	if m, ok := s.(sink.Marker); ok {
		_, err := m.Mark(ctx, sink.Mark{
			ID:   sink.BatchID{Connector: spec.Name, Topic: spec.Kafka.Topic, Partition: in.Partition, Start: in.Start, First: res.From, End: res.To, Writer: in.Writer, Epoch: in.Epoch},
			Kind: sink.MarkGap, Reason: shorten("deleted from Kafka before it was dumped; acknowledged by "+in.By, 256), At: time.Now().UTC(),
		})
		if err != nil {
			return DeclareGapResult{}, classify(fmt.Errorf("record the declared gap [%d,%d) of partition %d: %w", res.From, res.To, in.Partition, err))
		}
	}
	return res, nil
}

func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
