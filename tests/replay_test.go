package tests

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	tlog "go.temporal.io/sdk/log"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/workflow"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/workers/runner"
	"github.com/dumpflow/dumpflow/workflows"
)

var (
	updateHistories       = flag.Bool("update-histories", false, "record this build's tests/testdata/connector-*-v2.history.json anew from live runs")
	updateWindowHistories = flag.Bool("update-window-histories", false, "record this build's tests/testdata/window-*.history.json anew from live runs")
	recordConnector       = flag.String("record-connector-history", "", "record a connector whose one loop serves two partitions (concurrency 1) into tests/testdata/`FILE` from a live run")
	recordBatched         = flag.String("record-batched-history", "", "record a batched-writes connector (tolerance continue, uncut plans, several batches per write) into tests/testdata/`FILE` from a live run")
	recordMCGroups        = flag.String("record-mc-groups-history", "", "record a MaxCompute connector whose one loop writes two partitions as group batches (concurrency 1) into tests/testdata/`FILE` from a live run")
	recordSharded         = flag.String("record-sharded-history", "", "record a sharded connector's workflow and its shard 0 into tests/testdata/`PREFIX`-root.history.json and PREFIX-shard.history.json from a live run")
)

// TestReplayRecordedHistories replays every recorded history in testdata —
// of every workflow type workers/runner registers: Connector, WindowLoad
// and WindowBackfill — against the current workflow code. A change that
// would break running workflows (a reordered activity, a new blocking
// call without a version gate) fails here. `starter replay -f FILE` does
// the same for one file.
//
//   - connector-oss.history.json was recorded by the first build: it
//     replays through the frozen legacy code behind the "dumpflow-v2"
//     version gate. It is never recorded again.
//   - connector-oss-v2.history.json and connector-maxcompute-v2.history.json
//     were recorded by the second build (commit 690a506), before the
//     workflow changed twice more (47802c9): a loop's partitions are now
//     planned and written side by side, and a run that starts draining
//     cancels the discovery in flight. Both changes are gated with
//     workflow.GetVersion ("parallel-writes", "cancel-discovery-on-drain");
//     these histories hold neither version marker (checked below), so they
//     replay through the DefaultVersion branches, the code as it was when
//     they were recorded. Do not record them anew: keep them as the
//     histories of that build. Record new ones under another name with
//     -update-histories only deliberately.
//   - connector-oss-c1-pre-parallel-writes.history.json was recorded by the
//     build just before 47802c9 (git archive 47802c9^, a connector with
//     concurrency 1, so one loop wrote its two partitions one after the
//     other). It holds no "parallel-writes" marker, so it replays through
//     that gate's DefaultVersion branch: with the gate removed (writes
//     always concurrent) `starter replay -f` reports "nondeterminism at
//     event 26 (ActivityTaskScheduled activity WritePartition)"; with it,
//     it replays. This is the history recorded before a change that still
//     replays after it.
//   - connector-oss-c1-parallel.history.json was recorded by this build
//     (after merging main's Web UI visibility) with the same shape: its
//     markers are "dumpflow-v2", "visibility-state" and "parallel-writes",
//     so it covers the current branches of those gates. Record another with
//     -record-connector-history FILE.
//   - connector-oss-updates.history.json was recorded by h-offsets
//     (TestRecordUpdatesHistory, -record-updates-history): a run that takes
//     two set-offsets updates (forward and back) and an update-spec before
//     it continues as new, so the handlers and the "set-offsets",
//     "update-spec" and "discovery-interval-30s" gates replay.
//   - connector-oss-batched.history.json was recorded with
//     -record-batched-history after the "batched-writes" change: a
//     tolerance-continue connector whose uncut plans are written several
//     batches per WritePartition, with dead letters, a pause (which cancels
//     the FetchRanges waiting for data), a resume and a continue-as-new.
//   - connector-oss-sharded-root.history.json and
//     connector-oss-sharded-shard.history.json were recorded with
//     -record-sharded-history after the "shards" change: a connector over
//     4 partitions at partitionsPerWorkflow 2, whose workflow starts two
//     shard workflows and forwards pauses, resumes, an update-spec and a
//     set-offsets to them until it continues as new (it starts the running
//     shards again, which is refused as already started), and its shard 0's
//     run that took the forwarded updates (and signals), reporting its
//     state, before it continued as new.
//   - connector-maxcompute-groups.history.json was recorded with
//     -record-mc-groups-history after the "group-writes" change: a
//     MaxCompute connector whose one loop (concurrency 1) writes its two
//     partitions' ranges as group batches, stops on a poison record under
//     tolerance stop, is resumed (which cancels the loop's FetchRanges
//     waiting for the other partition's data: the "fetch-wakes" change),
//     paused and resumed, and continues as new.
//   - window-*.history.json were recorded from live runs of the window
//     workflows (a backfill continuing as new, its child load, a load
//     started by hand under another id and its child that moves the job's
//     position), written by `temporal workflow show --output json`; record
//     them anew with -update-window-histories.
func TestReplayRecordedHistories(t *testing.T) {
	if *updateHistories {
		recordHistory(t, filepath.Join("testdata", "connector-oss-v2.history.json"), false, 0)
		recordHistory(t, filepath.Join("testdata", "connector-maxcompute-v2.history.json"), true, 0)
	}
	if *recordConnector != "" {
		recordHistory(t, filepath.Join("testdata", *recordConnector), false, 1)
	}
	if *recordMCGroups != "" {
		path := filepath.Join("testdata", *recordMCGroups)
		recordHistory(t, path, true, 1)
		data, err := os.ReadFile(path)
		require.NoError(t, err)
		h, err := runner.ReadHistory(bytes.NewReader(data))
		require.NoError(t, err)
		require.Contains(t, versionChanges(t, h), "group-writes", "the run took the group-writes version")
	}
	if *recordBatched != "" {
		recordBatchedHistory(t, filepath.Join("testdata", *recordBatched))
	}
	if *recordSharded != "" {
		recordShardedHistory(t, filepath.Join("testdata", *recordSharded))
	}
	if *updateWindowHistories {
		recordWindowHistories(t)
	}
	files, err := filepath.Glob(filepath.Join("testdata", "*.history.json"))
	require.NoError(t, err)
	require.NotEmpty(t, files, "no recorded histories in testdata")
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			// History holds offsets, keys, ids and counts: never record bytes
			// (values are "<topic>-p<partition>-<n>...") and never secrets.
			data, err := os.ReadFile(f)
			require.NoError(t, err)
			require.NotContains(t, string(data), "replay-p0-")
			require.NotContains(t, string(data), "replay|p")
			require.NotContains(t, string(data), "dumpflow-secret")

			h, err := runner.ReadHistory(bytes.NewReader(data))
			require.NoError(t, err)
			if strings.HasSuffix(f, "-v2.history.json") || strings.Contains(f, "pre-parallel-writes") {
				changes := versionChanges(t, h)
				require.Contains(t, changes, "dumpflow-v2", "recorded by the second build or later")
				require.NotContains(t, changes, "parallel-writes", "recorded before the change: replays through its DefaultVersion branch")
				require.NotContains(t, changes, "cancel-discovery-on-drain", "recorded before the change: replays through its DefaultVersion branch")
			}
			require.NoError(t, runner.Replay(h, "", tlog.NewStructuredLogger(quietLogger())))
		})
	}
}

