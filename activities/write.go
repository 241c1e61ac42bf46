package activities

import (
	"context"
	"fmt"
	"sort"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.temporal.io/sdk/activity"

	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/kafka"
	"github.com/dumpflow/dumpflow/sink"
	"github.com/dumpflow/dumpflow/transform"
)

// readCut reads [first, to) of the spec's topic partition. Its callers
// heartbeat in the background (keepAlive) while it runs. When cut is true
// it ends the range after the record that brings the batch to
// spec.Batch.MaxBytes; it returns the records and the exclusive end. The
// cut depends only on the records, so every retry cuts the same range.
func (a *Activities) readCut(ctx context.Context, kc *kafka.Client, spec *connector.Spec, partition int32, first, to int64, cut bool) ([]*kgo.Record, int64, error) {
	var (
		recs  []*kgo.Record
		bytes int64
		end   = to
	)
	maxBytes := int64(spec.Batch.MaxBytes)
	err := kc.ReadRange(ctx, spec.Kafka.Topic, partition, first, to, kafka.ReadOptions{}, func(r *kgo.Record) (bool, error) {
		recs = append(recs, r)
		bytes += int64(len(r.Key) + len(r.Value))
		if cut && bytes >= maxBytes {
			end = r.Offset + 1
			return false, nil
		}
		return true, nil
	})
	if err != nil {
		return nil, 0, classify(err)
	}
	return recs, end, nil
}

// PrepareWrite cuts the planned range and creates the sink's durable write
// state (MaxCompute upload sessions, one per destination partition) in a
// step of its own, so the session ids are in history and WritePartition
// retries re-attach to them.
func (a *Activities) PrepareWrite(ctx context.Context, in PrepareInput) (PrepareResult, error) {
	spec := &in.Spec
	if err := checkSpec(spec); err != nil {
		return PrepareResult{}, err
	}
	kc, err := a.kafka.For(spec)
	if err != nil {
		return PrepareResult{}, classify(err)
	}
	s, err := a.sink(ctx, spec)
	if err != nil {
		return PrepareResult{}, classify(err)
	}
	p, ok := s.(sink.Preparer)
	if !ok {
		return PrepareResult{End: in.PlanEnd}, nil
	}
	defer keepAlive(ctx)()
	if c, ok := s.(sink.Checker); ok {
		if err := c.Check(ctx); err != nil { // loads the table, so PartitionOf can convert
			return PrepareResult{}, classify(err)
		}
	}
	recs, end, err := a.readCut(ctx, kc, spec, in.Partition, in.First, in.PlanEnd, true)
	if err != nil {
		return PrepareResult{}, err
	}
	// Open sessions only for partitions that rows will land in: a record
	// the write rejects goes to the dead-letter topic, and under tolerance
	// stop the write ends at the first one, so nothing after it lands.
	stop := spec.Errors.Tolerance == connector.ToleranceStop
	seen := map[string]bool{}
	var parts []string
	for _, r := range recs {
		rejected := int64(len(r.Key)+len(r.Value)) > int64(spec.Errors.MaxRecordBytes)
		var pt string
		if !rejected {
			tr := toRecord(r)
			pt, err = p.PartitionOf(&tr)
			rejected = err != nil
		}
		if rejected {
			if stop && r.Offset != in.SkipAt {
				break
			}
			continue
		}
		if !seen[pt] {
			seen[pt] = true
			parts = append(parts, pt)
		}
	}
	sort.Strings(parts)
	id := sink.BatchID{Connector: spec.Name, Topic: spec.Kafka.Topic, Partition: in.Partition, Start: in.Start, First: in.First, End: end}
	prep, err := p.Prepare(ctx, id, parts)
	if err != nil {
		return PrepareResult{}, classify(fmt.Errorf("prepare %s: %w", id, err))
	}
	return PrepareResult{End: end, Prepared: prep}, nil
}

