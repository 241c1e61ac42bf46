package workflows

// This file is the Connector workflow as the first build ran it, frozen.
// Histories recorded by that build (running connectors, tests/testdata)
// replay through it: Connector sends a run here when its history has no
// "dumpflow-v2" version marker. Such a run drains at its first new loop
// iteration (a version marker per iteration decides it, so old histories
// still replay) and continues as new into the current code, carrying its
// state. Do not change what this code does; change connector.go.

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/dumpflow/dumpflow/activities"
	"github.com/dumpflow/dumpflow/connector"
)

type legacyConn struct {
	spec     connector.Spec
	st       *ConnectorState
	limit    int
	draining bool
	loops    int
	err      string // connector-level error, e.g. discovery failing
}

// Connector runs a connector: it discovers the topic's partitions, runs
// spec.Concurrency partition loops (fetch-range → write-partition →
// commit-offset), answers the status query, obeys pause/resume, and
// continues as new well before history grows large. It never fails on a
// data or destination error: a partition either routes the failed range to
// the error-data topic (tolerance continue) or parks as stopped until
// resumed (tolerance stop).
func legacyConnector(ctx workflow.Context, in ConnectorInput, spec connector.Spec) error {
	c := &legacyConn{spec: spec, st: in.State, limit: in.HistoryLimit}
	if c.limit <= 0 {
		c.limit = DefaultHistoryLimit
	}
	if c.st == nil {
		c.st = &ConnectorState{}
	} else {
		c.st.Run++
	}
	if err := workflow.SetQueryHandler(ctx, QueryStatus, func() (Status, error) { return c.status(ctx), nil }); err != nil {
		return err
	}
	if err := workflow.SetQueryHandler(ctx, QuerySpec, func() (connector.Spec, error) { return c.spec, nil }); err != nil {
		return err
	}
	pauseCh := workflow.GetSignalChannel(ctx, SignalPause)
	resumeCh := workflow.GetSignalChannel(ctx, SignalResume)
	workflow.Go(ctx, func(ctx workflow.Context) {
		for {
			sel := workflow.NewSelector(ctx)
			sel.AddReceive(pauseCh, func(ch workflow.ReceiveChannel, _ bool) { ch.Receive(ctx, nil); c.pause() })
			sel.AddReceive(resumeCh, func(ch workflow.ReceiveChannel, _ bool) { ch.Receive(ctx, nil); c.resume() })
			sel.Select(ctx)
		}
	})

	c.discover(ctx)

	groups := c.groups()
	if len(groups) == 0 {
		// A topic without partitions: look again later.
		if err := workflow.Sleep(ctx, time.Minute); err != nil {
			return err
		}
	}
	c.loops = len(groups)
	for gi, g := range groups {
		workflow.Go(ctx, func(ctx workflow.Context) {
			defer func() { c.loops-- }()
			c.loop(ctx, gi, g)
		})
	}
	if err := workflow.Await(ctx, func() bool { return c.loops == 0 }); err != nil {
		return err
	}
	// Apply signals that arrived while draining, then carry everything over.
	for pauseCh.ReceiveAsync(nil) {
		c.pause()
	}
	for resumeCh.ReceiveAsync(nil) {
		c.resume()
	}
	return workflow.NewContinueAsNewError(ctx, ConnectorName, ConnectorInput{Spec: in.Spec, State: c.st, HistoryLimit: in.HistoryLimit})
}

func (c *legacyConn) pause() { c.st.Paused = true }

func (c *legacyConn) resume() {
	c.st.Paused = false
	for _, p := range c.st.Partitions {
		if p.Stopped {
			p.Stopped = false
			p.LastError = ""
			if p.Poison != nil {
				p.SkipAt = p.Poison.Offset
				p.Poison = nil
			}
		}
	}
}

