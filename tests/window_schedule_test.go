package tests

// End-to-end tests of window jobs run by Temporal Schedules
// (workflows.ScheduleOptions): the schedule fires on wall-clock time, so
// the jobs here fire every minute (cron "* * * * *" at GMT+08:00) and the
// records are stamped inside the minutes whose windows will fire, relative
// to now. A run whose nominal time is f loads [f-1m, f) into partition
// pt=<yyyyMMddHHmm of f-1m>. Every test reads back what the runs left in the
// MaxCompute emulator (through the SDK, window_harness_test.go) and the
// job's consumer group (through kadm), not only our own metadata.
//
// The shared helpers (win*) are in window_harness_test.go; the ones of this
// file start with "sched".

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	schedulepb "go.temporal.io/api/schedule/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/dumpflow/dumpflow/window"
	"github.com/dumpflow/dumpflow/workflows"
)

const (
	schedCron = "* * * * *"
	schedZone = "GMT+08:00"
	// schedRunTimeout bounds the wait for a scheduled run after its fire
	// time: generous, other tests share the machine.
	schedRunTimeout = 2 * time.Minute
)

// schedJob is a MaxCompute window job (winMCSpec's table and columns) that
// fires every minute at GMT+08:00 and loads each window into the partition
// of its minute, pt=${yyyyMMddHHmm}; mod, when given, changes the spec
// before it is defaulted and validated.
func (s *stack) schedJob(name, topic, table string, mod func(*window.Spec)) winJob {
	s.t.Helper()
	spec := s.winMCSpec(name, topic, table)
	spec.Writer.MaxCompute.Partition = "pt=${yyyyMMddHHmm}"
	spec.Schedule = &window.ScheduleSpec{Cron: schedCron, TimeZone: schedZone}
	if mod != nil {
		mod(spec)
	}
	return s.winJobOf(spec)
}

// schedCreate creates the job's Temporal Schedule from
// workflows.ScheduleOptions, as `starter window schedule` does.
func (s *stack) schedCreate(job winJob) client.ScheduleHandle {
	s.t.Helper()
	opts, err := workflows.ScheduleOptions(job.Spec)
	require.NoError(s.t, err)
	h, err := s.client.ScheduleClient().Create(context.Background(), opts)
	require.NoError(s.t, err)
	require.Equal(s.t, "window-"+job.Name(), h.GetID())
	s.t.Cleanup(func() { _ = h.Delete(context.Background()) })
	return h
}

// schedDescribe describes the schedule.
func schedDescribe(t *testing.T, h client.ScheduleHandle) *client.ScheduleDescription {
	t.Helper()
	d, err := h.Describe(context.Background())
	require.NoError(t, err)
	return d
}

// schedRawInfo is the server's own ScheduleInfo, with what the SDK's
// description leaves out (BufferSize, BufferDropped).
func (s *stack) schedRawInfo(id string) *schedulepb.ScheduleInfo {
	s.t.Helper()
	resp, err := s.client.WorkflowService().DescribeSchedule(context.Background(), &workflowservice.DescribeScheduleRequest{
		Namespace: s.temporal.GetDefaultNamespace(), ScheduleId: id,
	})
	require.NoError(s.t, err)
	return resp.GetInfo()
}

// schedPT is the table partition of the window that begins at begin: its
// minute at GMT+08:00 (gmt8 is built independently of the window package).
func schedPT(begin time.Time) string { return "pt=" + begin.In(gmt8).Format("200601021504") }

// schedRunID is the workflow id Temporal gives the schedule's run of fire
// time f, spelled out here: the action's id "window-<name>" and the
// nominal time, UTC, RFC 3339.
func schedRunID(name string, f time.Time) string {
	return "window-" + name + "-" + f.UTC().Format(time.RFC3339)
}

// schedNextFire returns the next minute boundary that is at least margin
// away, sleeping past the next one when it is too close, so that a test
// can produce its records and create its schedule before it.
func schedNextFire(margin time.Duration) time.Time {
	f := time.Now().Truncate(time.Minute).Add(time.Minute)
	if time.Until(f) < margin {
		time.Sleep(time.Until(f) + time.Second)
		f = f.Add(time.Minute)
	}
	return f
}