// recordHistory runs a connector through a poison record (tolerance stop),
// a resume, a pause and a continue-as-new, and saves the first run's
// history.
//
// concurrency, when positive, is the spec's: 1 puts both partitions in one
// loop, whose writes then run side by side (the parallel-writes version).
func recordHistory(t *testing.T, path string, mc bool, concurrency int) {
	s := newStack(t)
	s.startWorker()
	const topic, n, size = "replay", 600, 64
	s.createTopic(topic, 2)
	s.producePoison(topic, n, size, 250, 4096)
	s.produce(topic, 2, 100, size, time.Time{})
	spec := s.ossSpec("replay-oss", topic)
	if mc {
		spec = s.mcSpec("replay-mc", topic, "kafka_replay")
	}
	spec.Batch.MaxRecords = 100
	if concurrency > 0 {
		spec.Concurrency = concurrency
	}
	spec.Errors.MaxRecordBytes = 1024
	spec.Errors.Tolerance = connector.ToleranceStop
	s.start(spec, 120)
	s.waitFor(spec.Name, time.Minute, "stop on poison", func(st workflows.Status) bool {
		return len(st.Partitions) == 2 && st.Partitions[0].State == workflows.StateStopped
	})
	ctx := context.Background()
	require.NoError(t, s.client.SignalWorkflow(ctx, spec.WorkflowID(), "", workflows.SignalResume, nil))
	require.NoError(t, s.client.SignalWorkflow(ctx, spec.WorkflowID(), "", workflows.SignalPause, nil))
	require.NoError(t, s.client.SignalWorkflow(ctx, spec.WorkflowID(), "", workflows.SignalResume, nil))
	s.waitFor(spec.Name, time.Minute, "caught up", func(st workflows.Status) bool {
		return st.Run > 0 && len(st.Partitions) == 2 && st.Partitions[0].Next == n+100 && st.Partitions[1].Next == 100
	})

	// The first run, which ended in continue-as-new.
	saveRun(t, fetchRun(t, s, spec.WorkflowID(), firstRunID(t, s, spec)), path)
}

