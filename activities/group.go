package activities

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/kafka"
	"github.com/dumpflow/dumpflow/metrics"
	"github.com/dumpflow/dumpflow/sink"
)

// groupID is the BatchID of a group batch: Group[0]'s partition and range
// name it in messages.
func groupID(spec *connector.Spec, group []sink.Member, writer string) sink.BatchID {
	m := group[0]
	return sink.BatchID{Connector: spec.Name, Topic: spec.Kafka.Topic, Partition: m.Partition, Start: m.Start, First: m.First, End: m.End,
		Writer: writer, Epoch: m.Epoch, Group: group}
}

// groupWriter checks that s writes group batches and that group is one: at
// least one member, each partition once, each range non-empty.
func groupWriter(s sink.Sink, spec *connector.Spec, group []sink.Member) error {
	if g, ok := s.(sink.GroupWriter); !ok || !g.GroupWrites() {
		return nonRetryable("InvalidSpec", fmt.Errorf("connector %s: its %s sink does not write group batches", spec.Name, spec.Sink.Type))
	}
	seen := make(map[int32]bool, len(group))
	for _, m := range group {
		if seen[m.Partition] || m.End <= m.First {
			return nonRetryable("InvalidSpec", fmt.Errorf("connector %s: group member partition %d [%d,%d) is repeated or empty", spec.Name, m.Partition, m.First, m.End))
		}
		seen[m.Partition] = true
	}
	return nil
}

// writeGroup writes a group batch: the members' ranges, one after another
// in Group's order, streamed into one set of prepared sessions and
// committed as one. Records the sink cannot take go to the dead-letter
// topic before the commit, as in write. A member whose records retention
// deleted fails the write with DataLost, its details the log start and the
// member's partition; nothing of the group is committed then.
func (a *Activities) writeGroup(ctx context.Context, kc *kafka.Client, spec *connector.Spec, s sink.Sink, in WriteInput) (WriteResult, error) {
	began := time.Now()
	if err := groupWriter(s, spec, in.Group); err != nil {
		return WriteResult{}, err
	}
	id := groupID(spec, in.Group, in.Writer)
	if in.TopicID != "" {
		if err := checkTopicID(ctx, kc, spec.Kafka.Topic, in.TopicID); err != nil {
			return WriteResult{}, err
		}
	}
	b, run, err := a.beginBatch(ctx, spec, s, &id, in.Prepared)
	if err != nil {
		return WriteResult{}, err
	}
	if run != nil {
		defer func() { _ = run.Close(ctx) }()
	}
	dls := a.letters(kc, spec)
	for _, m := range in.Group {
		err = kc.ReadRange(ctx, spec.Kafka.Topic, m.Partition, m.First, m.End, kafka.ReadOptions{}, func(r *kgo.Record) (bool, error) {
			dl, err := ApplyRecord(ctx, spec, run, b, r)
			if err != nil {
				return false, fmt.Errorf("write %s: partition %d at offset %d: %w", id, m.Partition, r.Offset, err)
			}
			return true, dls.add(ctx, dl)
		})
		if dl, ok := kafka.IsDataLost(err); ok {
			b.Abort(ctx)
			return WriteResult{}, temporal.NewApplicationErrorWithOptions(fmt.Sprintf("group member partition %d: %v", m.Partition, err), "DataLost",
				temporal.ApplicationErrorOptions{NonRetryable: true, Cause: dl, Details: []any{dl.LogStart, m.Partition}})
		}
		if err != nil {
			break
		}
	}
	if err == nil {
		err = dls.flush(ctx)
	}
	if err != nil {
		b.Abort(ctx)
		return WriteResult{}, classify(err)
	}
	if in.TopicID != "" {
		if err := checkTopicID(ctx, kc, spec.Kafka.Topic, in.TopicID); err != nil {
			b.Abort(ctx)
			return WriteResult{}, err
		}
	}
	w, err := b.Commit(ctx)
	var exp *sink.ExpiredError
	if errors.As(err, &exp) {
		return WriteResult{End: in.First, Expired: exp.Expired, Committed: exp.Committed}, nil
	}
	if err != nil {
		b.Abort(ctx)
		return WriteResult{}, classify(fmt.Errorf("commit %s: %w", id, err))
	}
	if len(w.Members) != len(in.Group) {
		return WriteResult{}, fmt.Errorf("commit %s: the sink reported %d members of %d", id, len(w.Members), len(in.Group))
	}
	res := WriteResult{End: id.End, Written: w, DeadLetters: dls.total}
	if run != nil {
		res.Transform = run.Counts()
	}
	d := time.Since(began)
	for i, m := range in.Group {
		mw := w.Members[i]
		res.Members = append(res.Members, MemberResult{Partition: m.Partition, End: m.End, Records: mw.Records, Bytes: mw.Bytes, DeadLetters: dls.counts[m.Partition]})
		mp := partition(spec, m.Partition)
		a.metrics.Written(mp, metrics.Batch{Records: mw.Records, Bytes: mw.Bytes, Objects: int64(len(w.Objects)), Duration: d})
		a.metrics.Advanced(mp, m.End)
	}
	if dls.total > 0 {
		activity.GetLogger(ctx).Warn("records sent to the dead-letter topic", "batch", id.String(), "members", len(in.Group), "count", dls.total, "topic", spec.Errors.DeadLetterTopic)
	}
	for _, n := range res.Transform {
		a.metrics.Transformed(partition(spec, id.Partition), n.Step, n.Type, n.In, n.Out, n.Dropped, n.Failed)
	}
	return res, nil
}
