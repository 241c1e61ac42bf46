package workflows_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"

	"github.com/dumpflow/dumpflow/activities"
	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/sink"
	"github.com/dumpflow/dumpflow/workflows"
)

func mcSpec() *connector.Spec {
	s := &connector.Spec{
		Name:  "unit",
		Kafka: connector.KafkaSpec{Brokers: []string{"127.0.0.1:9092"}, Topic: "t"},
		Sink: connector.SinkSpec{Type: connector.SinkMaxCompute, MaxCompute: &connector.MaxComputeSpec{
			Endpoint: "http://127.0.0.1:9400/api", Project: "p", Table: "t", Credentials: "local",
		}},
	}
	s.Default()
	return s
}

// groupRecorder mocks a MaxCompute connector's activities: Discover gives
// the partitions (and pending ranges) of starts, FetchRanges plans 100
// offsets per partition once, and the writes are recorded.
type groupRecorder struct {
	mu       sync.Mutex
	prepares []activities.PrepareInput
	writes   []activities.WriteInput
}

func newGroupEnv(t *testing.T, r *groupRecorder, starts []activities.PartitionStart) *testsuite.TestWorkflowEnvironment {
	e := connectorEnv("connector-unit")
	var a *activities.Activities
	e.OnActivity(a.Discover, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.DiscoverInput) (activities.DiscoverResult, error) {
			if in.ListOnly {
				var res activities.DiscoverResult
				for _, s := range starts {
					res.Partitions = append(res.Partitions, activities.PartitionStart{Partition: s.Partition})
				}
				return res, nil
			}
			if len(in.Known) > 0 {
				return activities.DiscoverResult{}, nil
			}
			return activities.DiscoverResult{Partitions: starts}, nil
		})
	planned := map[int32]bool{}
	e.OnActivity(a.FetchRanges, mock.Anything, mock.Anything).After(time.Second).Return(
		func(_ context.Context, in activities.FetchRangesInput) (activities.FetchRangesResult, error) {
			r.mu.Lock()
			defer r.mu.Unlock()
			var res activities.FetchRangesResult
			for _, c := range in.Cursors {
				pl := activities.Plan{Partition: c.Partition, First: c.Next, PlanEnd: c.Next, End: c.Next, HighWatermark: c.Next + 100}
				if !planned[c.Partition] {
					planned[c.Partition] = true
					pl.PlanEnd, pl.End, pl.Records, pl.Parts = c.Next+100, c.Next+100, 100, []string{"pt=01-01-2024"}
				}
				res.Plans = append(res.Plans, pl)
			}
			return res, nil
		})
	e.OnActivity(a.PrepareWrite, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.PrepareInput) (activities.PrepareResult, error) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.prepares = append(r.prepares, in)
			return activities.PrepareResult{End: in.End, Prepared: &sink.Prepared{Sessions: []sink.Session{{Partition: "pt=01-01-2024", ID: "s1"}}}}, nil
		})
	e.OnActivity(a.WritePartition, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.WriteInput) (activities.WriteResult, error) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.writes = append(r.writes, in)
			res := activities.WriteResult{End: in.End, Written: sink.Written{Objects: []string{"s1"}}}
			for _, m := range in.Group {
				n := m.End - m.First
				res.Members = append(res.Members, activities.MemberResult{Partition: m.Partition, End: m.End, Records: n, Bytes: 10 * n})
				res.Written.Records += n
				res.Written.Bytes += 10 * n
				res.Written.Members = append(res.Written.Members, sink.MemberWritten{Partition: m.Partition, Records: n, Bytes: 10 * n})
			}
			return res, nil
		})
	e.OnActivity(a.CommitOffsets, mock.Anything, mock.Anything).Return(nil)
	return e
}

// TestGroupWrites: a MaxCompute loop writes the ranges of all its
// partitions in one group batch: one PrepareWrite and one WritePartition
// for the flush, every member counted.
func TestGroupWrites(t *testing.T) {
	r := &groupRecorder{}
	var starts []activities.PartitionStart
	for p := range int32(4) {
		starts = append(starts, activities.PartitionStart{Partition: p, Next: 1000, Start: 0, From: "sink"})
	}
	e := newGroupEnv(t, r, starts)
	spec := mcSpec()
	spec.Concurrency = 1
	e.RegisterDelayedCallback(func() {
		st := queryStatus(t, e)
		for _, p := range st.Partitions {
			require.Equal(t, int64(1100), p.Next, "partition %d", p.Partition)
			require.Equal(t, int64(100), p.Records, "partition %d", p.Partition)
			require.Nil(t, p.Pending)
		}
		e.CancelWorkflow()
	}, 30*time.Second)
	e.ExecuteWorkflow(workflows.ConnectorName, workflows.NewInput(spec))
	require.True(t, e.IsWorkflowCompleted())
	require.Len(t, r.prepares, 1, "one PrepareWrite for the loop's flush")
	require.Len(t, r.writes, 1, "one WritePartition for the loop's flush")
	require.Len(t, r.writes[0].Group, 4)
	for i, m := range r.writes[0].Group {
		require.Equal(t, sink.Member{Partition: int32(i), Start: 0, First: 1000, End: 1100}, m)
	}
	require.Equal(t, r.prepares[0].Group, r.writes[0].Group)
	require.Equal(t, []string{"pt=01-01-2024"}, r.prepares[0].Parts)
	require.Equal(t, "s1", r.writes[0].Prepared.Sessions[0].ID)
}

// TestResumedGroupWrittenWhole: a connector resumed from the sink with a
// group's intent (sessions not committed) writes that group again, whole
// and with its sessions, though its members now sit in different loops;
// the loop of the member that does not lead it waits instead of spinning.
func TestResumedGroupWrittenWhole(t *testing.T) {
	r := &groupRecorder{}
	group := []sink.Member{{Partition: 0, First: 500, End: 600}, {Partition: 1, First: 700, End: 800}}
	sess := []sink.Session{{Partition: "pt=01-01-2024", ID: "old"}}
	starts := []activities.PartitionStart{
		{Partition: 0, Next: 500, From: "sink", Pending: &sink.Pending{First: 500, End: 600, Sessions: sess, Group: group}},
		{Partition: 1, Next: 700, From: "sink", Pending: &sink.Pending{First: 700, End: 800, Sessions: sess, Group: group}},
	}
	e := newGroupEnv(t, r, starts)
	spec := mcSpec()
	spec.Concurrency = 2 // partition 0 in loop 0, partition 1 in loop 1
	e.RegisterDelayedCallback(func() {
		st := queryStatus(t, e)
		require.Equal(t, int64(700), st.Partitions[0].Next)
		require.Equal(t, int64(900), st.Partitions[1].Next)
		e.CancelWorkflow()
	}, 30*time.Second)
	e.ExecuteWorkflow(workflows.ConnectorName, workflows.NewInput(spec))
	require.True(t, e.IsWorkflowCompleted())
	require.GreaterOrEqual(t, len(r.writes), 1)
	first := r.writes[0]
	require.Equal(t, group, first.Group, "the resumed group is written whole first")
	require.Equal(t, "old", first.Prepared.Sessions[0].ID, "with its own sessions")
	for _, p := range r.prepares {
		require.NotEqual(t, group, p.Group, "the resumed group is not prepared again")
	}
	// After it, each loop plans and writes its partition on its own.
	require.Len(t, r.writes, 3)
	for _, w := range r.writes[1:] {
		require.Len(t, w.Group, 1)
	}
}
