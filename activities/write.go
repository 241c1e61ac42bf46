package activities

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.temporal.io/sdk/activity"

	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/kafka"
	"github.com/dumpflow/dumpflow/metrics"
	"github.com/dumpflow/dumpflow/sink"
	"github.com/dumpflow/dumpflow/transform"
)

// PrepareWrite creates the sink's durable write state (MaxCompute upload
// sessions, one per destination partition) in a step of its own, so the
// session ids are in history and WritePartition retries re-attach to them.
//
// V2: the range [First, End) and its destination partitions come from the
// plan. Sessions in Keep (an earlier Prepare of the same range) that are
// committed or open are kept, so rows already committed are never written
// again; only missing or expired ones are created.
//
// V1 (inputs of the first build): the step reads the planned range itself
// to cut it and find its destination partitions.
func (a *Activities) PrepareWrite(ctx context.Context, in PrepareInput) (PrepareResult, error) {
	spec, err := a.spec(ctx, in.SpecInput)
	if err != nil {
		return PrepareResult{}, err
	}
	s, err := a.sink(ctx, spec)
	if err != nil {
		return PrepareResult{}, classify(err)
	}
	a.retried(ctx, spec, in.Partition)
	p, ok := s.(sink.Preparer)
	if !ok {
		if in.Version >= V2 {
			return PrepareResult{End: in.End}, nil
		}
		return PrepareResult{End: in.PlanEnd}, nil
	}
	defer keepAlive(ctx)()
	if c, ok := s.(sink.Checker); ok {
		if err := c.Check(ctx); err != nil {
			return PrepareResult{}, classify(err)
		}
	}
	end, parts := in.End, in.Parts
	if in.Version < V2 {
		kc, err := a.kafka.For(spec)
		if err != nil {
			return PrepareResult{}, classify(err)
		}
		pl := Plan{Partition: in.Partition, First: in.First, PlanEnd: in.PlanEnd}
		if err := a.cut(ctx, kc, spec, s, &pl, in.SkipAt); err != nil {
			return PrepareResult{}, classify(err)
		}
		end, parts = pl.End, pl.Parts
		sort.Strings(parts)
	}
	id := sink.BatchID{Connector: spec.Name, Topic: spec.Kafka.Topic, Partition: in.Partition, Start: in.Start, First: in.First, End: end, Writer: in.Writer, LegacyNames: in.Version < V2, Epoch: in.Epoch}
	if len(in.Group) > 0 {
		if err := groupWriter(s, spec, in.Group); err != nil {
			return PrepareResult{}, err
		}
		id = groupID(spec, in.Group, in.Writer)
	}
	prep, err := p.Prepare(ctx, id, parts, in.Keep)
	if err != nil {
		return PrepareResult{}, classify(fmt.Errorf("prepare %s: %w", id, err))
	}
	return PrepareResult{End: end, Prepared: prep}, nil
}

