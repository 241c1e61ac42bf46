package workflows

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/dumpflow/dumpflow/activities"
	"github.com/dumpflow/dumpflow/sink"
	"github.com/dumpflow/dumpflow/window"
)

// Names of the window workflows and their queries.
const (
	WindowLoadName     = "WindowLoad"
	WindowBackfillName = "WindowBackfill"
	QueryProgress      = "progress"
)

// WindowInput is the WindowLoad workflow's single input.
type WindowInput struct {
	// Spec is the window job spec, as JSON (package window). Required.
	Spec json.RawMessage `json:"spec"`
	// Begin and End are the window [Begin, End). Leave both out in a
	// schedule's action: the window is then [previous fire time, nominal
	// time), the nominal time being the run's TemporalScheduledStartTime,
	// so a run that starts late or is retried loads the same window.
	Begin time.Time `json:"begin,omitzero"`
	End   time.Time `json:"end,omitzero"`
	// UpdatePosition records the window's end offsets as the job's
	// position (reader.begin seekToLast continues from it). Scheduled runs
	// do; backfills never do.
	UpdatePosition bool `json:"updatePosition,omitempty"`
}

// WindowResult is what a window load did.
type WindowResult struct {
	Job   string    `json:"job"`
	Begin time.Time `json:"begin"`
	End   time.Time `json:"end"`
	// Destination is the MaxCompute partition or the OSS prefix.
	Destination string `json:"destination"`
	// AlreadyLoaded is set when an append load (MaxCompute with truncate
	// false, or any OSS load: a _SUCCESS is there) found the window loaded by
	// an earlier run: it did nothing.
	AlreadyLoaded bool `json:"alreadyLoaded,omitempty"`
	// Session is the MaxCompute upload session that published the window.
	Session    string            `json:"session,omitempty"`
	Partitions []WindowPartition `json:"partitions"`
	Records    int64             `json:"records"`
	Bytes      int64             `json:"bytes"`
	Errors     int64             `json:"errors"`
	Duration   time.Duration     `json:"duration"`
}

// WindowPartition is one Kafka partition's share of a window.
type WindowPartition struct {
	Partition int32         `json:"partition"`
	First     int64         `json:"first"`
	End       int64         `json:"end"`
	State     string        `json:"state"` // pending, loading, loaded
	Records   int64         `json:"records"`
	Bytes     int64         `json:"bytes"`
	Errors    int64         `json:"errors"`
	Duration  time.Duration `json:"duration"`
	Objects   int           `json:"objects,omitempty"`
}

// Window partition states.
const (
	WindowPending = "pending"
	WindowLoading = "loading"
	WindowLoaded  = "loaded"
)

