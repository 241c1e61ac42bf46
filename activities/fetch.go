package activities

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.temporal.io/sdk/activity"
	"golang.org/x/sync/errgroup"

	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/kafka"
	"github.com/dumpflow/dumpflow/sink"
	"github.com/dumpflow/dumpflow/transform"
)

// pollInterval is how often FetchRanges re-reads the partitions' offsets.
const pollInterval = 250 * time.Millisecond

// idleWait is how long a V3 FetchRanges waits for data before it returns
// empty plans (so the loop's state, and a status query, see fresh offsets
// at least that often). It stays well under the activity's start-to-close
// timeout (flush interval + 5 minutes).
const idleWait = 2 * time.Minute

// cutStallTimeout and cutErrorStallTimeout bound how long a plan's scan
// waits for a partition that makes no progress (quietly, or with its
// fetches failing) before it reports the partition's error and the next
// plan tries again: shorter than a write's, so one bad partition holds up
// the planning of its loop-mates for seconds at most.
const (
	cutStallTimeout      = 10 * time.Second
	cutErrorStallTimeout = 2 * time.Second
)

// FetchRanges waits until one of the cursors' partitions has a full batch
// (spec.Batch.MaxRecords) past its cursor, or has a backlog (a cursor still
// behind the high watermark after its last write, as when catching up), or
// the flush interval elapses, and plans [next, planEnd) for each partition
// with data, up to its last stable offset (reads are read_committed). It
// heartbeats while it waits.
//
// A V2 call then cuts each plan (Plan.End): it scans the range's records,
// streaming and keeping none, and ends the batch where it reaches
// batch.maxBytes, before a poison record under tolerance stop, or before
// the record that would open one destination partition too many. The cut
// goes into history with the plan, so the write — and every retry of it —
// writes exactly that range.
//
// A partition whose offsets cannot be listed, whose log start has passed
// its cursor (retention deleted data before it was dumped: Plan.DataLost),
// or whose cursor is above its high watermark gets Plan.Error; the other
// partitions are planned as usual.
//
// The offsets it polls are the worker's shared look-up (pollBounds): all
// the loops polling a topic on one worker cost one round of ListOffsets
// per 200 ms, not one per loop per poll.
//
// With in.TopicID set, FetchRanges fails with TopicRecreated when the
// topic's id is another one; it checks before it polls, before it cuts and
// after, so no plan or cut of a recreated topic is ever returned.
func (a *Activities) FetchRanges(ctx context.Context, in FetchRangesInput) (FetchRangesResult, error) {
	spec, err := a.spec(ctx, in.SpecInput)
	if err != nil {
		return FetchRangesResult{}, err
	}
	kc, err := a.kafka.For(spec)
	if err != nil {
		return FetchRangesResult{}, classify(err)
	}
	if in.TopicID != "" {
		if err := checkTopicID(ctx, kc, spec.Kafka.Topic, in.TopicID); err != nil {
			return FetchRangesResult{}, err
		}
	}
	if a.metrics != nil {
		ps := make([]int32, len(in.Cursors))
		for i, c := range in.Cursors {
			ps[i] = c.Partition
		}
		a.retried(ctx, spec, ps...)
	}
	maxOffsets := int64(spec.Batch.MaxRecords) * int64(max(1, in.Batches))
	start := time.Now()
	deadline := start.Add(spec.Batch.FlushInterval.D())
	idle := in.Version >= V3
	ticker := time.NewTicker(pollInterval)
	defer ticker.Stop()
	var res FetchRangesResult
	var polled time.Time
	for {
		polled = time.Now()
		bounds, err := pollBounds(ctx, kc, spec.Kafka.Topic, in.Cursors) // shared by the worker's loops
		if err != nil {
			return FetchRangesResult{}, classify(err)
		}
		res = FetchRangesResult{}
		full, data := false, false
		for _, c := range in.Cursors {
			p, ready := plan(c, bounds[c.Partition], int64(spec.Batch.MaxRecords), maxOffsets, in.Version)
			full = full || ready
			// Records past the cursor that cannot be planned yet (an open
			// transaction) end the idle wait too: the plan carries the
			// partition's offsets, so status shows the lag.
			data = data || p.PlanEnd > p.First || p.Error != "" || p.DataLost != nil || p.HighWatermark > c.Next
			res.Plans = append(res.Plans, p)
			if b, ok := bounds[c.Partition]; ok && b.Err == nil {
				a.metrics.Observed(partition(spec, c.Partition), c.Next, b.End, "")
			}
		}
		if idle && data {
			// V3: the flush interval runs from the previous plan, or from
			// the first data seen when that is later.
			idle = false
			deadline = time.Now().Add(spec.Batch.FlushInterval.D())
			if in.Since != nil {
				deadline = in.Since.Add(spec.Batch.FlushInterval.D())
			}
		}
		if idle && time.Since(start) >= idleWait {
			break
		}
		if full || !idle && !time.Now().Before(deadline) {
			break
		}
		activity.RecordHeartbeat(ctx)
		select {
		case <-ctx.Done():
			return FetchRangesResult{}, ctx.Err()
		case <-ticker.C:
		}
	}
	// The topic may have been deleted and recreated while we polled: the
	// bounds would then be the new topic's. Check again before cutting.
	if in.TopicID != "" {
		if err := checkTopicID(ctx, kc, spec.Kafka.Topic, in.TopicID); err != nil {
			return FetchRangesResult{}, err
		}
	}
	if in.Version >= V3 {
		at := polled.UTC()
		res.At = &at
	}
	if in.Version < V2 || in.Batches > 0 {
		// V1 writes cut their ranges; V3 uncut plans are cut by their write.
		return res, nil
	}
	s, err := a.sink(ctx, spec)
	if err != nil {
		return FetchRangesResult{}, classify(err)
	}
	if c, ok := s.(sink.Checker); ok {
		if err := c.Check(ctx); err != nil { // loads the table, so rows can be converted
			return FetchRangesResult{}, classify(err)
		}
	}
	defer keepAlive(ctx)()
	// The partitions are cut side by side, each read bounded by a short
	// stall: a partition whose broker stalls gets a plan error while the
	// others are planned, instead of holding them up.
	g := errgroup.Group{}
	g.SetLimit(4)
	for i := range res.Plans {
		p := &res.Plans[i]
		if p.PlanEnd <= p.First || p.Error != "" || p.DataLost != nil {
			continue
		}
		g.Go(func() error {
			if err := a.cut(ctx, kc, spec, s, p, skipAt(in.Cursors, p.Partition)); err != nil && ctx.Err() == nil {
				p.Error = errorText(err)
			}
			return nil
		})
	}
	_ = g.Wait()
	if ctx.Err() != nil {
		return FetchRangesResult{}, ctx.Err()
	}
	// And after cutting: a topic that still has the id the connector
	// started on now has had it all along (ids are never reused), so the
	// plans and cuts are of its records.
	if in.TopicID != "" {
		if err := checkTopicID(ctx, kc, spec.Kafka.Topic, in.TopicID); err != nil {
			return FetchRangesResult{}, err
		}
	}
	return res, nil
}