// discover adds partitions not yet known, retrying (visibly, in status)
// until the topic and sink are reachable.
func (c *legacyConn) discover(ctx workflow.Context) {
	known := make([]int32, len(c.st.Partitions))
	for i, p := range c.st.Partitions {
		known[i] = p.Partition
	}
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 2 * time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: 10 * time.Second, MaximumAttempts: 3},
	})
	for {
		var res activities.DiscoverResult
		err := workflow.ExecuteActivity(actx, (*activities.Activities).Discover, activities.DiscoverInput{SpecInput: activities.SpecInput{Spec: &c.spec}, Known: known}).Get(ctx, &res)
		if err == nil {
			c.err = ""
			for _, ps := range res.Partitions {
				c.st.Partitions = append(c.st.Partitions, &PartitionState{Partition: ps.Partition, Start: ps.Start, Next: ps.Next, From: ps.From, SkipAt: -1})
			}
			return
		}
		if len(c.st.Partitions) > 0 {
			// Known partitions keep running; new ones are looked for next run.
			workflow.GetLogger(ctx).Warn("partition discovery failed", "error", err)
			return
		}
		c.err = "discover: " + legacyErrMessage(err)
		workflow.GetLogger(ctx).Error("connector cannot start; retrying in 30s", "error", err)
		_ = workflow.Sleep(ctx, 30*time.Second)
	}
}

// groups spreads partitions over spec.Concurrency loops round-robin.
func (c *legacyConn) groups() [][]*PartitionState {
	n := min(c.spec.Concurrency, len(c.st.Partitions))
	gs := make([][]*PartitionState, n)
	for i, p := range c.st.Partitions {
		gs[i%n] = append(gs[i%n], p)
	}
	return gs
}

// checkHistory starts draining once the run's history is long enough.
func (c *legacyConn) checkHistory(ctx workflow.Context) {
	info := workflow.GetInfo(ctx)
	if info.GetCurrentHistoryLength() >= c.limit || info.GetContinueAsNewSuggested() {
		c.draining = true
	}
}

func (c *legacyConn) status(ctx workflow.Context) Status {
	s := Status{Name: c.spec.Name, Topic: c.spec.Kafka.Topic, Sink: c.spec.Sink.Type, Paused: c.st.Paused,
		Run: c.st.Run, HistoryLength: workflow.GetInfo(ctx).GetCurrentHistoryLength(), Error: c.err}
	for _, p := range c.st.Partitions {
		ps := PartitionStatus{PartitionState: *p, State: StateRunning, Lag: max(0, p.HighWatermark-p.Next)}
		switch {
		case p.Stopped:
			ps.State = StateStopped
		case c.st.Paused:
			ps.State = StatePaused
		}
		s.Partitions = append(s.Partitions, ps)
	}
	return s
}

// errMessage is an activity error's type and message, without the
// ActivityError wrapping that repeats ids.
func legacyErrMessage(err error) string {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		return appErr.Type() + ": " + appErr.Message()
	}
	return err.Error()
}

// loop runs fetch-range → write-partition → commit-offset for a group of
// partitions until the run drains for continue-as-new.
func (c *legacyConn) loop(ctx workflow.Context, gi int, group []*PartitionState) {
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
	for iter := 0; ; iter++ {
		if err := workflow.Await(ctx, func() bool { return c.draining || (!c.st.Paused && legacyRunnable(group)) }); err != nil || c.draining {
			return
		}
		// Past the recorded history, a new build drains this run here and
		// continues as new into the current code. In a replay of a history
		// the first build recorded there is no marker, so the loop goes on
		// as it did.
		if workflow.GetVersion(ctx, fmt.Sprintf("dumpflow-v2-drain-%d-%d", gi, iter), workflow.DefaultVersion, 1) != workflow.DefaultVersion {
			c.draining = true
			return
		}
		var cursors []activities.Cursor
		for _, p := range group {
			if !p.Stopped {
				cursors = append(cursors, activities.Cursor{Partition: p.Partition, Next: p.Next, Start: p.Start, Backlog: p.Backlog})
			}
		}
		var fetched activities.FetchRangesResult
		if err := workflow.ExecuteActivity(fetchCtx, (*activities.Activities).FetchRanges, activities.FetchRangesInput{SpecInput: activities.SpecInput{Spec: &c.spec}, Cursors: cursors}).Get(ctx, &fetched); err != nil {
			for _, p := range group {
				p.LastError = "fetch: " + legacyErrMessage(err)
			}
			_ = workflow.Sleep(ctx, 10*time.Second)
			c.checkHistory(ctx)
			continue
		}
		var commits []activities.Cursor
		for _, plan := range fetched.Plans {
			p := legacyFind(group, plan.Partition)
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
			if err := workflow.ExecuteActivity(commitCtx, (*activities.Activities).CommitOffsets, activities.CommitOffsetsInput{SpecInput: activities.SpecInput{Spec: &c.spec}, Offsets: commits}).Get(ctx, nil); err != nil {
				// The workflow's cursor is the truth; the group offset catches up next time.
				workflow.GetLogger(ctx).Warn("commit offsets failed", "error", err)
			}
		}
		c.checkHistory(ctx)
	}
}