// recordBatchedHistory records a batched-writes run (see
// TestReplayRecordedHistories).
func recordBatchedHistory(t *testing.T, path string) {
	s := newStack(t)
	s.startWorker()
	const topic, n, size = "replay", 600, 64
	s.createTopic(topic, 2)
	s.producePoison(topic, n, size, 250, 4096)
	s.produce(topic, 2, 100, size, time.Time{})
	spec := s.ossSpec("replay-oss", topic)
	spec.Batch.MaxRecords = 100
	spec.Batch.MaxBytes = 2 << 10 // about 30 records: several batches per write
	spec.Concurrency = 1
	spec.Errors.MaxRecordBytes = 1024
	s.start(spec, 90)
	s.waitFor(spec.Name, time.Minute, "caught up", func(st workflows.Status) bool {
		return len(st.Partitions) == 2 && st.Partitions[0].Next == n+100 && st.Partitions[1].Next == 100
	})
	ctx := context.Background()
	require.NoError(t, s.client.SignalWorkflow(ctx, spec.WorkflowID(), "", workflows.SignalPause, nil))
	s.waitFor(spec.Name, time.Minute, "paused", func(st workflows.Status) bool { return st.Paused })
	require.NoError(t, s.client.SignalWorkflow(ctx, spec.WorkflowID(), "", workflows.SignalResume, nil))
	s.produce2(topic, 2, 100, 400, size)
	s.waitFor(spec.Name, 2*time.Minute, "caught up again, after continue-as-new", func(st workflows.Status) bool {
		return st.Run > 0 && len(st.Partitions) == 2 && st.Partitions[0].Next == n+400 && st.Partitions[1].Next == 400
	})
	h := fetchRun(t, s, spec.WorkflowID(), firstRunID(t, s, spec))
	require.Contains(t, versionChanges(t, h), "batched-writes")
	saveRun(t, h, path)
}

