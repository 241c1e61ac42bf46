package activities

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.temporal.io/sdk/activity"

	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/kafka"
	"github.com/dumpflow/dumpflow/metrics"
	"github.com/dumpflow/dumpflow/sink"
	"github.com/dumpflow/dumpflow/transform"
)

// writeBatches is WritePartition V3: it reads [First, PlanEnd) once and
// writes it as consecutive batches, up to in.Batches of them. Each batch is
// cut where a V2 scan would cut it: it spans at most batch.maxRecords
// offsets, ends after the record that brings its key and value bytes to
// batch.maxBytes, and the last one ends at PlanEnd. The cut depends only on
// the records, which Kafka never changes, and on the spec the input names,
// so every attempt cuts the same batches and each batch is the very batch
// (same first offset, same end, same object) a V2 plan would have written.
//
// Reading and committing overlap: while one batch commits, the next one
// fills, so a write holds at most two batches of the worker's batch memory
// budget. Batches commit in order. Each takes batch.maxBytes of the budget
// when it begins (its size is not known before it is read); a batch may
// pass that by its last record.
//
// A retry starts where the sink's data for the partition ends (sink.Resumer)
// when that is inside the range: the batches an earlier attempt committed
// are there, and the meta object, which has moved past them, would refuse
// them again; the result counts those too (sink.Holder), so status and
// history count every record once. When a batch fails after others were committed, the result
// reports those (End, Failed) instead of an error, so the workflow moves
// the partition past them and the next write starts at the failed batch.
func (a *Activities) writeBatches(ctx context.Context, kc *kafka.Client, spec *connector.Spec, s sink.Sink, in WriteInput) (WriteResult, error) {
	from := in.First
	var held sink.Written // what earlier attempts committed
	if activity.IsActivity(ctx) && activity.GetInfo(ctx).Attempt > 1 {
		if r, ok := s.(sink.Resumer); ok {
			rp, found, err := r.Resume(ctx, spec.Name, spec.Kafka.Topic, in.Partition, in.Writer)
			if err != nil {
				return WriteResult{}, classify(fmt.Errorf("find where partition %d's data ends: %w", in.Partition, err))
			}
			if found && rp.Epoch == in.Epoch && rp.Next > from && rp.Next <= in.PlanEnd {
				from = rp.Next
			}
		}
		if h, ok := s.(sink.Holder); ok && from > in.First {
			var err error
			if held, err = h.Held(ctx, spec.Name, spec.Kafka.Topic, in.Partition, in.First, from); err != nil {
				return WriteResult{}, classify(fmt.Errorf("count what partition %d's earlier attempt wrote: %w", in.Partition, err))
			}
		}
	}
	if from >= in.PlanEnd {
		return WriteResult{End: from, Written: held, Batches: len(held.Objects)}, nil
	}
	if spec.Errors.Tolerance == connector.ToleranceStop {
		// The spec changed to tolerance stop after the range was planned:
		// write one batch the V2 way, ending before a poison record.
		return a.writeCut(ctx, kc, spec, s, in, from)
	}
	if in.TopicID != "" {
		if err := checkTopicID(ctx, kc, spec.Kafka.Topic, in.TopicID); err != nil {
			return WriteResult{}, err
		}
	}
	chain, err := a.chain(spec)
	if err != nil {
		return WriteResult{}, err
	}
	w := &batchWriter{
		ctx: ctx, a: a, kc: kc, spec: spec, s: s, in: in, chain: chain,
		mp:         partition(spec, in.Partition),
		maxOffsets: int64(spec.Batch.MaxRecords),
		maxBytes:   int64(spec.Batch.MaxBytes),
		next:       from,
		queue:      make(chan *filling),
		res:        WriteResult{End: from, Written: held, Batches: len(held.Objects)},
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.commitAll(ctx)
	}()
	readErr := kc.ReadRange(ctx, spec.Kafka.Topic, in.Partition, from, in.PlanEnd, kafka.ReadOptions{}, w.add)
	if readErr == nil && !w.stopped() && w.next < in.PlanEnd {
		// The range's last batch ends at PlanEnd (offsets past its last
		// record hold transaction markers or aborted records).
		readErr = w.hand(ctx, in.PlanEnd)
	}
	if w.cur != nil {
		w.discard(w.cur)
		w.cur = nil
	}
	close(w.queue)
	<-done
	w.mu.Lock()
	defer w.mu.Unlock()
	err = readErr
	if w.commitErr != nil {
		err = w.commitErr
	}
	if err != nil {
		if w.res.End > in.First {
			w.res.Failed = errorText(err)
			return w.res, nil
		}
		return WriteResult{}, classify(err)
	}
	return w.res, nil
}