// WritePartition reads exactly the range, cuts it deterministically (unless
// PrepareWrite already did), converts and writes it to the sink, and sends
// records the sink cannot take to the dead-letter topic with context
// headers. Under tolerance stop, the first rejected record (other than
// SkipAt) ends the range and is reported in Stopped instead.
func (a *Activities) WritePartition(ctx context.Context, in WriteInput) (WriteResult, error) {
	spec := &in.Spec
	if err := checkSpec(spec); err != nil {
		return WriteResult{}, err
	}
	kc, err := a.kafka.For(spec)
	if err != nil {
		return WriteResult{}, classify(err)
	}
	s, err := a.sink(ctx, spec)
	if err != nil {
		return WriteResult{}, classify(err)
	}
	defer keepAlive(ctx)()
	to, exact := in.PlanEnd, in.End > in.First
	if exact {
		to = in.End
	}
	recs, end, err := a.readCut(ctx, kc, spec, in.Partition, in.First, to, !exact)
	if err != nil {
		return WriteResult{}, err
	}
	id := sink.BatchID{Connector: spec.Name, Topic: spec.Kafka.Topic, Partition: in.Partition, Start: in.Start, First: in.First, End: end}

	stop := spec.Errors.Tolerance == connector.ToleranceStop
	var (
		dls     []kafka.DeadLetter
		stopped *Poison
	)
	b, err := s.Begin(ctx, id, in.Prepared)
	if err != nil {
		return WriteResult{}, classify(fmt.Errorf("begin %s: %w", id, err))
	}
	for i, r := range recs {
		rej, err := a.add(ctx, b, spec, r)
		if err != nil {
			b.Abort(ctx)
			return WriteResult{}, classify(fmt.Errorf("write %s at offset %d: %w", id, r.Offset, err))
		}
		if rej == nil {
			continue
		}
		if stop && r.Offset != in.SkipAt {
			// End the range before the poison record and park the partition.
			stopped = &Poison{Offset: r.Offset, Stage: rej.Stage, Error: rej.Err.Error()}
			b.Abort(ctx)
			id.End = r.Offset
			if id.End == id.First {
				return WriteResult{End: id.First, Stopped: stopped}, nil
			}
			if b, err = s.Begin(ctx, id, in.Prepared); err != nil {
				return WriteResult{}, classify(fmt.Errorf("begin %s: %w", id, err))
			}
			for _, r := range recs[:i] {
				if _, err := a.add(ctx, b, spec, r); err != nil {
					b.Abort(ctx)
					return WriteResult{}, classify(fmt.Errorf("write %s at offset %d: %w", id, r.Offset, err))
				}
			}
			break
		}
		dls = append(dls, kafka.DeadLetter{Record: r, Connector: spec.Name, Stage: rej.Stage, Err: rej.Err})
	}
	w, err := b.Commit(ctx)
	if err != nil {
		b.Abort(ctx)
		return WriteResult{}, classify(fmt.Errorf("commit %s: %w", id, err))
	}
	if len(dls) > 0 {
		if err := kc.ProduceDeadLetters(ctx, spec.Errors.DeadLetterTopic, dls); err != nil {
			return WriteResult{}, err
		}
		activity.GetLogger(ctx).Warn("records sent to the dead-letter topic", "batch", id.String(), "count", len(dls), "topic", spec.Errors.DeadLetterTopic)
	}
	return WriteResult{End: id.End, Written: w, DeadLetters: int64(len(dls)), Stopped: stopped}, nil
}

// add converts r and adds it to b. It returns a non-nil *sink.RejectError
// when the record cannot be taken (too large, fails to convert), and an
// error when the batch itself failed.
func (a *Activities) add(ctx context.Context, b sink.Batch, spec *connector.Spec, r *kgo.Record) (*sink.RejectError, error) {
	if size := int64(len(r.Key) + len(r.Value)); size > int64(spec.Errors.MaxRecordBytes) {
		return &sink.RejectError{Stage: "size", Err: fmt.Errorf("record %s[%d]@%d is %d bytes, over errors.maxRecordBytes %s", r.Topic, r.Partition, r.Offset, size, spec.Errors.MaxRecordBytes)}, nil
	}
	tr := toRecord(r)
	if err := b.Add(ctx, &tr); err != nil {
		if re, ok := sink.IsReject(err); ok {
			return re, nil
		}
		return nil, err
	}
	return nil, nil
}

// toRecord views a franz-go record as a transform.Record without copying
// key or value.
func toRecord(r *kgo.Record) transform.Record {
	tr := transform.Record{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Timestamp: r.Timestamp, Key: r.Key, Value: r.Value}
	if len(r.Headers) > 0 {
		tr.Headers = make([]transform.Header, len(r.Headers))
		for i, h := range r.Headers {
			tr.Headers[i] = transform.Header{Key: h.Key, Value: h.Value}
		}
	}
	return tr
}