// recordShardedHistory records a sharded connector's workflow and its shard
// 0 (see TestReplayRecordedHistories): the root's first run and the
// shard's run that took the updates, each ending in continue-as-new.
func recordShardedHistory(t *testing.T, prefix string) {
	s := newStack(t)
	s.startWorker()
	const topic, parts, size = "replay", 4, 64
	s.createTopic(topic, parts)
	s.produce2(topic, parts, 0, 300, size)
	spec := s.ossSpec("replay-oss", topic)
	spec.PartitionsPerWorkflow = 2
	spec.Concurrency = 2
	spec.Batch.MaxRecords = 100
	s.start(spec, 60)
	s.waitFor(spec.Name, time.Minute, "caught up", caughtUp(300))
	ctx := context.Background()
	require.NoError(t, s.client.SignalWorkflow(ctx, spec.WorkflowID(), "", workflows.SignalPause, nil))
	s.waitFor(spec.Name, time.Minute, "paused", func(st workflows.Status) bool { return st.Paused })
	upd := *spec
	upd.Batch.MaxRecords = 50
	_, err := s.updateSpec(spec.Name, &upd)
	require.NoError(t, err)
	_, err = s.setOffsets(spec.Name, workflows.SetOffsets{To: workflows.OffsetsOffset, Offset: ptr(int64(250)), Partitions: []int32{0}, By: "replay"})
	require.NoError(t, err)
	require.NoError(t, s.client.SignalWorkflow(ctx, spec.WorkflowID(), "", workflows.SignalResume, nil))
	s.produce2(topic, parts, 300, 600, size)
	s.waitFor(spec.Name, 2*time.Minute, "caught up again", caughtUp(600))
	// More signals, until the connector's workflow continues as new.
	rootRun := firstRunID(t, s, spec)
	for i := 0; ; i++ {
		d, err := s.client.DescribeWorkflowExecution(ctx, spec.WorkflowID(), "")
		require.NoError(t, err)
		if d.GetWorkflowExecutionInfo().GetExecution().GetRunId() != rootRun {
			break
		}
		require.Less(t, i, 40, "the connector's workflow continues as new")
		sig := workflows.SignalPause
		if i%2 == 1 {
			sig = workflows.SignalResume
		}
		require.NoError(t, s.client.SignalWorkflow(ctx, spec.WorkflowID(), "", sig, nil))
		time.Sleep(300 * time.Millisecond)
	}
	st := s.waitFor(spec.Name, 2*time.Minute, "running, every shard continued as new", func(st workflows.Status) bool { return !st.Paused && caughtUp(600)(st) })
	shard := st.Shards[0]
	s.waitFor(spec.Name, 2*time.Minute, "shard 0 continued as new", func(workflows.Status) bool { return s.workflowStatus(shard).Run > 0 })
	root := fetchRun(t, s, spec.WorkflowID(), rootRun)
	require.Contains(t, versionChanges(t, root), "shards")
	saveRun(t, root, prefix+"-root.history.json")
	// Shard 0's first run that took the forwarded updates.
	d, err := s.client.DescribeWorkflowExecution(ctx, shard, "")
	require.NoError(t, err)
	for run := d.GetWorkflowExecutionInfo().GetFirstRunId(); ; {
		h := fetchRun(t, s, shard, run)
		updates, next := 0, ""
		for _, e := range h.Events {
			if e.GetWorkflowExecutionUpdateAcceptedEventAttributes() != nil {
				updates++
			}
			if a := e.GetWorkflowExecutionContinuedAsNewEventAttributes(); a != nil {
				next = a.GetNewExecutionRunId()
			}
		}
		if updates > 0 {
			require.NotEmpty(t, next, "the shard's run that took the updates continued as new")
			saveRun(t, h, prefix+"-shard.history.json")
			return
		}
		require.NotEmpty(t, next, "a run of shard 0 took the forwarded updates")
		run = next
	}
}

// fetchRun reads the history of workflow id's run runID (the latest run
// when runID is empty) through the SDK.
func fetchRun(t *testing.T, s *stack, id, runID string) *historypb.History {
	iter := s.client.GetWorkflowHistory(context.Background(), id, runID, false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	var h historypb.History
	for iter.HasNext() {
		e, err := iter.Next()
		require.NoError(t, err)
		h.Events = append(h.Events, e)
	}
	return &h
}

// saveRun writes h to path as indented JSON, a form runner.ReadHistory
// reads.
func saveRun(t *testing.T, h *historypb.History, path string) {
	data, err := protojson.MarshalOptions{Indent: "  "}.Marshal(h)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, data, 0o644))
}

func firstRunID(t *testing.T, s *stack, spec *connector.Spec) string {
	resp, err := s.client.DescribeWorkflowExecution(context.Background(), spec.WorkflowID(), "")
	require.NoError(t, err)
	return resp.GetWorkflowExecutionInfo().GetFirstRunId()
}

// TestReplayDetectsNondeterminism: the replay check is not vacuous. A
// recorded history whose first activity is changed to another type no
// longer matches the code, and Replay says so, naming the event.
func TestReplayDetectsNondeterminism(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "connector-oss-v2.history.json"))
	require.NoError(t, err)
	h, err := runner.ReadHistory(bytes.NewReader(data))
	require.NoError(t, err)
	changed := int64(0)
	for _, e := range h.Events {
		if a := e.GetActivityTaskScheduledEventAttributes(); a != nil {
			a.ActivityType.Name = "PrepareWrite" // the workflow schedules Discover here
			changed = e.GetEventId()
			break
		}
	}
	require.NotZero(t, changed)
	err = runner.Replay(h, "", tlog.NewStructuredLogger(quietLogger()))
	require.Error(t, err)
	require.Contains(t, err.Error(), "nondeterministic")
	var re *runner.ReplayError
	require.ErrorAs(t, err, &re)
	require.True(t, re.Nondeterministic)
	require.Equal(t, "ActivityTaskScheduled", re.EventType)
	require.Equal(t, changed, re.EventID, "the first activity the workflow scheduled")
	require.Contains(t, re.Summary(), fmt.Sprintf("nondeterminism at event %d (", changed)+"ActivityTaskScheduled activity PrepareWrite): this build's workflow code issues ScheduleActivityTask (activity Discover) there")
	t.Logf("replay error: %v", re.Summary())
}