func schedSleepUntil(at time.Time) {
	if d := time.Until(at); d > 0 {
		time.Sleep(d)
	}
}

// schedProduceWindow produces to every partition p of topic p+3 records
// stamped in the window [b, b+1m), in timestamp order: one exactly on b
// (the first instant of the window), p+1 in between, one 1ms before its end
// (the last instant).
func (s *stack) schedProduceWindow(topic string, partitions int32, b time.Time) []winRec {
	s.t.Helper()
	var out []winRec
	for p := int32(0); p < partitions; p++ {
		tss := []time.Time{b}
		for i := 0; i <= int(p); i++ {
			tss = append(tss, b.Add(time.Duration(i+1)*10*time.Second+time.Duration(p)*time.Millisecond))
		}
		tss = append(tss, b.Add(time.Minute-time.Millisecond))
		out = append(out, s.winProduceAt(topic, p, tss...)...)
	}
	return out
}

// schedEndOffsets is where a window ending at end ends in each partition,
// from the records produced (each partition's in timestamp order): the
// offset of the first record stamped at or after end, else the offset after
// the last record. It is what the job's position must be after the run of
// that window.
func schedEndOffsets(recs []winRec, partitions int32, end time.Time) map[int32]int64 {
	out := map[int32]int64{}
	for p := int32(0); p < partitions; p++ {
		next, first := int64(0), int64(-1)
		for _, r := range recs {
			if r.Partition != p {
				continue
			}
			next = max(next, r.Offset+1)
			if !r.TS.Before(end) && (first < 0 || r.Offset < first) {
				first = r.Offset
			}
		}
		if first < 0 {
			first = next
		}
		out[p] = first
	}
	return out
}

// schedExec describes a workflow execution (the latest run of id).
func (s *stack) schedExec(id string) *workflowservice.DescribeWorkflowExecutionResponse {
	s.t.Helper()
	d, err := s.client.DescribeWorkflowExecution(context.Background(), id, "")
	require.NoError(s.t, err, "describe %s", id)
	return d
}

// schedRequireNoRun asserts that no workflow with id exists.
func (s *stack) schedRequireNoRun(id, why string) {
	s.t.Helper()
	_, err := s.client.DescribeWorkflowExecution(context.Background(), id, "")
	var nf *serviceerror.NotFound
	require.Truef(s.t, errors.As(err, &nf), "%s: workflow %s must not exist (describe: %v)", why, id, err)
}

// schedScheduledStart is the run's TemporalScheduledStartTime, the
// nominal time WindowLoad takes its window from.
func (s *stack) schedScheduledStart(id string) time.Time {
	s.t.Helper()
	p := s.schedExec(id).GetWorkflowExecutionInfo().GetSearchAttributes().GetIndexedFields()["TemporalScheduledStartTime"]
	require.NotNil(s.t, p, "%s has no TemporalScheduledStartTime", id)
	var ts time.Time
	require.NoError(s.t, converter.GetDefaultDataConverter().FromPayload(p, &ts))
	return ts
}

// schedRequireWindow asserts a run's result names the window [b, b+1m)
// and its partition.
func schedRequireWindow(t *testing.T, res workflows.WindowResult, b time.Time, what string) {
	t.Helper()
	require.Truef(t, res.Begin.Equal(b) && res.End.Equal(b.Add(time.Minute)), "%s: window [%s, %s), want [%s, %s)", what,
		res.Begin.Format(time.RFC3339), res.End.Format(time.RFC3339), b.Format(time.RFC3339), b.Add(time.Minute).Format(time.RFC3339))
	require.Equal(t, schedPT(b), res.Destination, what)
}