// WindowLoad loads one time window of a topic exactly once: it resolves
// the window to an offset range per Kafka partition (ListOffsets by
// timestamp, or the reader's begin and end), loads every range (reading,
// transforming and writing, never putting record bytes in history), then
// publishes the window in one step — one commit of the MaxCompute upload
// session that holds every partition's rows (an overwrite session replaces
// the partition atomically), or a _SUCCESS object listing every OSS object
// and range of the window. A re-run of the window gives the same result:
// overwrite replaces, append finds the window in the ledger and does
// nothing. More records failing than settings.errorLimit fails the run
// before anything is published.
func WindowLoad(ctx workflow.Context, in WindowInput) (WindowResult, error) {
	spec, err := window.ParseJSON(in.Spec)
	if err != nil {
		return WindowResult{}, temporal.NewNonRetryableApplicationError(err.Error(), "InvalidSpec", err)
	}
	begin, end, err := windowBounds(ctx, spec, in)
	if err != nil {
		return WindowResult{}, err
	}
	res := WindowResult{Job: spec.Name, Begin: begin, End: end}
	if err := workflow.SetQueryHandlerWithOptions(ctx, QueryProgress, func() (WindowResult, error) { return res, nil },
		workflow.QueryHandlerOptions{Description: "The window, its destination and each partition's range, state and counts."}); err != nil {
		return WindowResult{}, err
	}
	// Every run of a window runs under the window's id, WindowRunID, so
	// that two runs of one window never overlap (an append load of both
	// would add the rows twice). A run under another id — a triggered run,
	// whose id Temporal builds from the trigger time, or one started by
	// hand — loads the window as a child under that id, after any run of
	// it in progress.
	if canon := WindowRunID(spec.Name, end); workflow.GetInfo(ctx).WorkflowExecution.ID != canon {
		child := in
		child.Begin, child.End = begin, end
		cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{WorkflowID: canon})
		for {
			err := workflow.ExecuteChildWorkflow(cctx, WindowLoadName, child).Get(ctx, &res)
			var running *temporal.ChildWorkflowExecutionAlreadyStartedError
			if !errors.As(err, &running) {
				return res, err
			}
			if err := workflow.Sleep(ctx, backfillBusyWait); err != nil {
				return res, err
			}
		}
	}
	// A window is resolved once it has ended, schedule.delay later: records
	// stamped before its end have had that long to reach Kafka.
	var delay time.Duration
	if spec.Schedule != nil {
		delay = spec.Schedule.Delay.D()
	}
	if wait := end.Add(delay).Sub(workflow.Now(ctx)); wait > 0 {
		if err := workflow.Sleep(ctx, wait); err != nil {
			return res, err
		}
	}
	start := workflow.Now(ctx)
	short := workflow.WithActivityOptions(ctx, windowShortOptions)
	job := activities.WindowJob{Spec: in.Spec, Begin: begin, End: end}

	var resolved activities.ResolveWindowResult
	if err := workflow.ExecuteActivity(short, (*activities.Activities).ResolveWindow, job).Get(ctx, &resolved); err != nil {
		return res, err
	}
	res.Destination = resolved.Destination
	for _, r := range resolved.Ranges {
		res.Partitions = append(res.Partitions, WindowPartition{Partition: r.Partition, First: r.First, End: r.End, State: WindowPending})
	}
	if resolved.Loaded {
		res.AlreadyLoaded = true
		for i := range res.Partitions {
			res.Partitions[i].State = WindowLoaded
		}
		return res, nil
	}
	// A MaxCompute session that expires before the publish (a window that
	// took longer than the session's lifetime, a long outage between load
	// and publish) holds nothing visible: the window is loaded again into
	// a new one.
	session := resolved.Session
	for attempt := 1; ; attempt++ {
		err := loadWindow(ctx, spec, job, &resolved, session, &res)
		if err == nil {
			break
		}
		if errType(err) != "SessionExpired" || attempt == maxWindowSessions || spec.Writer.MaxCompute == nil {
			return res, err
		}
		workflow.GetLogger(ctx).Warn("the window's upload session expired; loading the window again", "session", res.Session, "error", err)
		session = nil
	}
	if in.UpdatePosition {
		if err := workflow.ExecuteActivity(short, (*activities.Activities).CommitWindowPosition, activities.CommitWindowPositionInput{
			WindowJob: job, Ranges: resolved.Ranges,
		}).Get(ctx, nil); err != nil {
			return res, err
		}
	}
	res.Duration = workflow.Now(ctx).Sub(start)
	return res, nil
}

// windowShortOptions are the options of a window load's short activities
// (resolve, prepare, publish, position).
var windowShortOptions = workflow.ActivityOptions{
	StartToCloseTimeout: 5 * time.Minute,
	RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: 30 * time.Second, MaximumAttempts: 10,
		NonRetryableErrorTypes: []string{"InvalidSpec"}},
}

// windowBounds is the run's window: the input's, or the schedule's window
// ending at the run's nominal time.
func windowBounds(ctx workflow.Context, spec *window.Spec, in WindowInput) (time.Time, time.Time, error) {
	if !in.End.IsZero() {
		if !in.Begin.Before(in.End) {
			err := fmt.Errorf("window [%s, %s) is empty: begin must be before end", in.Begin.Format(time.RFC3339), in.End.Format(time.RFC3339))
			return time.Time{}, time.Time{}, temporal.NewNonRetryableApplicationError(err.Error(), "InvalidWindow", err)
		}
		return in.Begin, in.End, nil
	}
	nominal, ok := scheduledTime(ctx)
	if !ok {
		err := errors.New("the run was not started by a schedule (no TemporalScheduledStartTime) and its input gives no window: set begin and end")
		return time.Time{}, time.Time{}, temporal.NewNonRetryableApplicationError(err.Error(), "InvalidWindow", err)
	}
	if spec.Schedule == nil {
		err := errors.New("a scheduled run needs the spec's schedule to know its window")
		return time.Time{}, time.Time{}, temporal.NewNonRetryableApplicationError(err.Error(), "InvalidSpec", err)
	}
	sched, err := window.NewSchedule(spec.Schedule.Cron, spec.Schedule.TimeZone)
	if err != nil {
		return time.Time{}, time.Time{}, temporal.NewNonRetryableApplicationError(err.Error(), "InvalidSpec", err)
	}
	begin, end, err := sched.Window(nominal)
	if err != nil {
		return time.Time{}, time.Time{}, temporal.NewNonRetryableApplicationError(err.Error(), "InvalidWindow", err)
	}
	return begin, end, nil
}

