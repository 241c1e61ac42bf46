package workflows

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/dumpflow/dumpflow/activities"
	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/sink"
)

// maxGapsKept is how many declared gaps a partition's state keeps (the
// sink's ledger keeps them all).
const maxGapsKept = 8

// fetchErrorPause is how long a loop waits after a failed fetch.
const fetchErrorPause = 10 * time.Second

// loop runs loop i: fetch-range → [prepare] → write-partition for each of
// its partitions with data, then commit-offset, until the run drains for
// continue-as-new or is cancelled. A partition's range is planned once (by
// FetchRanges, recorded in history) and kept in Pending until it is
// written, routed or the partition is resumed past it. A V2 range is cut
// by FetchRanges; a batched run's OSS range under tolerance continue is
// uncut, and its writes cut it into batches as they read it (see
// writeUncut), committing group offsets when the loop has caught up.
func (c *conn) loop(ctx workflow.Context, i int) {
	toCommit := map[int32]activities.Cursor{} // moved, not yet committed (batched writes)
	var lastPlan *time.Time                   // when the loop's last plan was made (batched writes)
	lastCommit := workflow.Now(ctx)
	// flush commits what moved; the loop calls it before it returns, so a
	// cancelled connector's group offsets are where its writes ended.
	flush := func() {
		if len(toCommit) > 0 {
			c.commitMoved(ctx, slices.SortedFunc(maps.Values(toCommit), func(a, b activities.Cursor) int { return cmp.Compare(a.Partition, b.Partition) }))
			clear(toCommit)
			lastCommit = workflow.Now(ctx)
		}
	}
	// settle notes what moved and commits when it is due: group offsets
	// mirror the sink, where a connector resumes, so a batched run commits
	// them when the loop has caught up, or every commitInterval while it
	// works through a backlog, not after every write.
	settle := func(moved []activities.Cursor) {
		for _, m := range moved {
			toCommit[m.Partition] = m
		}
		if !behind(c.group(i)) || workflow.Now(ctx).Sub(lastCommit) >= commitInterval || c.draining {
			flush()
		}
	}
	for {
		// Await returns nil when its condition already holds, even on a
		// cancelled context: check the context too, or a cancelled loop with
		// work at hand would spin without yielding. The top of an iteration
		// is the batch boundary where an update-spec takes effect: a loop
		// past the new concurrency ends there.
		c.idle++
		err := workflow.Await(ctx, func() bool {
			return c.draining || i >= c.concurrency() || (!c.st.Paused && !c.settingOffsets && !c.holding && c.runnable(c.group(i)))
		})
		c.idle--
		if err != nil || c.draining || ctx.Err() != nil || i >= c.concurrency() {
			flush()
			return
		}
		fetchCtx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			StartToCloseTimeout: c.spec.Batch.FlushInterval.D() + 5*time.Minute,
			HeartbeatTimeout:    20 * time.Second,
			RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: 10 * time.Second, MaximumAttempts: 3,
				NonRetryableErrorTypes: []string{"InvalidSpec", "SpecUnavailable", "TopicRecreated", "NoSuchTopic"}},
		})
		group := c.group(i)
		var moved []activities.Cursor
		// Ranges already cut are finished first; so are acknowledged losses.
		var pending []*PartitionState
		for _, p := range group {
			switch {
			case p.AckBy != "" && p.DataLost != nil:
				c.declareGap(ctx, p)
			case p.Pending != nil && !p.Stopped && p.DataLost == nil && !c.st.Paused:
				pending = append(pending, p)
			}
		}
		moved = append(moved, c.writeRanges(ctx, pending)...)
		batched := c.batchedWrites(ctx)
		if batched {
			// A batched run's FetchRanges may wait long for data: what
			// moved is committed before it when it is due.
			settle(moved)
			moved = nil
		}
		var cursors []activities.Cursor
		for _, p := range group {
			// A batched run plans the group's other partitions once the rest
			// of an uncut range is written: its FetchRanges may wait for
			// data while that range has work at hand.
			if fetchable(p) && !(batched && c.hasWork(group)) {
				cursors = append(cursors, activities.Cursor{Partition: p.Partition, Next: p.Next, Start: p.Start, Backlog: p.Backlog, SkipAt: p.SkipAt})
			}
		}
		if len(cursors) > 0 && !c.st.Paused && !c.draining && ctx.Err() == nil {
			var fetched activities.FetchRangesResult
			in := activities.FetchRangesInput{
				SpecInput: activities.SpecInput{SpecRef: c.specRef}, Cursors: cursors, Version: activities.V2, TopicID: c.st.TopicID,
			}
			if batched {
				in.Version = activities.V3
				in.Since = lastPlan
				if c.uncut() {
					in.Batches = planBatches
				}
			}
			err := c.fetch(ctx, fetchCtx, i, in, batched).Get(ctx, &fetched)
			if batched && err == nil && anyPlanned(fetched.Plans) {
				// The next flush interval runs from when these plans' offsets
				// were read (the plan's cut and the write come after).
				at := workflow.Now(ctx)
				if fetched.At != nil && fetched.At.Before(at) {
					at = *fetched.At
				}
				lastPlan = &at
			}
			switch {
			case err != nil && batched && temporal.IsCanceledError(err) && ctx.Err() == nil:
				// Cancelled by the loop's watcher: something else to do.
			case err != nil:
				if ctx.Err() != nil {
					flush()
					return
				}
				c.fetchFailed(group, err)
				if workflow.Sleep(ctx, fetchErrorPause) != nil {
					flush()
					return
				}
			}
			var planned []*PartitionState
			for _, plan := range fetched.Plans {
				if p := find(group, plan.Partition); p != nil && c.planned(p, plan, in.Batches > 0) {
					planned = append(planned, p)
				}
			}
			moved = append(moved, c.writeRanges(ctx, planned)...)
		}
		if !c.batchedWrites(ctx) {
			c.commitMoved(ctx, moved)
		} else {
			settle(moved)
		}
		c.checkHistory(ctx)
	}
}

