package tests

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/converter"

	"github.com/dumpflow/dumpflow/activities"
	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/workflows"
)

// TestShardedConnector runs an OSS connector over a 6-partition topic
// with partitionsPerWorkflow 2: its workflow starts 3 shard workflows
// (connector-<name>/shard-k takes partitions k and k+3) and runs no loop
// itself. Status merges the shards; pause and resume sent to the
// connector's workflow reach every shard; set-offsets goes to the shard of
// the partition it names and update-spec to every shard; the shards
// continue as new on their own; cancelling the connector cancels the
// shards, which commit their offsets. The sink's objects hold every record
// once, and the rewound range twice, as declared.
func TestShardedConnector(t *testing.T) {
	s := newStack(t)
	s.startWorker()
	const topic, parts, size = "sharded", 6, 40
	s.createTopic(topic, parts)
	s.produce2(topic, parts, 0, 600, size)
	spec := s.ossSpec("sharded-oss", topic)
	spec.PartitionsPerWorkflow = 2
	spec.Concurrency = 3
	spec.Batch.MaxRecords = 200
	s.start(spec, 80)
	st := s.waitFor(spec.Name, 2*time.Minute, "caught up", caughtUp(600))
	require.Len(t, st.Partitions, parts)
	ids := []string{connector.ShardWorkflowID(spec.Name, 0), connector.ShardWorkflowID(spec.Name, 1), connector.ShardWorkflowID(spec.Name, 2)}
	require.Equal(t, ids, st.Shards)

	ctx := context.Background()
	for k, id := range ids {
		shard := s.workflowStatus(id)
		var got []int32
		for _, p := range shard.Partitions {
			got = append(got, p.Partition)
		}
		require.Equal(t, []int32{int32(k), int32(k + 3)}, got, "shard %d takes partitions %d and %d", k, k, k+3)
		d, err := s.client.DescribeWorkflowExecution(ctx, id, "")
		require.NoError(t, err)
		require.Equal(t, spec.WorkflowID(), d.GetWorkflowExecutionInfo().GetParentExecution().GetWorkflowId(), "shard %s is a child of the connector's workflow", id)
	}
	// The connector's own workflow plans and writes nothing.
	acts := map[string]int{}
	it := s.client.GetWorkflowHistory(ctx, spec.WorkflowID(), "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		require.NoError(t, err)
		if a := ev.GetActivityTaskScheduledEventAttributes(); a != nil {
			acts[a.GetActivityType().GetName()]++
		}
		if a := ev.GetWorkflowTaskCompletedEventAttributes(); a != nil {
			// The worker names its build (runner.buildID) instead of the
			// SDK hashing its executable.
			require.Regexp(t, `^dumpflow@`, a.GetWorkerVersion().GetBuildId()) //nolint:staticcheck // the field the server records
		}
	}
	require.Equal(t, map[string]int{activities.DiscoverName: 1}, acts, "the root lists the partitions once and runs no loop")

	// Pause reaches every shard.
	require.NoError(t, s.client.SignalWorkflow(ctx, spec.WorkflowID(), "", workflows.SignalPause, nil))
	s.waitFor(spec.Name, time.Minute, "every shard paused", func(st workflows.Status) bool {
		if !st.Paused {
			return false
		}
		for _, p := range st.Partitions {
			if p.State != workflows.StatePaused {
				return false
			}
		}
		return true
	})
	s.produce2(topic, parts, 600, 900, size)
	time.Sleep(2 * time.Second)
	st, err := s.status(spec.Name)
	require.NoError(t, err)
	for _, p := range st.Partitions {
		require.EqualValues(t, 600, p.Next, "partition %d is paused", p.Partition)
	}

	// set-offsets goes to partition 4's shard only; a partition the topic
	// lacks is refused by its shard, naming it.
	_, err = s.setOffsets(spec.Name, workflows.SetOffsets{To: workflows.OffsetsOffset, Offset: ptr(int64(500)), Partitions: []int32{9}})
	require.ErrorContains(t, err, "partitions: 9 is not a partition of the connector")
	res, err := s.setOffsets(spec.Name, workflows.SetOffsets{To: workflows.OffsetsOffset, Offset: ptr(int64(500)), Partitions: []int32{4}, By: "test"})
	require.NoError(t, err)
	require.Len(t, res.Moves, 1)
	require.EqualValues(t, 4, res.Moves[0].Partition)
	require.EqualValues(t, 500, res.Moves[0].To)

	// update-spec reaches every shard.
	upd := *spec
	upd.Batch.MaxRecords = 150
	ur, err := s.updateSpec(spec.Name, &upd)
	require.NoError(t, err)
	require.Equal(t, []string{"batch.maxRecords"}, ur.Changed)
	for _, id := range append([]string{spec.WorkflowID()}, ids...) {
		var got connector.Spec
		s.query(id, workflows.QuerySpec, &got)
		require.Equal(t, 150, got.Batch.MaxRecords, "%s runs the updated spec", id)
	}

	require.NoError(t, s.client.SignalWorkflow(ctx, spec.WorkflowID(), "", workflows.SignalResume, nil))
	s.waitFor(spec.Name, 2*time.Minute, "caught up after resume", caughtUp(900))
	s.verifyDeep(spec)

	// Every shard continued as new at least once (history limit 80).
	for _, id := range ids {
		shard := s.workflowStatus(id)
		require.Positive(t, shard.Run, "shard %s continued as new", id)
	}

	// The data itself: every record once, partition 4's rewound [500,600)
	// twice.
	counts := s.readValues(topic + "/")
	missing, wrong := 0, 0
	for p := int32(0); p < parts; p++ {
		for i := 0; i < 900; i++ {
			want := 1
			if p == 4 && i >= 500 && i < 600 {
				want = 2
			}
			switch c := counts[string(value(topic, p, i, size))]; {
			case c == 0:
				missing++
			case c != want:
				wrong++
			}
		}
	}
	require.Zero(t, missing, "records missing from the sink")
	require.Zero(t, wrong, "records in the sink a wrong number of times")

	// Cancelling the connector cancels its shards; they commit their
	// offsets before they end.
	require.NoError(t, s.client.CancelWorkflow(ctx, spec.WorkflowID(), ""))
	err = s.client.GetWorkflow(ctx, spec.WorkflowID(), "").Get(ctx, nil)
	require.Error(t, err)
	for _, id := range ids {
		d, err := s.client.DescribeWorkflowExecution(ctx, id, "")
		require.NoError(t, err)
		require.Equal(t, enumspb.WORKFLOW_EXECUTION_STATUS_CANCELED, d.GetWorkflowExecutionInfo().GetStatus(), "shard %s", id)
	}
	committed := s.mcxGroupOffsets(spec)
	for p := int32(0); p < parts; p++ {
		require.EqualValues(t, 900, committed[p].Offset, "partition %d's group offset", p)
	}
}

