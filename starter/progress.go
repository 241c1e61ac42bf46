package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/dumpflow/dumpflow/activities"
	"github.com/dumpflow/dumpflow/window"
	"github.com/dumpflow/dumpflow/workflows"
)

// Following a window run: every followPoll the starter asks the workflow's
// progress query (workflows.QueryProgress: each Kafka partition's range
// and state) and its pending activities, whose LoadWindowRange heartbeat
// details (activities.WindowProgress) hold the offset each loading
// partition's read reached. On a terminal each partition gets a progress
// bar over its range [first, end); otherwise a timestamped line is printed
// whenever a partition changes state, and a summary every
// followLineEvery. A backfill shows its windows and the partitions of the
// window it is loading (the child WindowLoad, id workflows.WindowRunID).

var (
	followPoll      = time.Second
	followLineEvery = 5 * time.Second
)

// queryTimeout bounds each progress query and describe call.
const queryTimeout = 5 * time.Second

var dataConverter = converter.GetDefaultDataConverter()

// follower follows window workflows.
type follower struct {
	c     client.Client
	out   io.Writer
	tty   bool
	loc   *time.Location
	spec  *window.Spec
	poll  time.Duration
	every time.Duration

	// partitions maps a run's LoadWindowRange activity ids to the Kafka
	// partition each loads (from the run's history).
	partitions map[string]map[string]int32
}

// loadView is what a poll saw of a WindowLoad.
type loadView struct {
	res workflows.WindowResult
	ok  bool // res is the progress query's answer
	// offsets are the heartbeat offsets (the next offset to read) of
	// loading partitions.
	offsets map[int32]int64
}

// viewLoad polls the WindowLoad id (its latest run).
func (f *follower) viewLoad(ctx context.Context, id string) loadView {
	v := loadView{offsets: map[int32]int64{}}
	qctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	if val, err := f.c.QueryWorkflow(qctx, id, "", workflows.QueryProgress); err == nil {
		v.ok = val.Get(&v.res) == nil
	}
	d, err := f.c.DescribeWorkflowExecution(qctx, id, "")
	if err != nil {
		return v
	}
	runID := d.GetWorkflowExecutionInfo().GetExecution().GetRunId()
	for _, pa := range d.GetPendingActivities() {
		if pa.GetActivityType().GetName() != activities.LoadWindowRangeName || len(pa.GetHeartbeatDetails().GetPayloads()) == 0 {
			continue
		}
		var wp activities.WindowProgress
		if err := dataConverter.FromPayloads(pa.GetHeartbeatDetails(), &wp); err != nil {
			continue
		}
		if p, ok := f.partitionOf(qctx, id, runID, pa.GetActivityId()); ok {
			v.offsets[p] = wp.Offset
		}
	}
	return v
}

// partitionOf returns the Kafka partition the LoadWindowRange activity
// activityID of a run loads, reading the run's history when the activity
// is new to it.
func (f *follower) partitionOf(ctx context.Context, id, runID, activityID string) (int32, bool) {
	if f.partitions == nil {
		f.partitions = map[string]map[string]int32{}
	}
	m := f.partitions[runID]
	if p, ok := m[activityID]; ok {
		return p, true
	}
	if m == nil {
		m = map[string]int32{}
		f.partitions[runID] = m
	}
	it := f.c.GetWorkflowHistory(ctx, id, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			break
		}
		a := ev.GetActivityTaskScheduledEventAttributes()
		if a == nil || a.GetActivityType().GetName() != activities.LoadWindowRangeName || len(a.GetInput().GetPayloads()) == 0 {
			continue
		}
		var in struct {
			Range activities.WindowRange `json:"range"`
		}
		if dataConverter.FromPayload(a.GetInput().GetPayloads()[0], &in) == nil {
			m[a.GetActivityId()] = in.Range.Partition
		}
	}
	p, ok := m[activityID]
	return p, ok
}

// renderer shows progress.
type renderer interface {
	load(v loadView)
	backfill(p workflows.BackfillProgress, ok bool, child *loadView)
	close()
}

func (f *follower) renderer() renderer {
	if f.tty {
		return newBarRenderer(f.out, f.loc, f.spec)
	}
	return &lineRenderer{w: f.out, loc: f.loc, spec: f.spec, every: f.every, states: map[int32]string{}, since: now()}
}

// followLoad follows the WindowLoad id (run runID) until it ends and
// returns its result (on failure, its last progress) and error.
func (f *follower) followLoad(ctx context.Context, id, runID string) (workflows.WindowResult, error) {
	var res workflows.WindowResult
	var runErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		runErr = f.c.GetWorkflow(ctx, id, runID).Get(ctx, &res)
	}()
	r := f.renderer()
	tick := time.NewTicker(f.poll)
	defer tick.Stop()
	last := loadView{}