// writeCut writes one batch from from as a V2 write does, cut by a scan
// first (which ends it before a poison record under tolerance stop).
func (a *Activities) writeCut(ctx context.Context, kc *kafka.Client, spec *connector.Spec, s sink.Sink, in WriteInput, from int64) (WriteResult, error) {
	pl := Plan{Partition: in.Partition, First: from, PlanEnd: min(in.PlanEnd, from+int64(spec.Batch.MaxRecords))}
	if err := a.cut(ctx, kc, spec, s, &pl, in.SkipAt); err != nil {
		return WriteResult{}, classify(err)
	}
	if pl.DataLost != nil {
		return WriteResult{}, classify(&kafka.DataLostError{Topic: spec.Kafka.Topic, Partition: in.Partition, From: pl.DataLost.First, LogStart: pl.DataLost.End})
	}
	if pl.Poison != nil && pl.End == from {
		return WriteResult{End: from, Stopped: pl.Poison}, nil
	}
	one := in
	one.Version, one.First, one.End, one.Bytes, one.PlanEnd = V2, from, pl.End, pl.Bytes, 0
	res, err := a.write(ctx, kc, spec, s, one)
	res.Stopped = pl.Poison
	if err == nil {
		res.Batches = 1
	}
	return res, err
}

// batchWriter cuts and fills batches (add, on ReadRange's goroutine) and
// commits them in order (commitAll, on its own goroutine).
type batchWriter struct {
	ctx        context.Context
	a          *Activities
	kc         *kafka.Client
	spec       *connector.Spec
	s          sink.Sink
	in         WriteInput
	chain      *transform.Chain
	mp         metrics.Partition
	maxOffsets int64
	maxBytes   int64

	// Reader side.
	cur    *filling
	next   int64 // where the next batch begins
	handed int   // batches handed to the committer

	queue chan *filling

	mu        sync.Mutex
	res       WriteResult
	commitErr error
}

// filling is a batch being filled or waiting for its commit.
type filling struct {
	id     sink.BatchID
	b      sink.Batch
	run    *transform.Run
	held   int64
	bytes  int64
	dls    []kafka.DeadLetter
	dead   int64 // dead letters produced
	counts []transform.StepCounts
	began  time.Time
	opened bool
}