// versionChanges are the change ids of a history's version markers
// (workflow.GetVersion).
func versionChanges(t *testing.T, h *historypb.History) []string {
	var ids []string
	for _, e := range h.Events {
		a := e.GetMarkerRecordedEventAttributes()
		if a == nil || a.GetMarkerName() != "Version" {
			continue
		}
		var id string
		require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(a.GetDetails()["change-id"], &id))
		ids = append(ids, id)
	}
	return ids
}

// TestReplayWindowWorkflowIDs: a WindowLoad checks the id it runs under (a
// run under another id than its window's loads the window as a child), so
// a history file without the id (older servers do not record it in the
// first event) replays only under the id runner derives: the window's
// run id, or — for a load that started a child — another one. Under a wrong
// id the replay fails, naming the child it would start.
func TestReplayWindowWorkflowIDs(t *testing.T) {
	read := func(name string) *historypb.History {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		require.NoError(t, err)
		h, err := runner.ReadHistory(bytes.NewReader(data))
		require.NoError(t, err)
		h.Events[0].GetWorkflowExecutionStartedEventAttributes().WorkflowId = ""
		return h
	}
	logger := tlog.NewStructuredLogger(quietLogger())

	h := read("window-load.history.json")
	id, err := runner.HistoryWorkflowID(h)
	require.NoError(t, err)
	require.Equal(t, "window-replay-hourly-2024-01-01T02:00:00Z", id)
	require.NoError(t, runner.Replay(h, "", logger))
	err = runner.Replay(h, "window-replay-hourly-manual", logger)
	var re *runner.ReplayError
	require.ErrorAs(t, err, &re, "under another id the load starts its window as a child")
	t.Logf("under a wrong id: %s", re.Summary())
	require.Equal(t, "ActivityTaskScheduled", re.EventType, "the activity the load scheduled instead of the child")

	h = read("window-load-by-hand.history.json")
	id, err = runner.HistoryWorkflowID(h)
	require.NoError(t, err)
	require.NotEqual(t, "window-replay-hourly-2024-01-01T04:00:00Z", id)
	require.NoError(t, runner.Replay(h, "", logger))
	err = runner.Replay(h, "window-replay-hourly-2024-01-01T04:00:00Z", logger)
	require.ErrorAs(t, err, &re, "under the window's own id the load does not start a child")
	t.Logf("under the window's id: %s", re.Summary())
	require.Equal(t, "StartChildWorkflowExecutionInitiated", re.EventType)
	require.Contains(t, re.Summary(), "child workflow WindowLoad window-replay-hourly-2024-01-01T04:00:00Z")

	h = read("window-load-position.history.json")
	require.NoError(t, runner.Replay(h, "", logger))
	h = read("window-backfill.history.json")
	require.NoError(t, runner.Replay(h, "", logger))
}