poll:
	for {
		last = f.viewLoad(ctx, id)
		r.load(last)
		select {
		case <-done:
			break poll
		case <-tick.C:
		}
	}
	if ctx.Err() != nil {
		r.close()
		return res, ctx.Err()
	}
	if runErr == nil {
		r.load(loadView{res: res, ok: true})
		r.close()
		return res, nil
	}
	// The progress query still answers after the end (the worker replays
	// the run): the state the run failed in.
	if v := f.viewLoad(context.WithoutCancel(ctx), id); v.ok {
		last = v
	}
	r.load(last)
	r.close()
	return last.res, runErr
}

// followBackfill follows the WindowBackfill id until it ends and returns
// its progress and error.
func (f *follower) followBackfill(ctx context.Context, id, runID string) (workflows.BackfillProgress, error) {
	var res workflows.BackfillProgress
	var runErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		runErr = f.c.GetWorkflow(ctx, id, runID).Get(ctx, &res)
	}()
	r := f.renderer()
	tick := time.NewTicker(f.poll)
	defer tick.Stop()
	view := func(ctx context.Context) (workflows.BackfillProgress, bool, *loadView) {
		var p workflows.BackfillProgress
		qctx, cancel := context.WithTimeout(ctx, queryTimeout)
		defer cancel()
		val, err := f.c.QueryWorkflow(qctx, id, "", workflows.QueryProgress)
		if err != nil || val.Get(&p) != nil {
			return p, false, nil
		}
		if p.Current == nil {
			return p, true, nil
		}
		cv := f.viewLoad(ctx, workflows.WindowRunID(f.spec.Name, p.Current.End))
		return p, true, &cv
	}
	var last workflows.BackfillProgress
poll:
	for {
		p, ok, child := view(ctx)
		if ok {
			last = p
		}
		r.backfill(p, ok, child)
		select {
		case <-done:
			break poll
		case <-tick.C:
		}
	}
	if ctx.Err() != nil {
		r.close()
		return res, ctx.Err()
	}
	if runErr == nil {
		r.backfill(res, true, nil)
		r.close()
		return res, nil
	}
	if p, ok, _ := view(context.WithoutCancel(ctx)); ok {
		last = p
	}
	r.backfill(last, true, nil)
	r.close()
	return last, runErr
}

// ---- plain lines ----

// lineRenderer prints timestamped lines: one per partition state change,
// and a summary of the loading partitions every `every`.
type lineRenderer struct {
	w     io.Writer
	loc   *time.Location
	spec  *window.Spec
	every time.Duration
	since time.Time // start, or the last periodic line

	resolved bool
	states   map[int32]string
	offsets  map[int32]int64
	waiting  time.Time // last "waiting" line

	// backfill
	bfStarted bool
	bfDone    int
	bfCurrent time.Time // end of the window loading
}

func (l *lineRenderer) printf(format string, args ...any) {
	fmt.Fprintf(l.w, "%s %s\n", now().Format(time.RFC3339), fmt.Sprintf(format, args...))
}

func (l *lineRenderer) wait() {
	if t := now(); t.Sub(l.since) >= l.every && t.Sub(l.waiting) >= l.every {
		l.waiting = t
		l.printf("waiting for the run's progress (is a worker polling task queue %s?)", workflows.TaskQueue)
	}
}

func (l *lineRenderer) load(v loadView) {
	if !v.ok || v.res.End.IsZero() {
		l.wait()
		return
	}
	r := v.res
	if len(r.Partitions) == 0 && !r.AlreadyLoaded {
		// Resolving; or waiting for the window to end (plus
		// schedule.delay) before that.
		if due := r.End.Add(scheduleDelay(l.spec)); now().Before(due) && now().Sub(l.waiting) >= l.every {
			l.waiting = now()
			l.printf("window %s: the run waits until %s, then resolves it", fmtWindow(r.Begin, r.End, l.loc), fmtTime(due, l.loc))
		}
		return
	}
	if !l.resolved {
		l.resolved, l.since = true, now()
		var offs int64
		for _, p := range r.Partitions {
			offs += p.End - p.First
			if p.State == workflows.WindowPending {
				l.states[p.Partition] = p.State
			}
		}
		l.printf("window %s resolved: %d Kafka partitions, %d offsets to read → %s", fmtWindow(r.Begin, r.End, l.loc), len(r.Partitions), offs, destinationOf(l.spec, r.Destination))
		if r.AlreadyLoaded {
			l.printf("window %s was loaded by an earlier run (append): nothing to do", fmtWindow(r.Begin, r.End, l.loc))
		}
	}
	for _, p := range r.Partitions {
		if l.states[p.Partition] == p.State {
			continue
		}
		l.states[p.Partition] = p.State
		switch p.State {
		case workflows.WindowLoaded:
			l.printf("partition %d [%d,%d): loaded %d records, %s, %d errors in %s", p.Partition, p.First, p.End, p.Records, human(p.Bytes), p.Errors, roundDuration(p.Duration))
		default:
			l.printf("partition %d [%d,%d): %s", p.Partition, p.First, p.End, p.State)
		}
	}
	l.offsets = v.offsets
	if t := now(); t.Sub(l.since) >= l.every {
		l.since = t
		if s := loadSummary(r, v.offsets); s != "" {
			l.printf("%s", s)
		}
	}
}

