package tests

import (
	"context"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	"github.com/dumpflow/dumpflow/sink"
	"github.com/dumpflow/dumpflow/workflows"
)

// setOffsets sends the set-offsets Update and waits for its result.
func (s *stack) setOffsets(name string, req workflows.SetOffsets) (workflows.SetOffsetsResult, error) {
	var res workflows.SetOffsetsResult
	h, err := s.client.UpdateWorkflow(context.Background(), client.UpdateWorkflowOptions{
		WorkflowID: "connector-" + name, UpdateName: workflows.UpdateSetOffsets, Args: []any{req},
		WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	if err != nil {
		return res, err
	}
	return res, h.Get(context.Background(), &res)
}

// offsetsCLI runs starter offsets SUB args against the stack.
func (s *stack) offsetsCLI(sub string, args ...string) string {
	s.t.Helper()
	all := append([]string{"offsets", sub, "-temporal", s.temporal.GetFrontendHostPort(), "-namespace", s.temporal.GetDefaultNamespace()}, args...)
	out, err := exec.Command(starterBinary(s.t), all...).CombinedOutput()
	require.NoError(s.t, err, "starter %v: %s", all, out)
	return string(out)
}

// temporalCLI runs the real temporal CLI against the stack; it returns
// the output and whether the command succeeded.
func (s *stack) temporalCLI(args ...string) (string, bool) {
	s.t.Helper()
	gopath, err := exec.Command("go", "env", "GOPATH").Output()
	require.NoError(s.t, err)
	bin := filepath.Join(strings.TrimSpace(string(gopath)), "bin", "temporal")
	if _, err := os.Stat(bin); err != nil {
		s.t.Skipf("no temporal CLI at %s", bin)
	}
	all := append(args, "--address", s.temporal.GetFrontendHostPort(), "--namespace", s.temporal.GetDefaultNamespace())
	out, err := exec.Command(bin, all...).CombinedOutput()
	return string(out), err == nil
}

func ptr[T any](v T) *T { return &v }

// countRange counts how often each value [from, to) of partition p is in
// counts and requires it to be want.
func requireRangeTimes(t *testing.T, counts map[string]int, topic string, p int32, from, to, size, want int) {
	t.Helper()
	bad := 0
	for i := from; i < to; i++ {
		if counts[string(value(topic, p, i, size))] != want {
			bad++
		}
	}
	require.Zero(t, bad, "values of partition %d in [%d,%d) not each present %d times", p, from, to, want)
}

// TestOffsetsSetForwardAndBack moves the partitions of a paused OSS
// connector with the set-offsets Update: partition 0 forward past 1000
// records (a declared skip), partition 1 back over 1500 records it had
// dumped (a rewind, written again in a new epoch). It is rejected first on
// the running connector and for bad offsets, naming them, and moves
// nothing then. After resume verify is exact: the skip is a declared range
// with who set it, the rewind's ranges a declared overlap, no write was
// refused. Then starter offsets set --to latest, --to timestamp and
// starter offsets reset (earliest) move them again.
func TestOffsetsSetForwardAndBack(t *testing.T) {
	s := newStack(t)
	s.startWorker()
	const topic, parts, size = "offsets", 2, 50
	s.createTopic(topic, parts)
	s.produce2(topic, parts, 0, 3000, size)
	spec := s.ossSpec("offsets-oss", topic)
	s.start(spec, 0)
	s.waitFor(spec.Name, time.Minute, "caught up", func(st workflows.Status) bool {
		return len(st.Partitions) == parts && caughtUp(3000)(st)
	})

	// Running: rejected by the validator, through the SDK and through the
	// temporal CLI with the JSON the README documents.
	_, err := s.setOffsets(spec.Name, workflows.SetOffsets{To: "offset", Offset: ptr[int64](10)})
	require.ErrorContains(t, err, "is running")
	out, ok := s.temporalCLI("workflow", "update", "execute", "--workflow-id", spec.WorkflowID(), "--name", workflows.UpdateSetOffsets,
		"--input", `{"to": "offset", "offset": 10, "partitions": [0], "by": "cli"}`)
	require.False(t, ok, "%s", out)
	require.Contains(t, out, "is running")

	ctx := context.Background()
	require.NoError(t, s.client.SignalWorkflow(ctx, spec.WorkflowID(), "", workflows.SignalPause, nil))
	s.waitFor(spec.Name, 30*time.Second, "paused", allInState(workflows.StatePaused))
	s.produce2(topic, parts, 3000, 5000, size)

	// Bad requests: rejected, naming the field or partition and value.
	_, err = s.setOffsets(spec.Name, workflows.SetOffsets{To: "offset", Offset: ptr[int64](99999), Partitions: []int32{0}})
	require.ErrorContains(t, err, "partition 0: offset 99999 is outside [0, 5000]")
	_, err = s.setOffsets(spec.Name, workflows.SetOffsets{To: "offset", Offset: ptr[int64](10), Partitions: []int32{7}})
	require.ErrorContains(t, err, "partitions: 7 is not a partition")
	_, err = s.setOffsets(spec.Name, workflows.SetOffsets{To: "sideways"})
	require.ErrorContains(t, err, `to: "sideways" must be one of`)
	_, err = s.setOffsets(spec.Name, workflows.SetOffsets{To: "timestamp", Timestamp: "yesterday"})
	require.ErrorContains(t, err, `timestamp: "yesterday"`)
	st, err := s.status(spec.Name)
	require.NoError(t, err)
	for _, p := range st.Partitions {
		require.EqualValues(t, 3000, p.Next, "a rejected update moved partition %d", p.Partition)
	}

	res, err := s.setOffsets(spec.Name, workflows.SetOffsets{To: "offset", Offset: ptr[int64](4000), Partitions: []int32{0}, By: "alice"})
	require.NoError(t, err)
	require.Len(t, res.Moves, 1)
	require.Equal(t, sink.MarkSkipped, res.Moves[0].Kind)
	require.EqualValues(t, 3000, res.Moves[0].From)
	require.EqualValues(t, 4000, res.Moves[0].To)
	out, ok = s.temporalCLI("workflow", "update", "execute", "--workflow-id", spec.WorkflowID(), "--name", workflows.UpdateSetOffsets,
		"--input", `{"to": "offset", "offset": 1500, "partitions": [1], "by": "bob"}`)
	require.True(t, ok, "%s", out)
	require.Contains(t, out, "kind:rewind")

	require.NoError(t, s.client.SignalWorkflow(ctx, spec.WorkflowID(), "", workflows.SignalResume, nil))
	st = s.waitFor(spec.Name, time.Minute, "caught up after the moves", caughtUp(5000))
	p0, p1 := partitionStatus(st, 0), partitionStatus(st, 1)
	require.Len(t, p0.Gaps, 1)
	require.Equal(t, workflows.DeclaredGap{First: 3000, End: 4000, By: "alice", At: p0.Gaps[0].At, Kind: sink.MarkSkipped}, p0.Gaps[0])
	require.Len(t, p1.Gaps, 1)
	require.Equal(t, sink.MarkRewind, p1.Gaps[0].Kind)
	require.EqualValues(t, 1500, p1.Gaps[0].First)
	require.EqualValues(t, 3000, p1.Gaps[0].End)
	for _, p := range st.Partitions {
		require.Empty(t, p.LastError, "partition %d: no write was refused", p.Partition)
	}

	rep := s.verifyLedger(spec)
	r0, r1 := rep.Partitions[0], rep.Partitions[1]
	require.Len(t, r0.Declared, 1)
	require.Equal(t, sink.MarkSkipped, r0.Declared[0].Kind)
	require.Equal(t, sink.Range{First: 3000, End: 4000}, sink.Range{First: r0.Declared[0].First, End: r0.Declared[0].End})
	require.Contains(t, r0.Declared[0].Note, "offsets set by alice")
	require.Len(t, r1.Rewinds, 1)
	require.Contains(t, r1.Rewinds[0].Note, "offsets set by bob")
	require.NotEmpty(t, r1.DeclaredOverlaps)
	for _, o := range r1.DeclaredOverlaps {
		require.True(t, o.First >= 1500 && o.End <= 3000, "declared overlap %v inside the rewind", o)
	}
	counts := s.readValues(topic + "/")
	requireRangeTimes(t, counts, topic, 0, 0, 3000, size, 1)
	requireRangeTimes(t, counts, topic, 0, 3000, 4000, size, 0)
	requireRangeTimes(t, counts, topic, 0, 4000, 5000, size, 1)
	requireRangeTimes(t, counts, topic, 1, 0, 1500, size, 1)
	requireRangeTimes(t, counts, topic, 1, 1500, 3000, size, 2)
	requireRangeTimes(t, counts, topic, 1, 3000, 5000, size, 1)

	// The CLI: latest, timestamp, reset.
	require.NoError(t, s.client.SignalWorkflow(ctx, spec.WorkflowID(), "", workflows.SignalPause, nil))
	s.waitFor(spec.Name, 30*time.Second, "paused", allInState(workflows.StatePaused))
	s.produce2(topic, parts, 5000, 5500, size)
	time.Sleep(20 * time.Millisecond) // the timestamp below lies between two produced batches
	mid := time.Now().UTC()
	time.Sleep(20 * time.Millisecond)
	s.produce2(topic, parts, 5500, 6000, size)
	out = s.offsetsCLI("set", "-to", "latest", "-partition", "0", "-by", "carol", spec.Name)
	require.Contains(t, out, "partition 0: 5000 → 6000, [5000,6000) skipped")
	out = s.offsetsCLI("set", "-to", "timestamp", "-timestamp", mid.Format(time.RFC3339Nano), "-partition", "1", spec.Name)
	require.Contains(t, out, "partition 1: 5000 → 5500, [5000,5500) skipped")
	out = s.offsetsCLI("reset", "-partition", "0", spec.Name)
	require.Contains(t, out, "partition 0: 6000 → 0, [0,6000) rewound")
	out = s.offsetsCLI("get", spec.Name)
	require.Contains(t, out, "declared rewind [0,6000) written again")
	require.NoError(t, s.client.SignalWorkflow(ctx, spec.WorkflowID(), "", workflows.SignalResume, nil))
	st = s.waitFor(spec.Name, time.Minute, "caught up after the CLI moves", caughtUp(6000))
	require.Equal(t, 1, partitionStatus(st, 0).Epoch)
	rep = s.verifyLedger(spec)
	require.Len(t, rep.Partitions[0].Rewinds, 1)
	require.Len(t, rep.Partitions[1].Declared, 1)
	counts = s.readValues(topic + "/")
	requireRangeTimes(t, counts, topic, 0, 0, 3000, size, 2)
	requireRangeTimes(t, counts, topic, 0, 3000, 4000, size, 1)
	requireRangeTimes(t, counts, topic, 0, 4000, 5000, size, 2)
	requireRangeTimes(t, counts, topic, 0, 5000, 6000, size, 1)
	requireRangeTimes(t, counts, topic, 1, 5000, 5500, size, 0)
	requireRangeTimes(t, counts, topic, 1, 5500, 6000, size, 1)
	out = s.starter("verify", spec.Name)
	require.Contains(t, out, "declared skip (offsets set forward) [5000,5500)")
	require.Contains(t, out, "declared overlap")
}

// TestOffsetsSetOnDataLost parks a partition as data-lost (records deleted
// past its cursor while the connector was paused), then moves it with
// set-offsets without pausing the connector (a parked partition runs
// nothing): the part retention deleted is a declared gap, the rest a
// declared skip, both acknowledged by who set the offsets, and verify
// --deep is exact — on OSS and on MaxCompute, whose ledger rows must
// agree with the OSS meta and marker objects. Moving a MaxCompute
// connector backwards is refused, naming the partition and offsets.
func TestOffsetsSetOnDataLost(t *testing.T) {
	for _, sinkType := range []string{"oss", "maxcompute"} {
		t.Run(sinkType, func(t *testing.T) {
			s := newStack(t)
			s.startWorker()
			const topic, parts, size = "lost", 1, 50
			s.createTopic(topic, parts)
			s.produce2(topic, parts, 0, 2000, size)
			spec := s.ossSpec("lost-oss", topic)
			if sinkType == "maxcompute" {
				spec = s.mcSpec("lost-mc", topic, "lost_mc")
			}
			s.start(spec, 0)
			s.waitFor(spec.Name, time.Minute, "caught up", caughtUp(2000))
			ctx := context.Background()
			require.NoError(t, s.client.SignalWorkflow(ctx, spec.WorkflowID(), "", workflows.SignalPause, nil))
			s.waitFor(spec.Name, 30*time.Second, "paused", allInState(workflows.StatePaused))
			s.produce2(topic, parts, 2000, 4000, size)
			s.deleteRecords(topic, 3000, 0)
			require.NoError(t, s.client.SignalWorkflow(ctx, spec.WorkflowID(), "", workflows.SignalResume, nil))
			s.waitFor(spec.Name, time.Minute, "data-lost", allInState(workflows.StateDataLost))

			// Out of range: below the log start.
			_, err := s.setOffsets(spec.Name, workflows.SetOffsets{To: "offset", Offset: ptr[int64](2500)})
			require.ErrorContains(t, err, "partition 0: offset 2500 is outside [3000, 4000]")
			res, err := s.setOffsets(spec.Name, workflows.SetOffsets{To: "offset", Offset: ptr[int64](3500), By: "dave"})
			require.NoError(t, err)
			require.Equal(t, sink.MarkSkipped, res.Moves[0].Kind)
			require.Equal(t, &sink.Range{First: 2000, End: 3000}, res.Moves[0].Lost)
			st := s.waitFor(spec.Name, time.Minute, "caught up past the hole", caughtUp(4000))
			p := partitionStatus(st, 0)
			require.Equal(t, workflows.StateRunning, p.State)
			require.Len(t, p.Gaps, 2)
			require.Equal(t, sink.MarkGap, p.Gaps[0].Kind)
			require.Equal(t, sink.MarkSkipped, p.Gaps[1].Kind)
			require.EqualValues(t, 2000+500, p.Records, "[0,2000) and [3500,4000)")
			rep := s.verifyLedger(spec)
			d := rep.Partitions[0].Declared
			require.Len(t, d, 2)
			require.Equal(t, sink.MarkGap, d[0].Kind)
			require.EqualValues(t, 2000, d[0].First)
			require.EqualValues(t, 3000, d[0].End)
			require.Contains(t, d[0].Note, "acknowledged by offsets set by dave")
			require.Equal(t, sink.MarkSkipped, d[1].Kind)
			require.EqualValues(t, 3000, d[1].First)
			require.EqualValues(t, 3500, d[1].End)

			// Back to the log start: [3000,4000) is written again, a
			// declared overlap in the OSS objects and the MaxCompute rows.
			require.NoError(t, s.client.SignalWorkflow(ctx, spec.WorkflowID(), "", workflows.SignalPause, nil))
			s.waitFor(spec.Name, 30*time.Second, "paused", allInState(workflows.StatePaused))
			res, err = s.setOffsets(spec.Name, workflows.SetOffsets{To: "earliest", By: "erin"})
			require.NoError(t, err)
			require.Equal(t, sink.MarkRewind, res.Moves[0].Kind)
			require.EqualValues(t, 4000, res.Moves[0].From)
			require.EqualValues(t, 3000, res.Moves[0].To)
			s.produce2(topic, parts, 4000, 4500, size)
			require.NoError(t, s.client.SignalWorkflow(ctx, spec.WorkflowID(), "", workflows.SignalResume, nil))
			st = s.waitFor(spec.Name, time.Minute, "caught up after the rewind", caughtUp(4500))
			require.Equal(t, 1, partitionStatus(st, 0).Epoch)
			rep = s.verifyLedger(spec)
			r := rep.Partitions[0]
			require.Len(t, r.Rewinds, 1)
			require.EqualValues(t, 3000, r.Rewinds[0].First)
			require.EqualValues(t, 4000, r.Rewinds[0].End)
			require.NotEmpty(t, r.DeclaredOverlaps)
			require.Zero(t, r.Duplicates)
			require.Empty(t, r.Overlaps)
		})
	}
}

var recordUpdates = flag.Bool("record-updates-history", false, "record tests/testdata/connector-oss-updates.history.json (set-offsets and update-spec) from a live run")

// TestRecordUpdatesHistory records, with -record-updates-history, a
// connector run that takes a set-offsets forward and back and an
// update-spec before it continues as new; TestReplayRecordedHistories then
// replays it with every other history (its "set-offsets", "update-spec"
// and "discovery-interval-30s" markers cover those gates' current branches).
func TestRecordUpdatesHistory(t *testing.T) {
	if !*recordUpdates {
		t.Skip("run with -record-updates-history to record testdata/connector-oss-updates.history.json")
	}
	s := newStack(t)
	s.startWorker()
	const topic, parts, size = "replay", 2, 64
	s.createTopic(topic, parts)
	s.produce2(topic, parts, 0, 600, size)
	spec := s.ossSpec("replay-updates", topic)
	spec.Batch.MaxRecords = 100
	spec.Concurrency = 1
	s.start(spec, 200)
	s.waitFor(spec.Name, time.Minute, "caught up", caughtUp(600))
	ctx := context.Background()
	require.NoError(t, s.client.SignalWorkflow(ctx, spec.WorkflowID(), "", workflows.SignalPause, nil))
	s.waitFor(spec.Name, 30*time.Second, "paused", allInState(workflows.StatePaused))
	s.produce2(topic, parts, 600, 900, size)
	_, err := s.setOffsets(spec.Name, workflows.SetOffsets{To: "offset", Offset: ptr[int64](700), Partitions: []int32{0}, By: "replay"})
	require.NoError(t, err)
	_, err = s.setOffsets(spec.Name, workflows.SetOffsets{To: "offset", Offset: ptr[int64](400), Partitions: []int32{1}, By: "replay"})
	require.NoError(t, err)
	changed := *spec
	changed.Batch.MaxRecords = 50
	_, err = s.updateSpec(spec.Name, &changed)
	require.NoError(t, err)
	require.NoError(t, s.client.SignalWorkflow(ctx, spec.WorkflowID(), "", workflows.SignalResume, nil))
	s.waitFor(spec.Name, 2*time.Minute, "caught up after a continue-as-new", func(st workflows.Status) bool {
		return st.Run > 0 && caughtUp(900)(st)
	})
	saveRun(t, fetchRun(t, s, spec.WorkflowID(), firstRunID(t, s, spec)), filepath.Join("testdata", "connector-oss-updates.history.json"))
}