// scheduledStartKey is the search attribute Temporal sets on a schedule's
// runs: the action's nominal time.
var scheduledStartKey = temporal.NewSearchAttributeKeyTime("TemporalScheduledStartTime")

func scheduledTime(ctx workflow.Context) (time.Time, bool) {
	t, ok := workflow.GetTypedSearchAttributes(ctx).GetTime(scheduledStartKey)
	return t, ok && !t.IsZero()
}

// maxBlocksPerPartition splits an upload session's block ids among a
// window's partitions.
func maxBlocksPerPartition(n int) int {
	return 20000 / max(n, 1)
}

// BackfillInput is the WindowBackfill workflow's input.
type BackfillInput struct {
	// Spec is the window job spec, as JSON. Required.
	Spec json.RawMessage `json:"spec"`
	// From and To bound the backfill: every window of the job's schedule
	// that ends in (From, To] is loaded, in order; a job without a schedule
	// loads the one window [From, To). Required.
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	// Next is where a continued run resumes (the end of the last window
	// loaded); leave it out on start.
	Next time.Time `json:"next,omitzero"`
	// Done and Total count the windows, across continue-as-new.
	Done  int `json:"done,omitempty"`
	Total int `json:"total,omitempty"`
	// Batch is how many windows a run loads before it continues as new,
	// keeping each run's history short. Optional. Default: 200.
	Batch int `json:"batch,omitempty"`
}

// BackfillProgress answers the backfill's progress query.
type BackfillProgress struct {
	From    time.Time     `json:"from"`
	To      time.Time     `json:"to"`
	Done    int           `json:"done"`
	Total   int           `json:"total"`
	Current *WindowResult `json:"current,omitempty"`
	Last    *WindowResult `json:"last,omitempty"`
}

// WindowRunID is the workflow id of the run that loads the window ending
// at end: "window-<name>-<end, UTC, RFC 3339>", the id Temporal gives the
// job's schedule's run of that fire time (the action's workflow id
// "window-<name>" and the nominal time). Backfills and `starter window run`
// use it too, so two runs of one window never overlap.
func WindowRunID(name string, end time.Time) string {
	return "window-" + name + "-" + end.UTC().Truncate(time.Second).Format(time.RFC3339)
}

// backfillBusyWait is how long a backfill waits before it loads again a
// window another run was loading.
const backfillBusyWait = 30 * time.Second

// backfillBatch is how many windows a backfill run loads before it
// continues as new: each is a child workflow, a few events each.
const backfillBatch = 200