// Batched writes (V3, gated by versionBatchedWrites).
const (
	// planBatches is how many batches' worth of offsets (batch.maxRecords
	// each) one uncut plan spans; writeBatches how many batches one
	// WritePartition writes: a backlog costs one FetchRanges per four
	// writes and one write per eight batches.
	planBatches  = 32
	writeBatches = 8
	// commitInterval is how often a loop working through a backlog
	// commits its partitions' offsets to the consumer group.
	commitInterval = 10 * time.Second
)

// versionBatchedWrites is the GetVersion change id of the runs that plan
// uncut ranges and write several batches per WritePartition (OSS, tolerance
// continue), wait in FetchRanges for data instead of returning empty plans
// every flush interval, and commit group offsets when caught up or every
// commitInterval: a tenth of the history per GB of the runs before.
const versionBatchedWrites = "batched-writes"

// batchedWrites reports whether this run uses batched writes (see
// versionBatchedWrites). The version is decided once per run.
func (c *conn) batchedWrites(ctx workflow.Context) bool {
	if c.batched == nil {
		v := workflow.GetVersion(ctx, versionBatchedWrites, workflow.DefaultVersion, 1) == 1
		c.batched = &v
	}
	return *c.batched
}

// uncut says the connector's ranges may be planned uncut (V3): its sink
// buffers batches (OSS) and a failed record goes to the dead-letter topic
// (a plan under tolerance stop must end before a poison record, and a
// MaxCompute plan names its destination partitions, so both are cut by a
// scan).
func (c *conn) uncut() bool {
	return c.spec.Sink.Type != connector.SinkMaxCompute && c.spec.Errors.Tolerance != connector.ToleranceStop
}