// schedRequireActions asserts the schedule's recent actions are exactly
// the scheduled runs of fires, in order: their schedule times and the
// workflow ids Temporal gave them.
func schedRequireActions(t *testing.T, d *client.ScheduleDescription, name string, fires ...time.Time) {
	t.Helper()
	require.Equal(t, len(fires), d.Info.NumActions, "actions taken")
	require.Len(t, d.Info.RecentActions, len(fires))
	for i, f := range fires {
		a := d.Info.RecentActions[i]
		require.Truef(t, a.ScheduleTime.Equal(f), "action %d scheduled at %s, want %s", i, a.ScheduleTime, f)
		require.NotNil(t, a.StartWorkflowResult)
		require.Equal(t, schedRunID(name, f), a.StartWorkflowResult.WorkflowID)
	}
}

// TestScheduleRunsWindows creates a job's schedule and lets it fire twice:
// each run loads exactly its minute's records (on both edges of the
// window, none of the minute before or after) into its own partition,
// under the workflow id "window-<name>-<nominal RFC 3339>" with the nominal
// time as its TemporalScheduledStartTime, and the job's consumer group
// ends at the second window's end offsets.
func TestScheduleRunsWindows(t *testing.T) {
	t.Parallel() // waits for the clock most of the time
	s := newStack(t)
	s.startWorker()
	const name, topic, table, parts = "sched-runs", "sched-runs", "sched_runs", 3
	s.createTopic(topic, parts)
	s.winCreateTable(table)
	job := s.schedJob(name, topic, table, nil)

	f1 := schedNextFire(15 * time.Second)
	f2, f3 := f1.Add(time.Minute), f1.Add(2*time.Minute)
	// Windows: the minute before the first one the schedule loads (never
	// loaded), the two its first runs load, and the one after.
	begins := []time.Time{f1.Add(-2 * time.Minute), f1.Add(-time.Minute), f1, f2}
	var recs []winRec
	for _, b := range begins {
		recs = append(recs, s.schedProduceWindow(topic, parts, b)...)
	}

	h := s.schedCreate(job)
	d := schedDescribe(t, h)
	require.GreaterOrEqual(t, len(d.Info.NextActionTimes), 2)
	require.Truef(t, d.Info.NextActionTimes[0].Equal(f1) && d.Info.NextActionTimes[1].Equal(f2),
		"next fire times %v, want %s, %s", d.Info.NextActionTimes[:2], f1, f2)
	require.False(t, d.Schedule.State.Paused)
	require.Equal(t, "Etc/GMT-8", d.Schedule.Spec.TimeZoneName)

	for _, f := range []time.Time{f1, f2} {
		id := schedRunID(name, f)
		require.Equal(t, id, workflows.WindowRunID(name, f), "WindowRunID names the schedule's run")
		res, err := s.winResult(id, time.Until(f)+schedRunTimeout)
		require.NoError(t, err, "run %s", id)
		schedRequireWindow(t, res, f.Add(-time.Minute), id)
		require.Truef(t, s.schedScheduledStart(id).Equal(f), "%s: TemporalScheduledStartTime %s, want %s", id, s.schedScheduledStart(id), f)
	}
	// The third run (f3) would move the position: stop the schedule first.
	d = schedDescribe(t, h)
	require.NoError(t, h.Delete(context.Background()))
	require.Truef(t, time.Now().Before(f3), "the second run closed after the third fire time %s", f3)
	schedRequireActions(t, d, name, f1, f2)
	require.Zero(t, d.Info.NumActionsMissedCatchupWindow)
	require.Zero(t, d.Info.NumActionsSkippedOverlap)

	require.Equal(t, []string{schedPT(begins[1]), schedPT(begins[2])}, s.winMCPartitions(table),
		"only the two scheduled windows have partitions")
	for _, b := range begins[1:3] {
		winRequireRows(t, s.winMCRows(table, schedPT(b)), winIn(recs, b, b.Add(time.Minute)), schedPT(b))
	}
	require.Equal(t, schedEndOffsets(recs, parts, f2), s.winGroupOffsets(job),
		"the job's position is the second window's end: the first record of the minute after")
}