// workflowStatus is the status query's answer of workflow id.
func (s *stack) workflowStatus(id string) workflows.Status {
	s.t.Helper()
	var st workflows.Status
	s.query(id, workflows.QueryStatus, &st)
	return st
}

// query runs query name on workflow id into v, trying again for a few
// seconds: a run that just continued as new answers once its first
// workflow task has registered its handlers.
func (s *stack) query(id, name string, v any) {
	s.t.Helper()
	var err error
	for range 50 {
		var val converter.EncodedValue
		if val, err = s.client.QueryWorkflow(context.Background(), id, "", name); err == nil {
			require.NoError(s.t, val.Get(v))
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	require.NoError(s.t, err, "query %s of %s", name, id)
}

// TestShardedConnectorSurvivesSIGKILL dumps a 6-partition backlog with a
// sharded connector (3 shard workflows) while its worker process is
// SIGKILLed twice mid-backlog, each time with writes of every shard in
// flight: the objects hold every record exactly once and verify --deep is
// exact.
func TestShardedConnectorSurvivesSIGKILL(t *testing.T) {
	s := newStack(t)
	const topic, parts, n, size = "sharded-kill", 6, 12000, 100
	s.createTopic(topic, parts)
	s.produce2(topic, parts, 0, n, size)
	spec := s.ossSpec("sharded-kill", topic)
	spec.PartitionsPerWorkflow = 2
	spec.Concurrency = 3
	spec.Batch.MaxRecords = 400
	w := s.startWorkerProcess()
	s.start(spec, 200)
	total := func(st workflows.Status) int64 {
		var sum int64
		for _, p := range st.Partitions {
			sum += p.Next
		}
		return sum
	}
	for _, at := range []int64{parts * n / 4, parts * n * 3 / 5} {
		st := s.waitFor(spec.Name, 3*time.Minute, fmt.Sprintf("%d records dumped", at), func(st workflows.Status) bool {
			return len(st.Partitions) == parts && total(st) >= at
		})
		require.Less(t, total(st), int64(parts*n), "killed mid-backlog")
		w.kill()
		w = s.startWorkerProcess()
	}
	s.waitFor(spec.Name, 5*time.Minute, "caught up", caughtUp(n))
	s.verifyDeep(spec)
	requireEachOnce(t, s.readValues(topic+"/"), topic, parts, n, size, nil)
	st, err := s.status(spec.Name)
	require.NoError(t, err)
	require.Len(t, st.Shards, 3)
}