// plan plans one cursor's range from its partition's offsets; ready says
// the partition should not wait for the flush interval.
//
// A plan spans up to maxOffsets offsets (one batch's maxRecords, or V3's
// several batches) and never passes c.Until when that is set; ready means a
// full batch (maxRecords) is there.
func plan(c Cursor, b kafka.Bounds, maxRecords, maxOffsets int64, version int) (Plan, bool) {
	p := Plan{Partition: c.Partition, First: c.Next, PlanEnd: c.Next, HighWatermark: b.End, LogStart: b.Start, Stable: b.Stable}
	if version < V2 {
		if avail := b.End - c.Next; avail > 0 {
			p.PlanEnd = c.Next + min(avail, maxRecords)
			return p, avail >= maxRecords || c.Backlog
		}
		return p, false
	}
	switch {
	case b.Err != nil:
		p.Error = fmt.Sprintf("offsets of partition %d: %v", c.Partition, b.Err)
		return p, false
	case c.Next < b.Start:
		p.DataLost = &sink.Range{First: c.Next, End: b.Start}
		return p, true
	case c.Next > b.End:
		p.Error = fmt.Sprintf("next offset %d is above the partition's high watermark %d: the topic was deleted and recreated, or its log was truncated (an unclean leader election); records below %d would be skipped, so the partition waits for an operator", c.Next, b.End, c.Next)
		return p, false
	}
	end := min(b.Stable, b.End)
	if b.Stable <= 0 {
		end = b.End
	}
	if c.Until > c.Next {
		end = min(end, c.Until)
	}
	if avail := end - c.Next; avail > 0 {
		p.PlanEnd = c.Next + min(avail, maxOffsets)
		return p, avail >= maxRecords || c.Backlog || c.Until > 0
	}
	return p, false
}

func skipAt(cs []Cursor, partition int32) int64 {
	for _, c := range cs {
		if c.Partition == partition {
			return c.SkipAt
		}
	}
	return -1
}