// fetch starts the loop's FetchRanges. A batched run's FetchRanges waits
// for data, so the loop cancels it when it has something else to do: a
// pause, offsets being set, a spec update (which may also end the loop),
// continue-as-new.
func (c *conn) fetch(ctx, fetchCtx workflow.Context, i int, in activities.FetchRangesInput, batched bool) workflow.Future {
	if !batched {
		return workflow.ExecuteActivity(fetchCtx, (*activities.Activities).FetchRanges, in)
	}
	fctx, cancel := workflow.WithCancel(fetchCtx)
	f := workflow.ExecuteActivity(fctx, (*activities.Activities).FetchRanges, in)
	ref := c.specRef
	wakes := c.fetchWakes(ctx)
	workflow.Go(ctx, func(ctx workflow.Context) {
		_ = workflow.Await(ctx, func() bool {
			return f.IsReady() || c.draining || c.st.Paused || c.settingOffsets || c.holding || c.specRef != ref || i >= c.concurrency() ||
				wakes && c.newWork(c.group(i), in.Cursors)
		})
		if !f.IsReady() {
			cancel()
		}
	})
	return f
}

// versionFetchWakes is the GetVersion change id of the runs whose waiting
// FetchRanges is also cancelled when one of the loop's partitions it does
// not plan gets work: a partition resumed past a poison record, a loss
// acknowledged, a partition newly discovered. Runs before it left such a
// partition waiting until its loop-mates had data.
const versionFetchWakes = "fetch-wakes"

// fetchWakes reports whether this run cancels a waiting FetchRanges for
// work it does not plan (see versionFetchWakes). Decided once per run.
func (c *conn) fetchWakes(ctx workflow.Context) bool {
	if c.wakes == nil {
		v := workflow.GetVersion(ctx, versionFetchWakes, workflow.DefaultVersion, 1) == 1
		c.wakes = &v
	}
	return *c.wakes
}

// newWork says a partition of group that cursors (a FetchRanges in
// flight) do not plan has work now.
func (c *conn) newWork(group []*PartitionState, cursors []activities.Cursor) bool {
	for _, p := range group {
		planned := slices.ContainsFunc(cursors, func(cu activities.Cursor) bool { return cu.Partition == p.Partition })
		switch {
		case fetchable(p) && !planned,
			p.Pending != nil && !p.Stopped && p.DataLost == nil && !c.follower(p),
			p.AckBy != "" && p.DataLost != nil:
			return true
		}
	}
	return false
}

// commitMoved commits the cursors of partitions that moved.
func (c *conn) commitMoved(ctx workflow.Context, moved []activities.Cursor) {
	if len(moved) == 0 {
		return
	}
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	if err := c.commit(dctx, moved); err != nil {
		c.commitErr = "commit offsets: " + errMessage(err) + " (the sink holds the data and is where a connector resumes; the group offset catches up at the next commit)"
	} else {
		c.commitErr = ""
	}
}

// anyPlanned says a plan has a range.
func anyPlanned(plans []activities.Plan) bool {
	for _, p := range plans {
		if p.PlanEnd > p.First {
			return true
		}
	}
	return false
}

// hasWork says a partition of the group has a range in hand that it can
// write now.
func (c *conn) hasWork(group []*PartitionState) bool {
	for _, p := range group {
		if p.Pending != nil && !p.Stopped && p.DataLost == nil && !c.follower(p) {
			return true
		}
	}
	return false
}

// behind says a partition of the group has a backlog: a range in hand or
// data past its cursor when it was last planned.
func behind(group []*PartitionState) bool {
	for _, p := range group {
		if !p.Stopped && p.DataLost == nil && (p.Pending != nil || p.Backlog) {
			return true
		}
	}
	return false
}

func cursor(p *PartitionState) activities.Cursor {
	return activities.Cursor{Partition: p.Partition, Next: p.Next, Start: p.Start}
}

// fetchable says a partition needs a plan: it is not parked and has no
// range in hand.
func fetchable(p *PartitionState) bool {
	return !p.Stopped && p.DataLost == nil && p.Pending == nil
}