// WritePartition reads exactly its range and writes it to the sink,
// streaming: records go from Kafka into the sink one by one and are never
// collected. Records the sink cannot take go to the dead-letter topic with
// context headers, produced before the sink commits, so a crash after the
// commit loses none. An OSS batch first takes its size from the worker's
// batch memory budget.
//
// V2: the range is [First, End), cut by FetchRanges. For MaxCompute, a
// result with Expired names sessions that expired before they were
// committed; the workflow prepares those again and repeats the write.
//
// V1 (inputs of the first build): without End the write cuts the range at
// the byte limit itself, and under tolerance stop ends it before the first
// rejected record (other than SkipAt), reported in Stopped.
func (a *Activities) WritePartition(ctx context.Context, in WriteInput) (WriteResult, error) {
	spec, err := a.spec(ctx, in.SpecInput)
	if err != nil {
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
	a.retried(ctx, spec, in.Partition)
	defer keepAlive(ctx)()
	if in.Version < V2 && in.End <= in.First {
		// V1 without a prepared cut: cut here, as the first build did.
		pl := Plan{Partition: in.Partition, First: in.First, PlanEnd: in.PlanEnd}
		if err := a.cut(ctx, kc, spec, s, &pl, in.SkipAt); err != nil {
			return WriteResult{}, classify(err)
		}
		in.End = pl.End
		if pl.Poison != nil && pl.End == in.First {
			return WriteResult{End: in.First, Stopped: pl.Poison}, nil
		}
		res, err := a.write(ctx, kc, spec, s, in)
		res.Stopped = pl.Poison
		return res, err
	}
	if len(in.Group) > 0 {
		return a.writeGroup(ctx, kc, spec, s, in)
	}
	if in.Version >= V3 && in.Batches > 0 {
		if _, prepared := s.(sink.Preparer); !prepared {
			return a.writeBatches(ctx, kc, spec, s, in)
		}
		return WriteResult{}, nonRetryable("InvalidSpec", fmt.Errorf("a V3 write of several batches needs a sink that buffers them (OSS), not %s", spec.Sink.Type))
	}
	return a.write(ctx, kc, spec, s, in)
}

// deadLetterChunk is how many dead letters a write holds before producing
// them.
const deadLetterChunk = 512

// beginBatch begins batch id in s, into the sessions prepared (nil for
// sinks that prepare none), with a fresh run of the spec's transform chain
// (nil without one; function steps get fresh sandboxes per batch), which
// the caller closes. It stamps id with the chain's hash.
func (a *Activities) beginBatch(ctx context.Context, spec *connector.Spec, s sink.Sink, id *sink.BatchID, prepared *sink.Prepared) (sink.Batch, *transform.Run, error) {
	chain, err := a.chain(spec)
	if err != nil {
		return nil, nil, err
	}
	id.Transform = chain.Hash()
	var run *transform.Run
	if !chain.Empty() {
		if run, err = chain.Begin(ctx); err != nil {
			return nil, nil, fmt.Errorf("begin the transform chain: %w", err)
		}
	}
	b, err := s.Begin(ctx, *id, prepared)
	if err != nil {
		if run != nil {
			_ = run.Close(ctx)
		}
		return nil, nil, classify(fmt.Errorf("begin %s: %w", *id, err))
	}
	return b, run, nil
}

// letterBuffer holds a write's dead letters and produces them to the
// dead-letter topic every deadLetterChunk, counting them per partition.
type letterBuffer struct {
	a      *Activities
	kc     *kafka.Client
	spec   *connector.Spec
	buf    []kafka.DeadLetter
	counts map[int32]int64 // produced, per origin partition
	total  int64           // produced
}

func (a *Activities) letters(kc *kafka.Client, spec *connector.Spec) *letterBuffer {
	return &letterBuffer{a: a, kc: kc, spec: spec, counts: map[int32]int64{}}
}

// add holds d (nil: nothing) and produces the held letters once there are
// deadLetterChunk of them.
func (l *letterBuffer) add(ctx context.Context, d *kafka.DeadLetter) error {
	if d == nil {
		return nil
	}
	l.buf = append(l.buf, *d)
	if len(l.buf) >= deadLetterChunk {
		return l.flush(ctx)
	}
	return nil
}

// flush produces the held letters.
func (l *letterBuffer) flush(ctx context.Context) error {
	if len(l.buf) == 0 {
		return nil
	}
	if err := l.kc.ProduceDeadLetters(ctx, l.spec.Errors.DeadLetterTopic, l.buf, int64(l.spec.Errors.MaxRecordBytes)); err != nil {
		return err
	}
	for _, d := range l.buf {
		l.a.metrics.DeadLettered(partition(l.spec, d.Record.Partition), d.Stage, 1)
		l.counts[d.Record.Partition]++
	}
	l.total += int64(len(l.buf))
	l.buf = l.buf[:0]
	return nil
}

func (a *Activities) write(ctx context.Context, kc *kafka.Client, spec *connector.Spec, s sink.Sink, in WriteInput) (WriteResult, error) {
	began := time.Now()
	mp := partition(spec, in.Partition)
	id := sink.BatchID{Connector: spec.Name, Topic: spec.Kafka.Topic, Partition: in.Partition, Start: in.Start, First: in.First, End: in.End,
		Writer: in.Writer, LegacyNames: in.Version < V2, Epoch: in.Epoch}
	if in.TopicID != "" {
		if err := checkTopicID(ctx, kc, spec.Kafka.Topic, in.TopicID); err != nil {
			return WriteResult{}, err
		}
	}
	if _, buffered := s.(sink.Preparer); !buffered {
		held, err := a.budget.Acquire(ctx, in.Bytes+in.End-in.First)
		if err != nil {
			return WriteResult{}, err
		}
		defer a.budget.Release(held)
	}
	b, run, err := a.beginBatch(ctx, spec, s, &id, in.Prepared)
	if err != nil {
		return WriteResult{}, err
	}
	if run != nil {
		defer func() { _ = run.Close(ctx) }()
	}
	dls := a.letters(kc, spec)
	err = kc.ReadRange(ctx, spec.Kafka.Topic, in.Partition, in.First, in.End, kafka.ReadOptions{}, func(r *kgo.Record) (bool, error) {
		dl, err := ApplyRecord(ctx, spec, run, b, r)
		if err != nil {
			return false, fmt.Errorf("write %s at offset %d: %w", id, r.Offset, err)
		}
		return true, dls.add(ctx, dl)
	})
	if err == nil {
		err = dls.flush(ctx)
	}
	if err != nil {
		b.Abort(ctx)
		return WriteResult{}, classify(err)
	}
	produced := dls.total
	if produced > 0 {
		activity.GetLogger(ctx).Warn("records sent to the dead-letter topic", "batch", id.String(), "count", produced, "topic", spec.Errors.DeadLetterTopic)
	}
	// The records read are the topic's the range was cut from only if the
	// topic still has the id it had then (ids are never reused).
	if in.TopicID != "" {
		if err := checkTopicID(ctx, kc, spec.Kafka.Topic, in.TopicID); err != nil {
			b.Abort(ctx)
			return WriteResult{}, err
		}
	}
	w, err := b.Commit(ctx)
	var exp *sink.ExpiredError
	if errors.As(err, &exp) {
		return WriteResult{End: in.First, DeadLetters: produced, Expired: exp.Expired, Committed: exp.Committed}, nil
	}
	if err != nil {
		b.Abort(ctx)
		return WriteResult{}, classify(fmt.Errorf("commit %s: %w", id, err))
	}
	res := WriteResult{End: id.End, Written: w, DeadLetters: produced}
	if run != nil {
		res.Transform = run.Counts()
	}
	a.metrics.Written(mp, metrics.Batch{Records: w.Records, Bytes: w.Bytes, Objects: int64(len(w.Objects)), Duration: time.Since(began)})
	a.metrics.Advanced(mp, id.End)
	for _, n := range res.Transform {
		a.metrics.Transformed(mp, n.Step, n.Type, n.In, n.Out, n.Dropped, n.Failed)
	}
	return res, nil
}

// ApplyRecord takes one Kafka record through the write's stages: the size
// limit, the transform chain (run; nil without one) and the batch. It
// returns the dead letter the record becomes, if any: a record over
// errors.maxRecordBytes (stage size), one that fails a step (stage
// transform, with the step), or one the sink refuses (its stage: route,
// format, convert) — the outputs before the refused one stay in the batch.
// An error fails the batch. verify --deep replays the same function.
func ApplyRecord(ctx context.Context, spec *connector.Spec, run *transform.Run, b sink.Batch, r *kgo.Record) (*kafka.DeadLetter, error) {
	if rej := sizeReject(r, int64(len(r.Key)+len(r.Value)), spec); rej != nil {
		return &kafka.DeadLetter{Record: r, Connector: spec.Name, Stage: rej.Stage, Err: rej.Err}, nil
	}
	tr := toRecord(r)
	outs := []*transform.Record{&tr}
	if run != nil {
		var err error
		if outs, err = run.Apply(ctx, &tr); err != nil {
			var se *transform.StepError
			if !errors.As(err, &se) {
				return nil, fmt.Errorf("transform: %w", err)
			}
			return &kafka.DeadLetter{Record: r, Connector: spec.Name, Stage: StageTransform, Step: se.Step, Err: se}, nil
		}
	}
	for _, out := range outs {
		if err := b.Add(ctx, out); err != nil {
			re, ok := sink.IsReject(err)
			if !ok {
				return nil, err
			}
			return &kafka.DeadLetter{Record: r, Connector: spec.Name, Stage: re.Stage, Err: re.Err}, nil
		}
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