// TestScheduleCatchUpAfterWorkerDown lets two fire times pass with no
// worker: the server starts the first run (nobody runs it) and, with
// overlap bufferAll, buffers the second. A worker then starts and both
// windows are loaded, in order (the second run starts after the first
// closed), exactly once each: the job appends (truncate false), so a
// window loaded twice would show its rows twice. The schedule's info
// counts no missed and no skipped action.
func TestScheduleCatchUpAfterWorkerDown(t *testing.T) {
	t.Parallel() // waits for the clock most of the time
	s := newStack(t)
	const name, topic, table, parts = "sched-catchup", "sched-catchup", "sched_catchup", 2
	s.createTopic(topic, parts)
	s.winCreateTable(table)
	job := s.schedJob(name, topic, table, func(spec *window.Spec) {
		spec.Writer.MaxCompute.Truncate = winBool(false)
		spec.Schedule.Overlap = window.OverlapBufferAll
	})

	f1 := schedNextFire(15 * time.Second)
	f2, f3 := f1.Add(time.Minute), f1.Add(2*time.Minute)
	begins := []time.Time{f1.Add(-time.Minute), f1, f2}
	var recs []winRec
	for _, b := range begins {
		recs = append(recs, s.schedProduceWindow(topic, parts, b)...)
	}
	h := s.schedCreate(job)
	id1, id2 := schedRunID(name, f1), schedRunID(name, f2)

	// Both fire times pass with no worker.
	schedSleepUntil(f2.Add(5 * time.Second))
	d := schedDescribe(t, h)
	schedRequireActions(t, d, name, f1)
	require.Len(t, d.Info.RunningWorkflows, 1)
	require.Equal(t, id1, d.Info.RunningWorkflows[0].WorkflowID, "the first run is started, waiting for a worker")
	require.Equal(t, enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, s.schedExec(id1).GetWorkflowExecutionInfo().GetStatus())
	require.EqualValues(t, 1, s.schedRawInfo(h.GetID()).GetBufferSize(), "the second fire time is buffered behind the first run")
	s.schedRequireNoRun(id2, "bufferAll starts the second run after the first closes")
	require.Zero(t, d.Info.NumActionsMissedCatchupWindow)
	require.Zero(t, d.Info.NumActionsSkippedOverlap)
	require.Empty(t, s.winMCPartitions(table), "nothing is loaded without a worker")

	s.startWorker()
	for _, f := range []time.Time{f1, f2} {
		id := schedRunID(name, f)
		res, err := s.winResult(id, schedRunTimeout)
		require.NoError(t, err, "run %s", id)
		schedRequireWindow(t, res, f.Add(-time.Minute), id)
	}
	e1, e2 := s.schedExec(id1).GetWorkflowExecutionInfo(), s.schedExec(id2).GetWorkflowExecutionInfo()
	require.Equal(t, enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED, e1.GetStatus())
	require.Equal(t, enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED, e2.GetStatus())
	require.Falsef(t, e2.GetStartTime().AsTime().Before(e1.GetCloseTime().AsTime()),
		"the second window's run started at %s, before the first closed at %s", e2.GetStartTime().AsTime(), e1.GetCloseTime().AsTime())

	d = schedDescribe(t, h)
	raw := s.schedRawInfo(h.GetID())
	require.NoError(t, h.Delete(context.Background()))
	require.Truef(t, time.Now().Before(f3), "the catch-up closed after the third fire time %s", f3)
	schedRequireActions(t, d, name, f1, f2)
	require.Zero(t, d.Info.NumActionsMissedCatchupWindow, "bufferAll misses no window")
	require.Zero(t, d.Info.NumActionsSkippedOverlap, "bufferAll skips no window")
	require.Zero(t, raw.GetBufferDropped())
	require.Zero(t, raw.GetBufferSize())
	require.Empty(t, d.Info.RunningWorkflows)

	// Each window once: one run per fire time in visibility, and each
	// partition holds its window's rows once (append would repeat them).
	require.Eventually(t, func() bool {
		resp, err := s.client.CountWorkflow(context.Background(), &workflowservice.CountWorkflowExecutionsRequest{
			Namespace: s.temporal.GetDefaultNamespace(), Query: fmt.Sprintf("TemporalScheduledById = '%s'", h.GetID()),
		})
		return err == nil && resp.GetCount() == 2
	}, 30*time.Second, 500*time.Millisecond, "two runs of the schedule in visibility")
	require.Equal(t, []string{schedPT(begins[0]), schedPT(begins[1])}, s.winMCPartitions(table))
	for _, b := range begins[:2] {
		winRequireRows(t, s.winMCRows(table, schedPT(b)), winIn(recs, b, b.Add(time.Minute)), schedPT(b))
	}
	require.Equal(t, schedEndOffsets(recs, parts, f2), s.winGroupOffsets(job))
}