func (c *conn) runnable(group []*PartitionState) bool {
	for _, p := range group {
		if fetchable(p) || p.Pending != nil && !p.Stopped && p.DataLost == nil && !c.follower(p) || p.AckBy != "" && p.DataLost != nil {
			return true
		}
	}
	return false
}

func find(group []*PartitionState, partition int32) *PartitionState {
	for _, p := range group {
		if p.Partition == partition {
			return p
		}
	}
	return nil
}

// fetchFailed records a failed FetchRanges on the group's partitions. A
// recreated topic parks them: its offsets now name other records.
func (c *conn) fetchFailed(group []*PartitionState, err error) {
	msg := "fetch: " + errMessage(err)
	for _, p := range group {
		if !fetchable(p) {
			continue
		}
		p.LastError = msg
		p.FetchErrors++
		if errType(err) == "TopicRecreated" {
			p.Stopped = true
			p.LastError += "; reset the connector's offsets, then signal resume"
		}
	}
}

// planned takes a partition's plan; it reports whether the partition now
// has a range to write.
//
// An uncut plan (V3) becomes an uncut range [First, PlanEnd).
func (c *conn) planned(p *PartitionState, plan activities.Plan, uncut bool) bool {
	p.HighWatermark, p.LogStart, p.Stable = plan.HighWatermark, plan.LogStart, plan.Stable
	switch {
	case plan.Error != "":
		p.FetchErrors++
		p.LastError = "fetch: " + plan.Error
		return false
	case plan.DataLost != nil && plan.First == p.Next:
		p.FetchErrors = 0
		c.dataLost(p, *plan.DataLost)
		return false
	}
	if p.FetchErrors > 0 {
		p.FetchErrors = 0
		p.LastError = ""
	}
	if p.Next != plan.First || !fetchable(p) || c.st.Paused || c.draining {
		return false
	}
	if uncut {
		p.Backlog = plan.PlanEnd > plan.First && plan.PlanEnd < plan.HighWatermark
		if plan.PlanEnd > plan.First {
			p.Pending = &Pending{First: plan.First, End: plan.PlanEnd, Uncut: true}
			return true
		}
		return false
	}
	p.Backlog = plan.PlanEnd > plan.First && plan.End < plan.HighWatermark
	if plan.End > plan.First {
		p.Pending = &Pending{First: plan.First, End: plan.End, Records: plan.Records, Bytes: plan.Bytes, Parts: plan.Parts, Poison: plan.Poison}
		return true
	}
	if plan.Poison != nil {
		c.park(p, plan.Poison)
	}
	return false
}

// dataLost parks a partition whose records in r were deleted from Kafka
// before they were dumped, until an operator acknowledges it.
func (c *conn) dataLost(p *PartitionState, r sink.Range) {
	p.DataLost = &r
	p.LastError = fmt.Sprintf("data lost: offsets [%d,%d) were deleted from Kafka (retention) before they were dumped; the partition waits until an operator acknowledges it (starter ack-data-loss %s --partition %d, or signal %s)",
		r.First, r.End, c.spec.Name, p.Partition, SignalAckDataLoss)
}

// park stops a partition on a poison record (tolerance stop).
func (c *conn) park(p *PartitionState, poison *activities.Poison) {
	p.Stopped, p.Poison = true, poison
	p.LastError = "stopped on record at offset " + strconv.FormatInt(poison.Offset, 10) + " (" + poison.Stage + "): " + poison.Error + "; signal resume to send it to the dead-letter topic and go on"
}