// loadSummary sums up a load in progress: partitions loaded, records, and
// where each loading partition's read is.
func loadSummary(r workflows.WindowResult, offsets map[int32]int64) string {
	loaded := 0
	var loading []string
	for _, p := range r.Partitions {
		switch p.State {
		case workflows.WindowLoaded:
			loaded++
		case workflows.WindowLoading:
			if o, ok := offsets[p.Partition]; ok && p.End > p.First {
				loading = append(loading, fmt.Sprintf("partition %d at offset %d of [%d,%d) (%d%%)", p.Partition, o, p.First, p.End, 100*(o-p.First)/(p.End-p.First)))
			} else {
				loading = append(loading, fmt.Sprintf("partition %d loading [%d,%d)", p.Partition, p.First, p.End))
			}
		}
	}
	if len(r.Partitions) == 0 || loaded == len(r.Partitions) {
		return ""
	}
	s := fmt.Sprintf("%d/%d partitions loaded, %d records", loaded, len(r.Partitions), r.Records)
	if len(loading) > 0 {
		s += "; " + strings.Join(loading, "; ")
	}
	return s
}

func (l *lineRenderer) backfill(p workflows.BackfillProgress, ok bool, child *loadView) {
	if !ok {
		l.wait()
		return
	}
	if !l.bfStarted {
		l.bfStarted, l.since = true, now()
		l.printf("backfill %s: %d windows", fmtWindow(p.From, p.To, l.loc), p.Total)
	}
	if p.Done > l.bfDone && p.Last != nil {
		first := l.bfDone + 1
		l.bfDone = p.Done
		what := fmt.Sprintf("window %d/%d", p.Done, p.Total)
		if first < p.Done {
			what = fmt.Sprintf("windows %d-%d/%d loaded; window %d/%d", first, p.Done, p.Total, p.Done, p.Total)
		}
		l.printf("%s %s loaded: %d records → %s", what, fmtWindow(p.Last.Begin, p.Last.End, l.loc), p.Last.Records, destinationOf(l.spec, p.Last.Destination))
	}
	if p.Current != nil && !p.Current.End.Equal(l.bfCurrent) {
		l.bfCurrent = p.Current.End
		l.resolved, l.states = false, map[int32]string{}
		l.printf("window %d/%d %s: loading (%s)", p.Done+1, p.Total, fmtWindow(p.Current.Begin, p.Current.End, l.loc), workflows.WindowRunID(l.spec.Name, p.Current.End))
	}
	if child != nil && child.ok && child.res.End.Equal(l.bfCurrent) {
		l.load(*child)
	}
}

func (l *lineRenderer) close() {}

// ---- progress bars ----

// barRenderer draws a progress bar per Kafka partition (and one for a
// backfill's windows) with mpb. Its methods are called from one goroutine;
// the decorators, which mpb calls from its own, read only atomics (a lock
// shared with them could deadlock against a bar update, which waits for
// the bar's goroutine).
type barRenderer struct {
	p    *mpb.Progress
	loc  *time.Location
	spec *window.Spec

	inBackfill bool      // bars of a backfill's current window: removed once loaded
	window     time.Time // end of the window the partition bars are of
	bars       map[int32]*partBar
	winBar     *mpb.Bar
	winDone    atomic.Int64
}

// partBar is one Kafka partition's bar and what its decorators show.
type partBar struct {
	bar        *mpb.Bar
	first, end int64
	offset     atomic.Int64
	records    atomic.Int64
	state      atomic.Value // string
}

func newBarRenderer(w io.Writer, loc *time.Location, spec *window.Spec, opts ...mpb.ContainerOption) *barRenderer {
	b := &barRenderer{loc: loc, spec: spec, bars: map[int32]*partBar{}}
	b.p = mpb.New(append([]mpb.ContainerOption{mpb.WithOutput(w), mpb.WithWidth(40), mpb.WithRefreshRate(200 * time.Millisecond)}, opts...)...)
	return b
}