// schedChainRun is one run of a seekToLast chain as the test expects it.
type schedChainRun struct {
	begin time.Time // its window [begin, begin+1m)
	want  []winRec  // the records it must load
	res   workflows.WindowResult
}

// TestScheduleSeekToLastChains runs a job with reader.begin seekToLast
// four times, producing between the runs (records of the coming window,
// late records of windows already loaded, records of a later window), once
// with reader.end window and once with seekToEnd. The runs are started
// by hand as scheduled runs would be (WindowLoad with UpdatePosition and
// the window given), one minute apart in the past, not by the schedule:
// seekToLast makes the schedule's timing irrelevant, and so the test
// takes seconds. Read back from the partitions: every record produced is
// loaded exactly once across the runs; in each Kafka partition each run's
// offsets are contiguous and start where the previous run's ended; the
// first run starts at the log start (no position yet); and the job's
// position ends at the log end.
func TestScheduleSeekToLastChains(t *testing.T) {
	s := newStack(t)
	s.startWorker()
	const parts = 3
	for _, end := range []string{string(window.KindWindow), string(window.KindSeekToEnd)} {
		name := "sched-chain-" + strings.ToLower(end)
		topic, table := name, strings.ReplaceAll(name, "-", "_")
		s.createTopic(topic, parts)
		s.winCreateTable(table)
		job := s.schedJob(name, topic, table, func(spec *window.Spec) {
			spec.Reader.Begin = window.NewPosition(string(window.KindSeekToLast))
			spec.Reader.End = window.NewPosition(end)
		})
		T := time.Now().Truncate(time.Minute).Add(-10 * time.Minute)
		w := func(k int) time.Time { return T.Add(time.Duration(k) * time.Minute) }

		var all []winRec // every record produced so far, in produce order
		produce := func(p int32, tss ...time.Time) {
			all = append(all, s.winProduceAt(topic, p, tss...)...)
		}
		// Records from before the first window: seekToLast with no
		// position starts at the log start, so the first run loads them.
		produce(0, T.Add(-5*time.Minute), T.Add(-4*time.Minute))
		produce(1, T.Add(-5*time.Minute))

		// pos is where the previous run ended in each partition (0: the
		// log start), from the records produced: the expectation is
		// computed here, not read from dumpflow.
		pos := map[int32]int64{}
		var runs []*schedChainRun
		run := func(k int) {
			t.Helper()
			b := w(k)
			cur := &schedChainRun{begin: b}
			for p := int32(0); p < parts; p++ {
				var inP []winRec
				for _, r := range all {
					if r.Partition == p {
						inP = append(inP, r)
					}
				}
				endOff := int64(len(inP)) // seekToEnd, or no record at or after the window's end
				if end == string(window.KindWindow) {
					for _, r := range inP {
						if !r.TS.Before(b.Add(time.Minute)) {
							endOff = r.Offset
							break
						}
					}
				}
				for _, r := range inP {
					if r.Offset >= pos[p] && r.Offset < endOff {
						cur.want = append(cur.want, r)
					}
				}
				pos[p] = max(pos[p], endOff)
			}
			res, err := s.winWait(s.winStart(job, workflows.WindowInput{Begin: b, End: b.Add(time.Minute), UpdatePosition: true}))
			require.NoError(t, err, "%s: run of [%s, +1m)", name, b.Format(time.RFC3339))
			schedRequireWindow(t, res, b, name)
			cur.res = res
			runs = append(runs, cur)
		}

		produceWindow := func(k int, ps ...int32) {
			for _, p := range ps {
				produce(p, w(k), w(k).Add(20*time.Second), w(k).Add(time.Minute-time.Millisecond))
			}
		}
		produceWindow(0, 0, 1, 2)
		run(0)
		// Late records of window 0, window 1's, and two early ones of
		// window 2 (end window leaves these to the run after).
		produce(0, w(0).Add(30*time.Second))
		produce(1, w(0).Add(40*time.Second))
		produceWindow(1, 0, 1, 2)
		produce(0, w(2).Add(time.Second), w(2).Add(2*time.Second))
		run(1)
		// Window 2 in partition 0 only; a late record of window 1 in
		// partition 2.
		produceWindow(2, 0)
		produce(2, w(1).Add(30*time.Second))
		run(2)
		// Nothing new: an empty run.
		run(3)

		// From the data: each run's partition holds exactly the records
		// expected, and, per Kafka partition, the runs' offsets read in
		// order are 0, 1, 2, … up to the log end, each once.
		require.Len(t, s.winMCPartitions(table), len(runs))
		next := map[int32]int64{}
		for i, r := range runs {
			rows := s.winMCRows(table, schedPT(r.begin))
			winRequireRows(t, rows, r.want, fmt.Sprintf("%s run %d", name, i))
			offs := map[int32][]int64{}
			for _, row := range rows {
				p, o := int32(row["kafka_partition"].(int64)), row["kafka_offset"].(int64)
				offs[p] = append(offs[p], o)
			}
			for p := int32(0); p < parts; p++ {
				slices.Sort(offs[p])
				for _, o := range offs[p] {
					require.Equalf(t, next[p], o, "%s run %d partition %d: offsets %v do not continue the previous run's (next %d)", name, i, p, offs[p], next[p])
					next[p]++
				}
				// The run's own account agrees: its range starts where
				// the previous run's ended.
				rp := r.res.Partitions[p]
				require.Equal(t, p, rp.Partition)
				if i > 0 {
					require.Equalf(t, runs[i-1].res.Partitions[p].End, rp.First, "%s run %d partition %d starts where run %d ended", name, i, p, i-1)
				} else {
					require.Zero(t, rp.First, "the first run starts at the log start")
				}
				require.Equal(t, int64(len(offs[p])), rp.End-rp.First, "%s run %d partition %d: its range and its rows", name, i, p)
			}
		}
		require.Empty(t, runs[3].want, "the last run had nothing new")
		logEnd := map[int32]int64{}
		for _, r := range all {
			logEnd[r.Partition] = max(logEnd[r.Partition], r.Offset+1)
		}
		require.Equal(t, logEnd, next, "%s: every record produced was loaded once", name)
		require.Equal(t, logEnd, s.winGroupOffsets(job), "%s: the position is the log end", name)
	}
}