// writePending writes the partition's pending range and advances its
// cursor; it reports whether the cursor moved. Its activities run on a
// disconnected context: cancelling the workflow lets them finish.
func (c *conn) writePending(ctx workflow.Context, p *PartitionState) bool {
	c.busy[p.Partition]++
	defer func() { c.busy[p.Partition]-- }()
	writeCtx := writeOptions(ctx)
	pend := p.Pending
	if pend.Uncut {
		return c.writeUncut(ctx, writeCtx, p)
	}
	mc := c.spec.Sink.Type == connector.SinkMaxCompute
	var (
		res activities.WriteResult
		err error
	)
	for attempt := 0; ; attempt++ {
		if mc && (len(pend.Sessions) == 0 || hasExpired(pend)) {
			var prep activities.PrepareResult
			err = workflow.ExecuteActivity(writeCtx, (*activities.Activities).PrepareWrite, activities.PrepareInput{
				SpecInput: activities.SpecInput{SpecRef: c.specRef}, Version: activities.V2, Partition: p.Partition, Start: p.Start,
				First: pend.First, End: pend.End, Parts: pend.Parts, Keep: liveSessions(pend), Writer: c.writer, SkipAt: p.SkipAt, TopicID: c.st.TopicID, Epoch: p.Epoch,
			}).Get(ctx, &prep)
			if err != nil {
				break
			}
			pend.Sessions = prep.Prepared.Sessions
		}
		var prepared *sink.Prepared
		if mc {
			prepared = &sink.Prepared{Sessions: pend.Sessions}
		}
		res = activities.WriteResult{} // a result decodes into it; omitted fields must not survive from an earlier attempt
		err = workflow.ExecuteActivity(writeCtx, (*activities.Activities).WritePartition, activities.WriteInput{
			SpecInput: activities.SpecInput{SpecRef: c.specRef}, Version: activities.V2, Partition: p.Partition, Start: p.Start,
			First: pend.First, End: pend.End, Prepared: prepared, SkipAt: p.SkipAt, Bytes: pend.Bytes, Writer: c.writer, TopicID: c.st.TopicID, Epoch: p.Epoch,
		}).Get(ctx, &res)
		if err != nil || len(res.Expired) == 0 {
			break
		}
		// Some sessions expired before their commit: mark them, keep the
		// committed ones, and prepare the expired ones again.
		for i := range pend.Sessions {
			s := &pend.Sessions[i]
			s.Committed = slices.Contains(res.Committed, s.Partition)
			if slices.Contains(res.Expired, s.Partition) {
				s.ID = ""
			}
		}
		// The dead letters of this attempt are produced again by the next
		// one, which counts them.
		if attempt >= 3 {
			err = temporal.NewApplicationError(fmt.Sprintf("upload sessions of %v expired %d times in a row", res.Expired, attempt+1), "SessionExpired")
			break
		}
	}
	if err != nil && errType(err) == "DataLost" {
		c.lostWhileWriting(p, err)
		return false
	}
	if err != nil {
		p.LastError = "write: " + errMessage(err)
		if c.throttled(ctx, err, p) {
			return false
		}
		// A non-retryable error is the destination's configuration (no such
		// bucket or table, access denied, another writer), not the data:
		// routing every range to the error-data topic would divert the whole
		// topic, so the partition parks, keeping its range, until the cause
		// is fixed and it is resumed.
		if c.spec.Errors.Tolerance == connector.ToleranceStop || nonRetryable(err) {
			p.Stopped = true
			p.LastError += "; fix the cause, then signal resume"
			return false
		}
		return c.route(ctx, p, err)
	}
	p.Pending = nil
	c.wrote(p, res)
	if pend.Poison != nil {
		c.park(p, pend.Poison)
	}
	return res.End > pend.First
}

// writeOptions is the context of a range's PrepareWrite and WritePartition:
// disconnected, so that cancelling the workflow lets them finish.
func writeOptions(ctx workflow.Context) workflow.Context {
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	return workflow.WithActivityOptions(dctx, workflow.ActivityOptions{
		StartToCloseTimeout: 15 * time.Minute,
		HeartbeatTimeout:    20 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        time.Second,
			BackoffCoefficient:     2,
			MaximumInterval:        time.Minute,
			MaximumAttempts:        8,
			NonRetryableErrorTypes: []string{"InvalidSpec", "SpecUnavailable"},
		},
	})
}