// recordWindowHistories runs the window workflows on the local stack and
// saves their histories with the temporal CLI (`temporal workflow show
// --output json`, the form starter replay -f reads) when it is installed:
//
//   - window-backfill.history.json: WindowBackfill of two hourly windows,
//     one per run (a child WindowLoad, then continue-as-new);
//   - window-load.history.json: the first window's WindowLoad, run by the
//     backfill as a child under the window's id;
//   - window-load-by-hand.history.json: a WindowLoad started under another
//     id, which loads its window as a child under the window's id;
//   - window-load-position.history.json: that child, which also records the
//     window's end as the job's position (CommitWindowPosition).
func recordWindowHistories(t *testing.T) {
	s := newStack(t)
	s.startWorker()
	const topic, table = "replay", "replay_hourly"
	s.createTopic(topic, 2)
	s.winCreateTable(table)
	from := winTime(t, "2024-01-01 09:00:00.000")
	s.winHourRecords(topic, from, 3)
	job := s.winJobOf(winHourly(s.winMCSpec("replay-hourly", topic, table)))
	ctx := context.Background()

	bf, err := s.client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: winBackfillID(job.Name()), TaskQueue: workflows.TaskQueue},
		workflows.WindowBackfillName, workflows.BackfillInput{Spec: job.Raw, From: from, To: from.Add(2 * time.Hour), Batch: 1})
	require.NoError(t, err)
	firstRun := bf.GetRunID() // Get follows the continued runs
	var prog workflows.BackfillProgress
	require.NoError(t, bf.Get(ctx, &prog))
	require.Equal(t, 2, prog.Done)
	saveHistory(t, s, bf.GetID(), firstRun, "window-backfill.history.json")
	saveHistory(t, s, workflows.WindowRunID(job.Name(), from.Add(time.Hour)), "", "window-load.history.json")

	begin, end := from.Add(2*time.Hour), from.Add(3*time.Hour)
	byHand, err := s.client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "window-replay-hourly-by-hand", TaskQueue: workflows.TaskQueue},
		workflows.WindowLoadName, workflows.WindowInput{Spec: job.Raw, Begin: begin, End: end, UpdatePosition: true})
	require.NoError(t, err)
	var res workflows.WindowResult
	require.NoError(t, byHand.Get(ctx, &res))
	require.NotZero(t, res.Records)
	saveHistory(t, s, byHand.GetID(), byHand.GetRunID(), "window-load-by-hand.history.json")
	saveHistory(t, s, workflows.WindowRunID(job.Name(), end), "", "window-load-position.history.json")
}

// saveHistory writes a run's history to testdata/name: with the temporal
// CLI when it is on the PATH or in $GOPATH/bin, else through the SDK.
func saveHistory(t *testing.T, s *stack, id, runID, name string) {
	path := filepath.Join("testdata", name)
	cli, err := exec.LookPath("temporal")
	if err != nil {
		if gp, gerr := exec.Command("go", "env", "GOPATH").Output(); gerr == nil {
			if p := filepath.Join(strings.TrimSpace(string(gp)), "bin", "temporal"); fileExists(p) {
				cli, err = p, nil
			}
		}
	}
	if err == nil {
		args := []string{"workflow", "show", "--output", "json", "--address", s.temporal.GetFrontendHostPort(),
			"--namespace", s.temporal.GetDefaultNamespace(), "--workflow-id", id}
		if runID != "" {
			args = append(args, "--run-id", runID)
		}
		out, err := exec.Command(cli, args...).Output()
		require.NoError(t, err, "%s %v", cli, args)
		require.NoError(t, os.WriteFile(path, out, 0o644))
		t.Logf("recorded %s with %s", path, cli)
		return
	}
	saveRun(t, fetchRun(t, s, id, runID), path)
	t.Logf("recorded %s through the SDK (no temporal CLI found)", path)
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// nameRegistry records the workflow names runner registers.
type nameRegistry struct{ names []string }

func (r *nameRegistry) RegisterWorkflowWithOptions(_ any, o workflow.RegisterOptions) {
	r.names = append(r.names, o.Name)
}

// TestReplayCoversEveryWorkflowType: testdata holds a recorded history of
// every workflow type the worker registers, so a new type (or a change to
// one) cannot escape the replay check.
func TestReplayCoversEveryWorkflowType(t *testing.T) {
	var reg nameRegistry
	runner.RegisterWorkflows(&reg)
	require.NotEmpty(t, reg.names)
	files, err := filepath.Glob(filepath.Join("testdata", "*.history.json"))
	require.NoError(t, err)
	recorded := map[string]int{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		h, err := runner.ReadHistory(bytes.NewReader(data))
		require.NoError(t, err)
		recorded[runner.HistoryType(h)]++
	}
	for _, name := range reg.names {
		require.NotZerof(t, recorded[name], "no recorded history of workflow type %s in testdata (record one: see TestReplayRecordedHistories)", name)
	}
	t.Logf("recorded histories per type: %v", recorded)
}
