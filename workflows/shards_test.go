package workflows_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/dumpflow/dumpflow/activities"
	"github.com/dumpflow/dumpflow/workflows"
)

// newShardedEnv runs a Connector over 4 partitions whose shard workflows
// run in the same test environment, with the activities mocked: partitions
// are listed after 10 s, and every FetchRanges waits a second and plans
// nothing.
func newShardedEnv() *testsuite.TestWorkflowEnvironment {
	e := connectorEnv("connector-unit")
	var a *activities.Activities
	e.OnActivity(a.Discover, mock.Anything, mock.Anything).After(10 * time.Second).Return(
		func(_ context.Context, in activities.DiscoverInput) (activities.DiscoverResult, error) {
			var res activities.DiscoverResult
			for p := int32(0); p < 4; p++ {
				if in.Shard.Owns(p) && (in.ListOnly || len(in.Known) == 0) {
					res.Partitions = append(res.Partitions, activities.PartitionStart{Partition: p, From: "earliest"})
				}
			}
			return res, nil
		})
	mockIdleLoops(e)
	e.OnActivity(a.AwaitClosed, mock.Anything, mock.Anything).Return(nil)
	return e
}

// TestShardsStartPausedWhenPausedWhileListing: a pause that arrives while
// a new connector's workflow is still listing the topic's partitions is
// applied before it knows it will shard; the shards it then starts are
// paused too (the pause is forwarded to each).
func TestShardsStartPausedWhenPausedWhileListing(t *testing.T) {
	e := newShardedEnv()
	spec := testSpec()
	spec.PartitionsPerWorkflow = 2
	checked := false
	e.RegisterDelayedCallback(func() { e.SignalWorkflow(workflows.SignalPause, nil) }, 2*time.Second)
	e.RegisterDelayedCallback(func() {
		v, err := e.QueryWorkflow(workflows.QueryStatus)
		require.NoError(t, err)
		var st workflows.Status
		require.NoError(t, v.Get(&st))
		require.True(t, st.Paused)
		require.Equal(t, []string{"connector-unit/shard-0", "connector-unit/shard-1"}, st.Shards)
		for _, id := range st.Shards {
			v, err := e.QueryWorkflowByID(id, workflows.QueryStatus)
			require.NoError(t, err)
			var shard workflows.Status
			require.NoError(t, v.Get(&shard))
			require.True(t, shard.Paused, "%s is paused", id)
			require.Len(t, shard.Partitions, 2, "%s runs its 2 partitions", id)
		}
		checked = true
		e.CancelWorkflow()
	}, time.Minute)
	e.ExecuteWorkflow(workflows.ConnectorName, workflows.NewInput(spec))
	require.True(t, checked)
}

// TestShardedRootContinuesAsNew: a shard's state report is an event in
// the connector's workflow like a signal, so a root that takes only
// reports still notices when its history is long enough (here: the server
// suggests continuing as new) and continues as new, carrying its shards
// and their states.
func TestShardedRootContinuesAsNew(t *testing.T) {
	e := newShardedEnv()
	e.SetTestTimeout(time.Minute) // wall clock: a root that never drains fails here
	// The shards end at once (the root does not wait on them), so only the
	// root runs.
	e.OnWorkflow(workflows.ConnectorName, mock.Anything, mock.Anything).Return(func(ctx workflow.Context, in workflows.ConnectorInput) error {
		if in.Shard == nil {
			return workflows.Connector(ctx, in)
		}
		return nil
	})
	spec := testSpec()
	spec.PartitionsPerWorkflow = 2
	e.RegisterDelayedCallback(func() {
		e.SetContinueAsNewSuggested(true)
		e.SignalWorkflow("shard-state", workflows.ShardState{Index: 1, State: workflows.StateError})
	}, 30*time.Second)
	e.ExecuteWorkflow(workflows.ConnectorName, workflows.NewInput(spec))
	var can *workflow.ContinueAsNewError
	require.True(t, errors.As(e.GetWorkflowError(), &can), "want continue-as-new, got %v", e.GetWorkflowError())
	var next workflows.ConnectorInput
	require.NoError(t, decodeCANInput(can, &next))
	require.Equal(t, 2, next.State.Shards)
	require.Len(t, next.State.ShardStates, 2)
	require.Equal(t, workflows.StateError, next.State.ShardStates[1])
	require.Nil(t, next.Shard, "the root continues as the root")
}