// writeUncut writes an uncut range (V3): one WritePartition cuts up to
// writeBatches batches from it as it reads and commits them; what it did
// not reach stays pending for the next write. A write that failed after
// committing some batches reports them (WriteResult.Failed) and the next
// write starts at the failed batch. A write that fails after its retries
// is handled as a V2 write's failure, after the range it failed on is cut
// again as a V2 plan would cut it (the same first batch), so that exactly
// that batch is routed.
func (c *conn) writeUncut(ctx, writeCtx workflow.Context, p *PartitionState) bool {
	pend := p.Pending
	var res activities.WriteResult
	err := workflow.ExecuteActivity(writeCtx, (*activities.Activities).WritePartition, activities.WriteInput{
		SpecInput: activities.SpecInput{SpecRef: c.specRef}, Version: activities.V3, Partition: p.Partition, Start: p.Start,
		First: pend.First, PlanEnd: pend.End, Batches: writeBatches, SkipAt: p.SkipAt, Writer: c.writer, TopicID: c.st.TopicID, Epoch: p.Epoch,
	}).Get(ctx, &res)
	if err == nil {
		p.Pending = nil
		if res.End < pend.End && res.Stopped == nil {
			p.Pending = &Pending{First: res.End, End: pend.End, Uncut: true}
		}
		c.wrote(p, res)
		if res.Failed != "" {
			p.LastError = "write: " + res.Failed + " (retrying from offset " + strconv.FormatInt(res.End, 10) + ")"
		}
		if res.Stopped != nil {
			c.park(p, res.Stopped)
		}
		return res.End > pend.First
	}
	if errType(err) == "DataLost" {
		c.lostWhileWriting(p, err)
		return false
	}
	p.LastError = "write: " + errMessage(err)
	if c.throttled(ctx, err, p) {
		return false
	}
	if c.spec.Errors.Tolerance == connector.ToleranceStop || nonRetryable(err) {
		p.Stopped = true
		p.LastError += "; fix the cause, then signal resume"
		return false
	}
	// Cut the failed batch as V2 would, within the range's bounds, and
	// route it.
	var fetched activities.FetchRangesResult
	cutCtx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 5 * time.Minute,
		HeartbeatTimeout:    20 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: 10 * time.Second, MaximumAttempts: 5},
	})
	ferr := workflow.ExecuteActivity(cutCtx, (*activities.Activities).FetchRanges, activities.FetchRangesInput{
		SpecInput: activities.SpecInput{SpecRef: c.specRef}, Version: activities.V2, TopicID: c.st.TopicID,
		Cursors: []activities.Cursor{{Partition: p.Partition, Next: p.Next, Start: p.Start, Backlog: true, SkipAt: p.SkipAt, Until: pend.End}},
	}).Get(ctx, &fetched)
	if ferr != nil || len(fetched.Plans) != 1 || fetched.Plans[0].End <= p.Next {
		// Keep the range; the partition parks until resumed.
		p.Stopped = true
		if ferr != nil {
			p.LastError += "; cutting the failed batch to route it failed too: " + errMessage(ferr)
		}
		p.LastError += "; fix the cause, then signal resume"
		return false
	}
	plan := fetched.Plans[0]
	p.Pending = &Pending{First: plan.First, End: plan.End, Records: plan.Records, Bytes: plan.Bytes}
	if c.route(ctx, p, err) {
		if p.Next < pend.End {
			p.Pending = &Pending{First: p.Next, End: pend.End, Uncut: true}
		}
		return true
	}
	return false
}

// versionThrottleWaits is the GetVersion change id of the runs in which a
// range the destination still throttles after its write's retries waits
// and is written again, instead of being routed to the error-data topic
// (runs before it routed it).
const versionThrottleWaits = "throttle-waits"

// throttleWait is how long such a range waits.
const throttleWait = time.Minute

