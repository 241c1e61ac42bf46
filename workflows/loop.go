package workflows

import (
	"errors"
	"strconv"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/dumpflow/dumpflow/activities"
	"github.com/dumpflow/dumpflow/connector"
)

// loop runs fetch-range → write-partition → commit-offset for a group of
// partitions until the run drains for continue-as-new.
func (c *conn) loop(ctx workflow.Context, group []*PartitionState) {
	flush := c.spec.Batch.FlushInterval.D()
	fetchCtx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: flush + 2*time.Minute,
		HeartbeatTimeout:    10 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: 30 * time.Second},
	})
	commitCtx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: 10 * time.Second, MaximumAttempts: 5},
	})
	for {
		if err := workflow.Await(ctx, func() bool { return c.draining || (!c.st.Paused && runnable(group)) }); err != nil || c.draining {
			return
		}
		var cursors []activities.Cursor
		for _, p := range group {
			if !p.Stopped {
				cursors = append(cursors, activities.Cursor{Partition: p.Partition, Next: p.Next, Start: p.Start, Backlog: p.Backlog})
			}
		}
		var fetched activities.FetchRangesResult
		if err := workflow.ExecuteActivity(fetchCtx, (*activities.Activities).FetchRanges, activities.FetchRangesInput{Spec: c.spec, Cursors: cursors}).Get(ctx, &fetched); err != nil {
			for _, p := range group {
				p.LastError = "fetch: " + errMessage(err)
			}
			_ = workflow.Sleep(ctx, 10*time.Second)
			c.checkHistory(ctx)
			continue
		}
		var commits []activities.Cursor
		for _, plan := range fetched.Plans {
			p := find(group, plan.Partition)
			p.HighWatermark, p.LogStart = plan.HighWatermark, plan.LogStart
			if plan.PlanEnd <= plan.First || p.Next != plan.First || p.Stopped || c.st.Paused || c.draining {
				p.Backlog = false
				continue
			}
			if c.write(ctx, p, plan) {
				commits = append(commits, activities.Cursor{Partition: p.Partition, Next: p.Next, Start: p.Start})
			}
			p.Backlog = !p.Stopped && p.Next < plan.HighWatermark
		}
		if len(commits) > 0 {
			if err := workflow.ExecuteActivity(commitCtx, (*activities.Activities).CommitOffsets, activities.CommitOffsetsInput{Spec: c.spec, Offsets: commits}).Get(ctx, nil); err != nil {
				// The workflow's cursor is the truth; the group offset catches up next time.
				workflow.GetLogger(ctx).Warn("commit offsets failed", "error", err)
			}
		}
		c.checkHistory(ctx)
	}
}

// write writes one planned range and advances the cursor. It reports whether
// the cursor moved.
func (c *conn) write(ctx workflow.Context, p *PartitionState, plan activities.Plan) bool {
	writeCtx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 15 * time.Minute,
		HeartbeatTimeout:    20 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    time.Second,
			BackoffCoefficient: 2,
			MaximumInterval:    time.Minute,
			MaximumAttempts:    8,
		},
	})
	in := activities.WriteInput{Spec: c.spec, Partition: p.Partition, Start: p.Start, First: plan.First, PlanEnd: plan.PlanEnd, SkipAt: p.SkipAt}
	var res activities.WriteResult
	var err error
	for attempt := 0; ; attempt++ {
		if c.spec.Sink.Type == connector.SinkMaxCompute {
			var prep activities.PrepareResult
			err = workflow.ExecuteActivity(writeCtx, (*activities.Activities).PrepareWrite, activities.PrepareInput{
				Spec: c.spec, Partition: p.Partition, Start: p.Start, First: plan.First, PlanEnd: plan.PlanEnd, SkipAt: p.SkipAt,
			}).Get(ctx, &prep)
			if err != nil {
				break
			}
			in.End, in.Prepared = prep.End, prep.Prepared
		}
		err = workflow.ExecuteActivity(writeCtx, (*activities.Activities).WritePartition, in).Get(ctx, &res)
		// An upload session that expired can never be committed: prepare anew.
		if err == nil || errType(err) != "SessionExpired" || attempt >= 2 {
			break
		}
	}
	if err != nil {
		p.LastError = "write: " + errMessage(err)
		// A non-retryable error is the destination's configuration (no such
		// bucket or table, access denied, schema mismatch), not the data:
		// routing every range to the error-data topic would divert the whole
		// topic, so the partition parks until the cause is fixed and resumed.
		if c.spec.Errors.Tolerance == connector.ToleranceStop || nonRetryable(err) {
			p.Stopped = true
			p.LastError += "; fix the cause, then signal resume"
			return false
		}
		return c.route(ctx, p, plan, in.End, err)
	}
	p.Next = res.End
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
	if res.Stopped != nil {
		p.Stopped, p.Poison = true, res.Stopped
		p.LastError = "stopped on record at offset " + strconv.FormatInt(res.Stopped.Offset, 10) + " (" + res.Stopped.Stage + "): " + res.Stopped.Error + "; signal resume to send it to the dead-letter topic and go on"
	} else {
		p.LastError = ""
	}
	return res.End > plan.First
}

// route sends a range that still failed after its retries to the
// error-data topic (tolerance continue). If even that fails the partition
// stops: a range is never dropped.
func (c *conn) route(ctx workflow.Context, p *PartitionState, plan activities.Plan, end int64, cause error) bool {
	if end <= plan.First {
		end = plan.PlanEnd
	}
	routeCtx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 15 * time.Minute,
		HeartbeatTimeout:    20 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: time.Minute, MaximumAttempts: 10},
	})
	var rr activities.RouteRangeResult
	err := workflow.ExecuteActivity(routeCtx, (*activities.Activities).RouteRange, activities.RouteRangeInput{
		Spec: c.spec, Partition: p.Partition, First: plan.First, End: end, Reason: errMessage(cause),
	}).Get(ctx, &rr)
	if err != nil {
		p.Stopped = true
		p.LastError += "; routing the range to the error-data topic failed too: " + errMessage(err)
		return false
	}
	p.ErrorRecords += rr.Records
	p.Next = end
	return true
}

func runnable(group []*PartitionState) bool {
	for _, p := range group {
		if !p.Stopped {
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
	panic("partition not in group") // a plan always names a cursor it was given
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