// cut scans [p.First, p.PlanEnd) and sets p.End, Records, Bytes, Parts and
// Poison (see FetchRanges). It keeps no record. The transform chain runs
// in the scan when the plan depends on its output: for MaxCompute (the
// destination partitions and conversions are those of the chain's output)
// and under tolerance stop (a record that fails a step is a poison record).
func (a *Activities) cut(ctx context.Context, kc *kafka.Client, spec *connector.Spec, s sink.Sink, p *Plan, skip int64) error {
	rej, _ := s.(sink.Rejecter)
	prep, _ := s.(sink.Preparer)
	stop := spec.Errors.Tolerance == connector.ToleranceStop
	maxBytes := int64(spec.Batch.MaxBytes)
	seen := map[string]bool{}
	p.End = p.PlanEnd
	chain, err := a.chain(spec)
	if err != nil {
		return err
	}
	var run *transform.Run
	if !chain.Empty() && (prep != nil || stop) {
		if run, err = chain.Begin(ctx); err != nil {
			return err
		}
		defer func() { _ = run.Close(ctx) }()
	}
	first := true
	var pts []string // the partitions of a record's outputs, when the checks found them
	err = kc.ReadRange(ctx, spec.Kafka.Topic, p.Partition, p.First, p.PlanEnd, kafka.ReadOptions{StallTimeout: cutStallTimeout, ErrorStallTimeout: cutErrorStallTimeout}, func(r *kgo.Record) (bool, error) {
		if first {
			// The oldest record not yet written: lag seconds is its age.
			first = false
			a.metrics.Oldest(partition(spec, p.Partition), p.First, r.Timestamp)
		}
		tr := toRecord(r)
		size := int64(len(r.Key) + len(r.Value))
		reject := sizeReject(r, size, spec)
		outs := []*transform.Record{&tr}
		if reject == nil && run != nil {
			var err error
			if outs, err = run.Apply(ctx, &tr); err != nil {
				var se *transform.StepError
				if !errors.As(err, &se) {
					return false, err
				}
				reject = &sink.RejectError{Stage: StageTransform, Err: se}
			}
		}
		pts = pts[:0]
		for _, out := range outs {
			// The sink's own checks matter only when they end the plan
			// (tolerance stop) or choose its sessions (MaxCompute).
			if reject != nil || rej == nil || !(stop || prep != nil) {
				break
			}
			var err error
			if prep != nil {
				// A preparing sink's PartitionOf is its Reject check
				// too (sink.Preparer): one call for both.
				var pt string
				pt, err = prep.PartitionOf(out)
				pts = append(pts, pt)
			} else {
				err = rej.Reject(out)
			}
			if err != nil {
				re, ok := sink.IsReject(err)
				if !ok {
					return false, err
				}
				reject = re
			}
		}
		if reject != nil && stop && r.Offset != skip {
			p.End = r.Offset
			p.Poison = &Poison{Offset: r.Offset, Stage: reject.Stage, Error: transform.ShortPrefix([]byte(reject.Err.Error()), 512)}
			return false, nil
		}
		if reject == nil && prep != nil {
			for i, out := range outs {
				var pt string
				if i < len(pts) {
					pt = pts[i] // checked above
				} else {
					var err error
					if pt, err = prep.PartitionOf(out); err != nil {
						return false, err
					}
				}
				if !seen[pt] {
					if len(p.Parts) == MaxDestinationPartitions {
						p.End = r.Offset
						return false, nil
					}
					seen[pt] = true
					p.Parts = append(p.Parts, pt)
				}
			}
		}
		p.Records++
		p.Bytes += size
		if p.Bytes >= maxBytes {
			p.End = r.Offset + 1
			return false, nil
		}
		return true, nil
	})
	if dl, ok := kafka.IsDataLost(err); ok {
		p.DataLost = &sink.Range{First: dl.From, End: dl.LogStart}
		p.End, p.Records, p.Bytes, p.Parts, p.Poison = 0, 0, 0, nil, nil
		return nil
	}
	return err
}

// sizeReject rejects a record larger than errors.maxRecordBytes.
func sizeReject(r *kgo.Record, size int64, spec *connector.Spec) *sink.RejectError {
	if size <= int64(spec.Errors.MaxRecordBytes) {
		return nil
	}
	return &sink.RejectError{Stage: "size", Err: fmt.Errorf("record %s[%d]@%d is %d bytes, over errors.maxRecordBytes %s", r.Topic, r.Partition, r.Offset, size, spec.Errors.MaxRecordBytes)}
}

// checkTopicID fails when the topic now has another id than the one the
// connector started with: it was deleted and recreated, and its offsets
// mean other records.
func checkTopicID(ctx context.Context, kc *kafka.Client, topic, want string) error {
	got, err := kc.TopicID(ctx, topic)
	if err != nil {
		return classify(err)
	}
	if got != "" && got != want {
		return nonRetryable("TopicRecreated", fmt.Errorf("topic %q was deleted and recreated (id %s, the connector started on %s): its offsets now name other records, so the connector does not go on by itself", topic, got, want))
	}
	return nil
}

// errorText is an error's message for status and history: short, without
// repeating wrapping.
func errorText(err error) string {
	msg := err.Error()
	var se *kafka.StallError
	if errors.As(err, &se) {
		msg = se.Error()
	}
	const max = 512
	if len(msg) > max {
		msg = msg[:max] + "…"
	}
	return msg
}