// throttled handles a write that failed because the destination throttled
// it (sink.ErrThrottled: a quota window used up, requests too fast): the
// data is not at fault, so the range keeps its place and the partition
// waits throttleWait before the loop writes it again. It reports whether
// it did.
//
// A group batch's members (ps) wait together, once.
func (c *conn) throttled(ctx workflow.Context, err error, ps ...*PartitionState) bool {
	if errType(err) != sink.ErrThrottled || workflow.GetVersion(ctx, versionThrottleWaits, workflow.DefaultVersion, 1) != 1 {
		return false
	}
	what := "the range is"
	if len(ps) > 1 {
		what = "the group is"
	}
	for _, p := range ps {
		p.LastError += "; throttled by the destination: " + what + " written again in " + throttleWait.String() + ", not routed"
	}
	_ = workflow.Sleep(ctx, throttleWait)
	return true
}

// wrote moves partition p past what a write committed and counts it.
func (c *conn) wrote(p *PartitionState, res activities.WriteResult) {
	p.Next = max(p.Next, res.End)
	c.addCounts(res.Transform)
	p.Records += res.Written.Records
	p.Bytes += res.Written.Bytes
	p.Objects += int64(len(res.Written.Objects))
	p.DeadLetters += res.DeadLetters
	if n := len(res.Written.Objects); n > 0 {
		p.LastObject = res.Written.Objects[n-1]
	}
	if p.SkipAt >= 0 && p.SkipAt < p.Next {
		p.SkipAt = -1
	}
	p.LastError = ""
}

// lostWhileWriting parks p as data-lost after a write failed with
// DataLost: retention deleted records of its range while it was being
// written, and nothing of the failed batch landed (a write aborts before
// its commit). The range is void; the loss begins at the partition's
// cursor and ends at the log start the error carries.
func (c *conn) lostWhileWriting(p *PartitionState, err error) {
	end := p.Next
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) && appErr.HasDetails() {
		_ = appErr.Details(&end)
	}
	p.Pending = nil
	c.dataLost(p, sink.Range{First: p.Next, End: max(end, p.Next)})
}

// writeAll writes the pending ranges of ps and returns the cursors of the
// partitions that moved, in the order of ps. Runs that recorded the
// parallel-writes version write the partitions concurrently, so a
// partition whose write is retrying (a slow or failing destination folder,
// an expired session) does not hold up its loop-mates; earlier runs wrote
// them one after another and replay that way.
func (c *conn) writeAll(ctx workflow.Context, ps []*PartitionState) []activities.Cursor {
	if len(ps) == 0 {
		return nil
	}
	moved := make([]bool, len(ps))
	if len(ps) > 1 && c.parallelWrites(ctx) {
		wg := workflow.NewWaitGroup(ctx)
		for i, p := range ps {
			wg.Add(1)
			workflow.Go(ctx, func(ctx workflow.Context) {
				defer wg.Done()
				moved[i] = c.writePending(ctx, p)
			})
		}
		wg.Wait(ctx)
	} else {
		for i, p := range ps {
			moved[i] = c.writePending(ctx, p)
		}
	}
	var out []activities.Cursor
	for i, p := range ps {
		if moved[i] {
			out = append(out, cursor(p))
		}
	}
	return out
}

// parallelWrites reports whether this run writes a loop's partitions
// concurrently (see writeAll). The version is decided once per run.
func (c *conn) parallelWrites(ctx workflow.Context) bool {
	if c.parallel == nil {
		v := workflow.GetVersion(ctx, "parallel-writes", workflow.DefaultVersion, 1) == 1
		c.parallel = &v
	}
	return *c.parallel
}

func hasExpired(pend *Pending) bool {
	for _, s := range pend.Sessions {
		if s.ID == "" {
			return true
		}
	}
	return false
}