// WindowBackfill loads the windows of [From, To) one after another, each as
// a child WindowLoad workflow (id WindowRunID), never moving
// the job's position. Temporal's own schedule backfill buffers fewer than
// 1000 windows; this one has no such bound (a year of hourly windows is
// 8760): it continues as new every 200 windows, carrying where it is.
func WindowBackfill(ctx workflow.Context, in BackfillInput) (BackfillProgress, error) {
	spec, err := window.ParseJSON(in.Spec)
	if err != nil {
		return BackfillProgress{}, temporal.NewNonRetryableApplicationError(err.Error(), "InvalidSpec", err)
	}
	if !in.From.Before(in.To) {
		err := fmt.Errorf("backfill [%s, %s) is empty: from must be before to", in.From.Format(time.RFC3339), in.To.Format(time.RFC3339))
		return BackfillProgress{}, temporal.NewNonRetryableApplicationError(err.Error(), "InvalidWindow", err)
	}
	windows, err := backfillWindows(spec, in.From, in.To)
	if err != nil {
		return BackfillProgress{}, temporal.NewNonRetryableApplicationError(err.Error(), "InvalidSpec", err)
	}
	prog := BackfillProgress{From: in.From, To: in.To, Done: in.Done, Total: len(windows)}
	if in.Total > 0 {
		prog.Total = in.Total
	}
	if err := workflow.SetQueryHandlerWithOptions(ctx, QueryProgress, func() (BackfillProgress, error) { return prog, nil },
		workflow.QueryHandlerOptions{Description: "Windows loaded so far, the one loading and the last one loaded."}); err != nil {
		return prog, err
	}
	batch := in.Batch
	if batch <= 0 {
		batch = backfillBatch
	}
	loadedThisRun := 0
	for _, w := range windows {
		if !in.Next.IsZero() && w[1].Compare(in.Next) <= 0 {
			continue // loaded by an earlier run of this backfill
		}
		if loadedThisRun == batch {
			return prog, workflow.NewContinueAsNewError(ctx, WindowBackfillName, BackfillInput{
				Spec: in.Spec, From: in.From, To: in.To, Next: w[0], Done: prog.Done, Total: prog.Total, Batch: in.Batch})
		}
		cur := WindowResult{Job: spec.Name, Begin: w[0], End: w[1]}
		prog.Current = &cur
		cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{WorkflowID: WindowRunID(spec.Name, w[1])})
		var res WindowResult
		for {
			err := workflow.ExecuteChildWorkflow(cctx, WindowLoadName, WindowInput{Spec: in.Spec, Begin: w[0], End: w[1]}).Get(ctx, &res)
			var running *temporal.ChildWorkflowExecutionAlreadyStartedError
			if errors.As(err, &running) {
				// The schedule (or an operator) is loading this window
				// right now, under the same id: wait and load it again
				// (overwrite gives the same rows, append finds it loaded).
				if err := workflow.Sleep(ctx, backfillBusyWait); err != nil {
					return prog, err
				}
				continue
			}
			if err != nil {
				return prog, fmt.Errorf("window [%s, %s): %w", w[0].Format(time.RFC3339), w[1].Format(time.RFC3339), err)
			}
			break
		}
		prog.Done++
		prog.Last, prog.Current = &res, nil
		loadedThisRun++
	}
	return prog, nil
}

// backfillWindows lists the windows of [from, to): the schedule's windows
// that end in (from, to], or [from, to) for a job without a schedule.
func backfillWindows(spec *window.Spec, from, to time.Time) ([][2]time.Time, error) {
	if spec.Schedule == nil {
		return [][2]time.Time{{from, to}}, nil
	}
	sched, err := window.NewSchedule(spec.Schedule.Cron, spec.Schedule.TimeZone)
	if err != nil {
		return nil, err
	}
	var out [][2]time.Time
	for end := sched.Next(from); !end.After(to); end = sched.Next(end) {
		begin, err := sched.Previous(end)
		if err != nil {
			return nil, err
		}
		out = append(out, [2]time.Time{begin, end})
	}
	return out, nil
}

// maxWindowSessions bounds the upload sessions a window load prepares
// (one, and another each time one expires before the publish).
const maxWindowSessions = 3