// TestScheduleBackfillDoesNotMovePosition lets the schedule load one
// window, which moves the job's position; then, with the schedule paused
// (no scheduled run can move it further), a schedule backfill of two
// earlier fire times — its runs are the schedule's action as it is, with
// UpdatePosition — and a WindowBackfill of the window between them and the
// scheduled one load their windows, and the position does not move.
func TestScheduleBackfillDoesNotMovePosition(t *testing.T) {
	t.Parallel() // waits for the clock most of the time
	s := newStack(t)
	s.startWorker()
	const name, topic, table, parts = "sched-backfill", "sched-backfill", "sched_backfill", 2
	s.createTopic(topic, parts)
	s.winCreateTable(table)
	job := s.schedJob(name, topic, table, nil)

	f1 := schedNextFire(15 * time.Second)
	// Windows by their begin: b[0..2] are backfilled, b[3] is the
	// scheduled run's, b[4] comes after.
	var b []time.Time
	var recs []winRec
	for k := -4; k <= 0; k++ {
		b = append(b, f1.Add(time.Duration(k)*time.Minute))
		recs = append(recs, s.schedProduceWindow(topic, parts, b[len(b)-1])...)
	}
	h := s.schedCreate(job)
	res, err := s.winResult(schedRunID(name, f1), time.Until(f1)+schedRunTimeout)
	require.NoError(t, err)
	schedRequireWindow(t, res, b[3], "scheduled run")
	pos := s.winGroupOffsets(job)
	require.Equal(t, schedEndOffsets(recs, parts, f1), pos, "the scheduled run moved the position to its window's end")

	require.NoError(t, h.Pause(context.Background(), client.SchedulePauseOptions{Note: "backfill under test"}))
	require.True(t, schedDescribe(t, h).Schedule.State.Paused)

	// Temporal's backfill of fire times b[1] and b[2] (both ends
	// inclusive): windows b[0] and b[1].
	require.NoError(t, h.Backfill(context.Background(), client.ScheduleBackfillOptions{Backfill: []client.ScheduleBackfill{{
		Start: b[1], End: b[2], Overlap: enumspb.SCHEDULE_OVERLAP_POLICY_BUFFER_ALL,
	}}}))
	for i, f := range []time.Time{b[1], b[2]} {
		id := schedRunID(name, f)
		res, err := s.winResult(id, schedRunTimeout)
		require.NoError(t, err, "backfilled run %s", id)
		schedRequireWindow(t, res, b[i], id)
		require.Truef(t, s.schedScheduledStart(id).Equal(f), "%s: TemporalScheduledStartTime %s, want %s", id, s.schedScheduledStart(id), f)
	}
	require.Equal(t, pos, s.winGroupOffsets(job), "the schedule's backfill left the position")

	// WindowBackfill of the windows ending in (b[2], b[3]]: window b[2].
	prog, err := s.winBackfill(job, b[2], b[3])
	require.NoError(t, err)
	require.Equal(t, 1, prog.Done)
	require.Equal(t, 1, prog.Total)
	require.NotNil(t, prog.Last)
	schedRequireWindow(t, *prog.Last, b[2], "WindowBackfill")
	require.Equal(t, pos, s.winGroupOffsets(job), "WindowBackfill left the position")

	require.Equal(t, []string{schedPT(b[0]), schedPT(b[1]), schedPT(b[2]), schedPT(b[3])}, s.winMCPartitions(table))
	for _, w := range b[:4] {
		winRequireRows(t, s.winMCRows(table, schedPT(w)), winIn(recs, w, w.Add(time.Minute)), schedPT(w))
	}
	d := schedDescribe(t, h)
	require.Equal(t, 3, d.Info.NumActions, "the scheduled run and the two backfilled ones")
}