// liveSessions are the pending range's sessions that may be kept.
func liveSessions(pend *Pending) []sink.Session {
	var out []sink.Session
	for _, s := range pend.Sessions {
		if s.ID != "" {
			out = append(out, s)
		}
	}
	return out
}

// route sends the pending range, which still failed after its retries, to
// the error-data topic (tolerance continue); records already committed to
// the table are left out, and a range the sink turns out to hold counts as
// written. If routing fails too the partition stops: a range is never
// dropped.
func (c *conn) route(ctx workflow.Context, p *PartitionState, cause error) bool {
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	routeCtx := workflow.WithActivityOptions(dctx, workflow.ActivityOptions{
		StartToCloseTimeout: 15 * time.Minute,
		HeartbeatTimeout:    20 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: time.Minute, MaximumAttempts: 10},
	})
	pend := p.Pending
	var prepared *sink.Prepared
	if len(pend.Sessions) > 0 {
		prepared = &sink.Prepared{Sessions: liveSessions(pend)}
	}
	var rr activities.RouteRangeResult
	err := workflow.ExecuteActivity(routeCtx, (*activities.Activities).RouteRange, activities.RouteRangeInput{
		SpecInput: activities.SpecInput{SpecRef: c.specRef}, Version: activities.V2, Partition: p.Partition, Start: p.Start,
		First: pend.First, End: pend.End, Reason: errMessage(cause), Writer: c.writer, Prepared: prepared, TopicID: c.st.TopicID, Epoch: p.Epoch,
	}).Get(ctx, &rr)
	if err != nil {
		p.Stopped = true
		p.LastError += "; routing the range to the error-data topic failed too: " + errMessage(err)
		return false
	}
	p.ErrorRecords += rr.Records
	p.Next = pend.End
	p.Pending = nil
	if rr.Written {
		p.LastError = ""
	}
	return true
}

// declareGap records the acknowledged loss of a data-lost partition and
// moves it to the log start.
func (c *conn) declareGap(ctx workflow.Context, p *PartitionState) {
	c.busy[p.Partition]++
	defer func() { c.busy[p.Partition]-- }()
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	actx := workflow.WithActivityOptions(dctx, workflow.ActivityOptions{
		StartToCloseTimeout: 2 * time.Minute,
		HeartbeatTimeout:    20 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: 30 * time.Second, MaximumAttempts: 10},
	})
	var res activities.DeclareGapResult
	err := workflow.ExecuteActivity(actx, (*activities.Activities).DeclareGap, activities.DeclareGapInput{
		SpecInput: activities.SpecInput{SpecRef: c.specRef}, Partition: p.Partition, Start: p.Start, From: p.Next, Writer: c.writer, By: p.AckBy, Epoch: p.Epoch,
	}).Get(ctx, &res)
	if err != nil {
		p.LastError = "declare the lost range: " + errMessage(err)
		return
	}
	p.Gaps = append(p.Gaps, DeclaredGap{First: res.From, End: res.To, By: p.AckBy, At: workflow.Now(ctx)})
	if len(p.Gaps) > maxGapsKept {
		p.Gaps = p.Gaps[len(p.Gaps)-maxGapsKept:]
	}
	p.Next = res.To
	p.DataLost, p.AckBy, p.LastError = nil, "", ""
}

// commit mirrors cursors into the consumer group.
func (c *conn) commit(ctx workflow.Context, offs []activities.Cursor) error {
	commitCtx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: 10 * time.Second, MaximumAttempts: 5},
	})
	return workflow.ExecuteActivity(commitCtx, (*activities.Activities).CommitOffsets, activities.CommitOffsetsInput{
		SpecInput: activities.SpecInput{SpecRef: c.specRef}, Offsets: offs, Writer: c.writer,
	}).Get(ctx, nil)
}

func nonRetryable(err error) bool {
	var appErr *temporal.ApplicationError
	return errors.As(err, &appErr) && appErr.NonRetryable()
}

func errType(err error) string {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		return appErr.Type()
	}
	return ""
}