// loadWindow loads every range of a resolved window into session (a new
// one when nil, for MaxCompute) and publishes the window, keeping res's
// per-partition state and counts current for the progress query.
func loadWindow(ctx workflow.Context, spec *window.Spec, job activities.WindowJob, resolved *activities.ResolveWindowResult, session *sink.Session, res *WindowResult) error {
	short := workflow.WithActivityOptions(ctx, windowShortOptions)
	res.Records, res.Bytes, res.Errors = 0, 0, 0
	for i := range res.Partitions {
		res.Partitions[i] = WindowPartition{Partition: res.Partitions[i].Partition, First: res.Partitions[i].First, End: res.Partitions[i].End, State: WindowPending}
	}
	if spec.Writer.MaxCompute != nil && session == nil {
		var s sink.Session
		if err := workflow.ExecuteActivity(short, (*activities.Activities).PrepareWindow, activities.PrepareWindowInput{
			WindowJob: job, Destination: resolved.Destination,
		}).Get(ctx, &s); err != nil {
			return err
		}
		session = &s
	}
	if session != nil {
		res.Session = session.ID
	}

	// Load the ranges, settings.speed.concurrent at a time.
	load := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 6 * time.Hour,
		// LoadWindowRange heartbeats every few seconds, reading or not: a
		// dead worker's range moves on within 20s, and the SDK passes
		// heartbeats on every 16s (0.8 of it) for the progress bars.
		HeartbeatTimeout: 20 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute, MaximumAttempts: 10,
			NonRetryableErrorTypes: []string{"InvalidSpec", "ErrorLimitExceeded"}},
	})
	parallel := max(spec.Settings.Speed.Concurrent, 1)
	span := maxBlocksPerPartition(len(resolved.Ranges))
	loaded := make([]activities.LoadWindowRangeResult, len(resolved.Ranges))
	running := 0
	var loadErr error
	for i, r := range resolved.Ranges {
		if err := workflow.Await(ctx, func() bool { return running < parallel || loadErr != nil }); err != nil {
			return err
		}
		if loadErr != nil {
			break
		}
		running++
		res.Partitions[i].State = WindowLoading
		workflow.Go(ctx, func(gctx workflow.Context) {
			defer func() { running-- }()
			var lr activities.LoadWindowRangeResult
			err := workflow.ExecuteActivity(load, (*activities.Activities).LoadWindowRange, activities.LoadWindowRangeInput{
				WindowJob: job, Destination: resolved.Destination, Session: session,
				Range: r, Index: i, FirstBlock: i * span, Span: span,
				// Each range gets its share of the run's byte rate.
				BytesPerSecond: int64(spec.Settings.Speed.Bytes) / int64(min(parallel, len(resolved.Ranges))),
				ErrorLimit:     int64(spec.Settings.ErrorLimit.Record),
			}).Get(gctx, &lr)
			if err != nil {
				if loadErr == nil {
					loadErr = fmt.Errorf("load partition %d [%d,%d): %w", r.Partition, r.First, r.End, err)
				}
				return
			}
			loaded[i] = lr
			p := &res.Partitions[i]
			p.State, p.Records, p.Bytes, p.Errors, p.Duration, p.Objects = WindowLoaded, lr.Records, lr.Bytes, lr.DeadLetters, lr.Duration, len(lr.Objects)
			res.Records, res.Bytes, res.Errors = res.Records+lr.Records, res.Bytes+lr.Bytes, res.Errors+lr.DeadLetters
			if limit := int64(spec.Settings.ErrorLimit.Record); res.Errors > limit && loadErr == nil {
				err := fmt.Errorf("%d records failed, more than settings.errorLimit.record %d: the window is not published (the failed records are in %s)",
					res.Errors, limit, spec.Settings.DeadLetterTopic)
				loadErr = temporal.NewNonRetryableApplicationError(err.Error(), "ErrorLimitExceeded", err)
			}
		})
	}
	if err := workflow.Await(ctx, func() bool { return running == 0 }); err != nil {
		return err
	}
	if loadErr != nil {
		return loadErr
	}
	if limit := int64(spec.Settings.ErrorLimit.Record); res.Errors > limit {
		err := fmt.Errorf("%d records failed, more than settings.errorLimit.record %d: the window is not published (the failed records are in %s)",
			res.Errors, limit, spec.Settings.DeadLetterTopic)
		return temporal.NewNonRetryableApplicationError(err.Error(), "ErrorLimitExceeded", err)
	}

	// Publish: one step makes the whole window visible.
	pub := activities.PublishWindowInput{WindowJob: job, Destination: resolved.Destination, Session: session, Records: res.Records}
	for i, lr := range loaded {
		pub.Blocks = append(pub.Blocks, lr.Blocks...)
		pub.Parts = append(pub.Parts, activities.PublishedRange{WindowRange: resolved.Ranges[i], Records: lr.Records, Objects: lr.Objects})
	}
	slices.Sort(pub.Blocks)
	return workflow.ExecuteActivity(short, (*activities.Activities).PublishWindow, pub).Get(ctx, nil)
}
