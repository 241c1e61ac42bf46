package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	sdkpb "go.temporal.io/api/sdk/v1"
	"go.temporal.io/api/workflowservice/v1"

	"github.com/dumpflow/dumpflow/connector"
	"github.com/dumpflow/dumpflow/workflows"
)

// TestShardedConnectorCommands drives a sharded MaxCompute connector
// (partitionsPerWorkflow 1 on a 2-partition topic: 2 shard workflows) as an
// operator does: status names the shards and shows every partition, list
// shows one connector (not its shards), the DumpflowState search attribute
// of the connector's workflow follows a pause and resume sent to it, and
// delete cancels the shards too (delete --force terminates them).
func TestShardedConnectorCommands(t *testing.T) {
	s := newWinStack(t)
	ctx := context.Background()
	const topic, name = "sharded", "sharded-mc"
	s.createTopic(topic, 2)
	ts := time.Now()
	s.produce(topic, 0, ts, ts, ts)
	s.produce(topic, 1, ts, ts)
	file := s.connectorSpec(name, topic, "kafka_sharded")
	f, err := os.OpenFile(file, os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteString("partitionsPerWorkflow: 1\n")
	require.NoError(t, err)
	require.NoError(t, f.Close())

	require.NoError(t, ensureSearchAttributes(ctx, s.c, s.temporal.GetDefaultNamespace()))
	out, err := captureStdout(t, func() error { return cmdCreate(ctx, append([]string{"-f", file}, s.tflags...)) })
	require.NoError(t, err, out)
	waitStatus(t, s.c, name, func(st workflows.Status) bool { return totalNext(st) == 5 })
	out, err = runStatusCmd(ctx, append([]string{name}, s.tflags...)...)
	require.NoError(t, err, out)
	require.Contains(t, out, "sharded: partitions run in 2 shard workflows, partition p in shard p mod 2: connector-sharded-mc/shard-0, connector-sharded-mc/shard-1")
	require.Regexp(t, `(?m)^\s+0\s+running\s+3\s+3\s`, out)
	require.Regexp(t, `(?m)^\s+1\s+running\s+2\s+2\s`, out)

	out, err = runListCmd(s.tflags...)
	require.NoError(t, err, out)
	require.Contains(t, out, name)
	require.NotContains(t, out, "shard-", "list shows the connector, not its shards: %s", out)

	state := func() string {
		resp, err := s.c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Query: fmt.Sprintf(`WorkflowId = %q AND ExecutionStatus = "Running"`, connector.WorkflowID(name))})
		require.NoError(t, err)
		if len(resp.GetExecutions()) != 1 {
			return ""
		}
		d, err := s.c.DescribeWorkflow(ctx, connector.WorkflowID(name), "")
		require.NoError(t, err)
		v, _ := d.TypedSearchAttributes.GetKeyword(workflows.SearchState)
		return v
	}
	// The Web UI's current details list the shards and their states.
	details := func() string {
		v, err := s.c.QueryWorkflow(ctx, connector.WorkflowID(name), "", "__temporal_workflow_metadata")
		require.NoError(t, err)
		var md sdkpb.WorkflowMetadata
		require.NoError(t, v.Get(&md))
		return md.GetCurrentDetails()
	}
	require.Eventually(t, func() bool {
		d := details()
		return strings.Contains(d, "| `connector-sharded-mc/shard-0` | running |") && strings.Contains(d, "| `connector-sharded-mc/shard-1` | running |")
	}, 30*time.Second, 200*time.Millisecond, "current details: %s", details())
	require.NoError(t, cmdPause(ctx, append([]string{name}, s.tflags...)))
	require.Eventually(t, func() bool { return state() == workflows.StatePaused }, 30*time.Second, 200*time.Millisecond, "DumpflowState %q", state())
	waitStatus(t, s.c, name, func(st workflows.Status) bool {
		return st.Paused && len(st.Partitions) == 2 && st.Partitions[0].State == workflows.StatePaused && st.Partitions[1].State == workflows.StatePaused
	})
	require.NoError(t, cmdResume(ctx, append([]string{name}, s.tflags...)))
	require.Eventually(t, func() bool { return state() == workflows.StateRunning }, 30*time.Second, 200*time.Millisecond, "DumpflowState %q", state())

	out, err = captureStdout(t, func() error { return cmdDelete(ctx, append([]string{name}, s.tflags...)) })
	require.NoError(t, err, out)
	for k := range 2 {
		id := connector.ShardWorkflowID(name, k)
		require.Eventually(t, func() bool {
			d, err := s.c.DescribeWorkflowExecution(ctx, id, "")
			return err == nil && d.GetWorkflowExecutionInfo().GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_CANCELED
		}, 30*time.Second, 200*time.Millisecond, "%s cancelled", id)
	}

	// Created again, it resumes in new shards; delete --force terminates
	// them with the connector's workflow.
	out, err = captureStdout(t, func() error { return cmdCreate(ctx, append([]string{"-f", file}, s.tflags...)) })
	require.NoError(t, err, out)
	waitStatus(t, s.c, name, func(st workflows.Status) bool { return totalNext(st) == 5 && len(st.Shards) == 2 })
	out, err = captureStdout(t, func() error { return cmdDelete(ctx, append([]string{name, "--force"}, s.tflags...)) })
	require.NoError(t, err, out)
	for k := range 2 {
		d, err := s.c.DescribeWorkflowExecution(ctx, connector.ShardWorkflowID(name, k), "")
		require.NoError(t, err)
		require.Equal(t, enumspb.WORKFLOW_EXECUTION_STATUS_TERMINATED, d.GetWorkflowExecutionInfo().GetStatus(), "shard %d", k)
	}
}