func (w *batchWriter) stopped() bool {
	if w.handed >= w.in.Batches {
		return true
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.commitErr != nil
}

// begin opens the batch that starts at w.next.
func (w *batchWriter) begin(ctx context.Context) error {
	f := &filling{began: time.Now()}
	f.id = sink.BatchID{Connector: w.spec.Name, Topic: w.spec.Kafka.Topic, Partition: w.in.Partition, Start: w.in.Start, First: w.next,
		End: min(w.in.PlanEnd, w.next+w.maxOffsets), Writer: w.in.Writer, Epoch: w.in.Epoch, Transform: w.chain.Hash()}
	held, err := w.a.budget.Acquire(ctx, w.maxBytes+w.maxOffsets)
	if err != nil {
		return err
	}
	f.held = held
	if !w.chain.Empty() {
		// A fresh run per batch: function steps get fresh sandboxes.
		if f.run, err = w.chain.Begin(ctx); err != nil {
			w.a.budget.Release(held)
			return fmt.Errorf("begin the transform chain: %w", err)
		}
	}
	if f.b, err = w.s.Begin(ctx, f.id, nil); err != nil {
		w.discard(f)
		return fmt.Errorf("begin %s: %w", f.id, err)
	}
	w.cur = f
	return nil
}

// add is ReadRange's callback.
func (w *batchWriter) add(r *kgo.Record) (bool, error) {
	ctx := w.ctx
	// Offsets past the current batch's bound (a gap of transaction
	// markers or aborted records) close it, as a V2 plan would end there.
	for r.Offset >= w.next+w.maxOffsets {
		if err := w.hand(ctx, w.next+w.maxOffsets); err != nil || w.stopped() {
			return false, err
		}
	}
	if w.stopped() {
		return false, nil
	}
	if w.cur == nil {
		if err := w.begin(ctx); err != nil {
			return false, err
		}
	}
	f := w.cur
	if !f.opened {
		// The oldest record not yet written: lag seconds is its age.
		f.opened = true
		w.a.metrics.Oldest(w.mp, f.id.First, r.Timestamp)
	}
	dl, err := ApplyRecord(ctx, w.spec, f.run, f.b, r)
	if err != nil {
		return false, fmt.Errorf("write %s at offset %d: %w", f.id, r.Offset, err)
	}
	if dl != nil {
		f.dls = append(f.dls, *dl)
		if len(f.dls) >= deadLetterChunk {
			if err := w.flushDeadLetters(ctx, f); err != nil {
				return false, err
			}
		}
	}
	f.bytes += int64(len(r.Key) + len(r.Value))
	if f.bytes >= w.maxBytes || r.Offset+1 >= f.id.First+w.maxOffsets {
		if err := w.hand(ctx, r.Offset+1); err != nil {
			return false, err
		}
		return !w.stopped(), nil
	}
	return true, nil
}

// hand ends the current batch (opening an empty one if none is open) at
// end and passes it to the committer; its dead letters are produced first,
// so they are in the dead-letter topic before the batch commits.
func (w *batchWriter) hand(ctx context.Context, end int64) error {
	if w.cur == nil {
		if err := w.begin(ctx); err != nil {
			return err
		}
	}
	f := w.cur
	w.cur = nil
	f.id.End = end
	if c, ok := f.b.(sink.Cutter); ok {
		c.Cut(end)
	}
	if err := w.flushDeadLetters(ctx, f); err != nil {
		w.discard(f)
		return err
	}
	if f.run != nil {
		f.counts = f.run.Counts()
		_ = f.run.Close(ctx)
		f.run = nil
	}
	w.next = end
	w.handed++
	select {
	case w.queue <- f:
		return nil
	case <-ctx.Done():
		w.discard(f)
		return ctx.Err()
	}
}

func (w *batchWriter) flushDeadLetters(ctx context.Context, f *filling) error {
	if len(f.dls) == 0 {
		return nil
	}
	if err := w.kc.ProduceDeadLetters(ctx, w.spec.Errors.DeadLetterTopic, f.dls, int64(w.spec.Errors.MaxRecordBytes)); err != nil {
		return err
	}
	for _, d := range f.dls {
		w.a.metrics.DeadLettered(w.mp, d.Stage, 1)
	}
	f.dead += int64(len(f.dls))
	f.dls = f.dls[:0]
	return nil
}

// discard drops a batch that will not be committed.
func (w *batchWriter) discard(f *filling) {
	if f.run != nil {
		_ = f.run.Close(w.ctx)
		f.run = nil
	}
	if f.b != nil {
		f.b.Abort(w.ctx)
	}
	w.a.budget.Release(f.held)
	f.held = 0
}

// commitAll commits the handed batches in order; after a failure it
// discards the rest.
func (w *batchWriter) commitAll(ctx context.Context) {
	for f := range w.queue {
		w.mu.Lock()
		failed := w.commitErr != nil
		w.mu.Unlock()
		if failed {
			w.discard(f)
			continue
		}
		err := w.commit(ctx, f)
		if err != nil {
			w.mu.Lock()
			w.commitErr = err
			w.mu.Unlock()
		}
	}
}

func (w *batchWriter) commit(ctx context.Context, f *filling) error {
	defer w.discard(f) // Abort after Commit releases the buffers
	if w.in.TopicID != "" {
		// The records read are the topic's the range was planned on only if
		// the topic still has the id it had then (ids are never reused).
		if err := checkTopicID(ctx, w.kc, w.spec.Kafka.Topic, w.in.TopicID); err != nil {
			return err
		}
	}
	written, err := f.b.Commit(ctx)
	if err != nil {
		return classify(fmt.Errorf("commit %s: %w", f.id, err))
	}
	if f.dead > 0 {
		activity.GetLogger(ctx).Warn("records sent to the dead-letter topic", "batch", f.id.String(), "count", f.dead, "topic", w.spec.Errors.DeadLetterTopic)
	}
	w.mu.Lock()
	r := &w.res
	r.End = f.id.End
	r.Batches++
	r.Written.Objects = append(r.Written.Objects, written.Objects...)
	r.Written.Records += written.Records
	r.Written.Bytes += written.Bytes
	r.DeadLetters += f.dead
	r.Transform = addCounts(r.Transform, f.counts)
	w.mu.Unlock()
	w.a.metrics.Written(w.mp, metrics.Batch{Records: written.Records, Bytes: written.Bytes, Objects: int64(len(written.Objects)), Duration: time.Since(f.began)})
	w.a.metrics.Advanced(w.mp, f.id.End)
	for _, n := range f.counts {
		w.a.metrics.Transformed(w.mp, n.Step, n.Type, n.In, n.Out, n.Dropped, n.Failed)
	}
	return nil
}