// TestSchedulePauseTriggerDelete pauses a new schedule before its first
// fire time: that fire time passes with no run, and describe shows the
// schedule paused with the note. A trigger then starts a run at once; its
// nominal time is the trigger's, between fire times, so it loads the last
// complete window (the one the paused fire time would have loaded).
// Unpaused, the schedule runs the next window; deleted, it runs no more.
func TestSchedulePauseTriggerDelete(t *testing.T) {
	t.Parallel() // waits for the clock most of the time
	s := newStack(t)
	s.startWorker()
	const name, topic, table, parts = "sched-pause", "sched-pause", "sched_pause", 2
	s.createTopic(topic, parts)
	s.winCreateTable(table)
	job := s.schedJob(name, topic, table, nil)
	ctx := context.Background()

	f1 := schedNextFire(15 * time.Second)
	f2, f3 := f1.Add(time.Minute), f1.Add(2*time.Minute)
	begins := []time.Time{f1.Add(-time.Minute), f1, f2}
	var recs []winRec
	for _, b := range begins {
		recs = append(recs, s.schedProduceWindow(topic, parts, b)...)
	}
	h := s.schedCreate(job)
	const pauseNote, unpauseNote = "paused by TestSchedulePauseTriggerDelete: maintenance", "resumed by TestSchedulePauseTriggerDelete"
	require.NoError(t, h.Pause(ctx, client.SchedulePauseOptions{Note: pauseNote}))
	require.Truef(t, time.Now().Before(f1), "paused after the first fire time %s", f1)
	d := schedDescribe(t, h)
	require.True(t, d.Schedule.State.Paused)
	require.Equal(t, pauseNote, d.Schedule.State.Note)

	// f1 passes while paused: no run, nothing counted as missed.
	schedSleepUntil(f1.Add(8 * time.Second))
	s.schedRequireNoRun(schedRunID(name, f1), "paused")
	d = schedDescribe(t, h)
	require.True(t, d.Schedule.State.Paused)
	require.Equal(t, pauseNote, d.Schedule.State.Note)
	require.Zero(t, d.Info.NumActions)
	require.Zero(t, d.Info.NumActionsMissedCatchupWindow, "a paused fire time is not counted as missed")
	require.Empty(t, s.winMCPartitions(table))

	// Trigger while paused: one run now, of the last complete window.
	triggered := time.Now()
	require.NoError(t, h.Trigger(ctx, client.ScheduleTriggerOptions{}))
	var action client.ScheduleActionResult
	require.Eventually(t, func() bool {
		d, err := h.Describe(ctx)
		if err != nil || len(d.Info.RecentActions) == 0 {
			return false
		}
		action = d.Info.RecentActions[0]
		return true
	}, schedRunTimeout, 200*time.Millisecond, "the trigger's run")
	require.NotNil(t, action.StartWorkflowResult)
	tid := action.StartWorkflowResult.WorkflowID
	// Its id carries the trigger's time, not the window's end: it is not
	// WindowRunID of the window it loads.
	nominal, err := time.Parse(time.RFC3339, strings.TrimPrefix(tid, "window-"+name+"-"))
	require.NoError(t, err, "trigger run id %s", tid)
	require.Falsef(t, nominal.Before(triggered.Truncate(time.Second)) || !nominal.Before(f2), "trigger run %s: nominal time %s, triggered at %s", tid, nominal, triggered)
	require.NotEqual(t, workflows.WindowRunID(name, f1), tid)
	require.Truef(t, s.schedScheduledStart(tid).Equal(nominal), "%s: TemporalScheduledStartTime %s", tid, s.schedScheduledStart(tid))
	res, err := s.winResult(tid, schedRunTimeout)
	require.NoError(t, err)
	schedRequireWindow(t, res, begins[0], "triggered run")
	winRequireRows(t, s.winMCRows(table, schedPT(begins[0])), winIn(recs, begins[0], f1), "triggered window")
	require.Equal(t, schedEndOffsets(recs, parts, f1), s.winGroupOffsets(job), "the triggered run moved the position")
	require.True(t, schedDescribe(t, h).Schedule.State.Paused, "a trigger does not unpause")

	require.NoError(t, h.Unpause(ctx, client.ScheduleUnpauseOptions{Note: unpauseNote}))
	d = schedDescribe(t, h)
	require.False(t, d.Schedule.State.Paused)
	require.Equal(t, unpauseNote, d.Schedule.State.Note)
	require.Truef(t, time.Now().Before(f2), "unpaused after the second fire time %s", f2)
	res, err = s.winResult(schedRunID(name, f2), time.Until(f2)+schedRunTimeout)
	require.NoError(t, err)
	schedRequireWindow(t, res, begins[1], "run after unpause")
	winRequireRows(t, s.winMCRows(table, schedPT(begins[1])), winIn(recs, begins[1], f2), "window after unpause")
	pos := s.winGroupOffsets(job)
	require.Equal(t, schedEndOffsets(recs, parts, f2), pos)

	require.NoError(t, h.Delete(ctx))
	require.Truef(t, time.Now().Before(f3), "deleted after the third fire time %s", f3)
	_, err = h.Describe(ctx)
	var nf *serviceerror.NotFound
	require.Truef(t, errors.As(err, &nf), "describe after delete: %v", err)
	schedSleepUntil(f3.Add(8 * time.Second))
	s.schedRequireNoRun(schedRunID(name, f3), "deleted")
	require.Equal(t, []string{schedPT(begins[0]), schedPT(begins[1])}, s.winMCPartitions(table), "the window of f3 is not loaded")
	require.Equal(t, pos, s.winGroupOffsets(job))
}