// write writes one planned range and advances the cursor. It reports whether
// the cursor moved.
func (c *legacyConn) write(ctx workflow.Context, p *PartitionState, plan activities.Plan) bool {
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
	in := activities.WriteInput{SpecInput: activities.SpecInput{Spec: &c.spec}, Partition: p.Partition, Start: p.Start, First: plan.First, PlanEnd: plan.PlanEnd, SkipAt: p.SkipAt}
	var res activities.WriteResult
	var err error
	for attempt := 0; ; attempt++ {
		if c.spec.Sink.Type == connector.SinkMaxCompute {
			var prep activities.PrepareResult
			err = workflow.ExecuteActivity(writeCtx, (*activities.Activities).PrepareWrite, activities.PrepareInput{
				SpecInput: activities.SpecInput{Spec: &c.spec}, Partition: p.Partition, Start: p.Start, First: plan.First, PlanEnd: plan.PlanEnd, SkipAt: p.SkipAt,
			}).Get(ctx, &prep)
			if err != nil {
				break
			}
			in.End, in.Prepared = prep.End, prep.Prepared
		}
		err = workflow.ExecuteActivity(writeCtx, (*activities.Activities).WritePartition, in).Get(ctx, &res)
		// An upload session that expired can never be committed: prepare anew.
		if err == nil || legacyErrType(err) != "SessionExpired" || attempt >= 2 {
			break
		}
	}
	if err != nil {
		p.LastError = "write: " + legacyErrMessage(err)
		// A non-retryable error is the destination's configuration (no such
		// bucket or table, access denied, schema mismatch), not the data:
		// routing every range to the error-data topic would divert the whole
		// topic, so the partition parks until the cause is fixed and resumed.
		if c.spec.Errors.Tolerance == connector.ToleranceStop || legacyNonRetryable(err) {
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
func (c *legacyConn) route(ctx workflow.Context, p *PartitionState, plan activities.Plan, end int64, cause error) bool {
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
		SpecInput: activities.SpecInput{Spec: &c.spec}, Partition: p.Partition, First: plan.First, End: end, Reason: legacyErrMessage(cause),
	}).Get(ctx, &rr)
	if err != nil {
		p.Stopped = true
		p.LastError += "; routing the range to the error-data topic failed too: " + legacyErrMessage(err)
		return false
	}
	p.ErrorRecords += rr.Records
	p.Next = end
	return true
}

func legacyRunnable(group []*PartitionState) bool {
	for _, p := range group {
		if !p.Stopped {
			return true
		}
	}
	return false
}

func legacyFind(group []*PartitionState, partition int32) *PartitionState {
	for _, p := range group {
		if p.Partition == partition {
			return p
		}
	}
	panic("partition not in group") // a plan always names a cursor it was given
}

func legacyNonRetryable(err error) bool {
	var appErr *temporal.ApplicationError
	return errors.As(err, &appErr) && appErr.NonRetryable()
}

func legacyErrType(err error) string {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		return appErr.Type()
	}
	return ""
}