func (b *barRenderer) load(v loadView) {
	if !v.ok || v.res.End.IsZero() {
		return
	}
	r := v.res
	if !r.End.Equal(b.window) {
		for _, pb := range b.bars {
			pb.bar.Abort(true)
		}
		b.bars, b.window = map[int32]*partBar{}, r.End
	}
	parts := append([]workflows.WindowPartition(nil), r.Partitions...)
	sort.Slice(parts, func(i, j int) bool { return parts[i].Partition < parts[j].Partition })
	// An empty range is a bar of one step, full once loaded.
	steps := func(p workflows.WindowPartition) int64 { return max(p.End-p.First, 1) }
	for _, p := range parts {
		pb := b.bars[p.Partition]
		if pb == nil {
			pb = &partBar{first: p.First, end: p.End}
			pb.offset.Store(p.First)
			pb.state.Store(p.State)
			pb.bar = b.p.AddBar(steps(p), mpb.BarOptional(mpb.BarRemoveOnComplete(), b.inBackfill),
				mpb.PrependDecorators(decor.Name(fmt.Sprintf("partition %-3d", p.Partition), decor.WCSyncSpaceR)),
				mpb.AppendDecorators(decor.Any(func(decor.Statistics) string {
					return fmt.Sprintf("offset %d of [%d,%d)  %d records  %s", pb.offset.Load(), pb.first, pb.end, pb.records.Load(), pb.state.Load())
				})))
			b.bars[p.Partition] = pb
		}
		pb.state.Store(p.State)
		pb.records.Store(p.Records)
		switch p.State {
		case workflows.WindowLoaded:
			pb.offset.Store(p.End)
			pb.bar.SetTotal(steps(p), true)
		case workflows.WindowLoading:
			if o, ok := v.offsets[p.Partition]; ok {
				pb.offset.Store(o)
				pb.bar.SetCurrent(o - p.First)
			}
		}
	}
}

func (b *barRenderer) backfill(p workflows.BackfillProgress, ok bool, child *loadView) {
	if !ok {
		return
	}
	b.inBackfill = true
	if b.winBar == nil && p.Total > 0 {
		total, span := p.Total, fmtWindow(p.From, p.To, b.loc)
		b.winBar = b.p.AddBar(int64(total), mpb.BarPriority(-1),
			mpb.PrependDecorators(decor.Name("windows      ", decor.WCSyncSpaceR)),
			mpb.AppendDecorators(decor.Any(func(decor.Statistics) string {
				return fmt.Sprintf("%d/%d windows of %s", b.winDone.Load(), total, span)
			})))
	}
	b.winDone.Store(int64(p.Done))
	if b.winBar != nil {
		b.winBar.SetCurrent(int64(p.Done))
	}
	if child != nil && child.ok && p.Current != nil && child.res.End.Equal(p.Current.End) {
		b.load(*child)
	}
}

func (b *barRenderer) close() {
	// A load's bars stay as they ended; a backfill keeps its windows bar
	// (the result table lists the windows).
	for _, pb := range b.bars {
		pb.bar.Abort(b.inBackfill)
	}
	if b.winBar != nil {
		b.winBar.Abort(false)
	}
	b.p.Wait()
}

// ---- failures ----

// explainFailure reads a workflow's error as one line: the context each
// wrapping step added (the window, the partition), then the typed
// application error at its root, e.g.
//
//	load partition 0 [0,3): ErrorLimitExceeded: 3 records of partition 0 failed, more than settings.errorLimit.record 0 (...)
func explainFailure(err error) string {
	var parts []string
	var root *temporal.ApplicationError
loop:
	for e := err; e != nil; e = errors.Unwrap(e) {
		switch x := e.(type) {
		case *temporal.ApplicationError:
			if t := x.Type(); t != "" && t != "wrapError" && t != "wrapErrors" {
				root = x
				break loop
			}
			// A fmt.Errorf in the workflow: keep what it added.
			msg := x.Message()
			for _, cut := range []string{": activity error (", ": child workflow execution error (", ": workflow execution error ("} {
				if i := strings.Index(msg, cut); i >= 0 {
					msg = msg[:i]
				}
			}
			parts = append(parts, msg)
		case *temporal.TimeoutError:
			parts = append(parts, x.Error())
			break loop
		case *temporal.CanceledError:
			parts = append(parts, "canceled")
			break loop
		case *temporal.TerminatedError:
			parts = append(parts, "terminated")
			break loop
		}
	}
	if root != nil {
		parts = append(parts, root.Type()+": "+root.Message())
	}
	// Drop context that the next part repeats.
	out := parts[:0]
	for i, p := range parts {
		if p == "" || (i+1 < len(parts) && strings.Contains(parts[i+1], p)) {
			continue
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		return err.Error()
	}
	return strings.Join(out, ": ")
}
